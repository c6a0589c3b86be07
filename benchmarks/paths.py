"""Committed results name files relative to the repository: an absolute path says only where one
machine kept its checkout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeslim.errors import EdgeslimError

REPO = Path(__file__).resolve().parents[1]


def portable_path(path: Path) -> str:
    """A file as results name it: relative to the repository, or only its name when it lies outside
    (a scratch folder of one machine)."""
    relative = repo_relative(str(Path(path).resolve()))
    return relative if not relative.startswith("/") else f"{Path(path).name} (outside the repo)"


def portable_command(argv: list[str], out_dir: Path | None) -> str:
    """A command line as it can be typed again anywhere: repo paths relative, the output folder as ``$OUT``."""
    out = str(out_dir.resolve()) if out_dir else None
    return " ".join("$OUT" if out and str(Path(a).resolve()) == out else repo_relative(a) for a in argv)


def repo_relative(value: Any) -> Any:
    """``value`` (a JSON-able tree) with every absolute path inside the repository made relative to it."""
    if isinstance(value, dict):
        return {k: repo_relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repo_relative(v) for v in value]
    if isinstance(value, str) and value.startswith(f"{REPO}/"):
        return value[len(str(REPO)) + 1 :]
    return value


RESULTS_DIR = Path(__file__).resolve().parent / "results"


def results_main(
    prog: str,
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], dict],
    markdown: Callable[[dict], str],
    argv: list[str] | None,
) -> int:
    """The ``main`` of a benchmark with a ``--name``: run it, then write ``benchmarks/results/<name>.json``
    (repo-relative paths) and its Markdown twin, and print the Markdown; an edgeslim error is one line."""
    args = parser.parse_args(argv)
    try:
        result = repo_relative(run(args))
    except EdgeslimError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS_DIR / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0
