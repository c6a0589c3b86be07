# The two commands of README.md, plus the edit loop. Each bootstraps .venv from pyproject.toml (once per change of it).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=
# pytest-xdist processes; conftest groups the work (a test file, or the demo run's tests) and orders it; 0: no workers
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast lint format install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/edgeslim demo

# ruff (lint + format check), mypy, dvc.yaml and prefect.yaml against what they are generated from; `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/edgeslim dvc-yaml --check
	$(VENV)/bin/edgeslim prefect-yaml --check

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

# The edit loop: lint, then everything but the long end-to-end runs (`-m "not slow"`).
test-fast: lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	-$(VENV)/bin/edgeslim server stop
	rm -rf workspace
