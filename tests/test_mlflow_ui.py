"""What the MLflow UI shows for the session's published version, rendered in headless Chromium
(scripts/mlflow_ui_screenshots.py). Skipped where Chromium is not installed (CI); run it wherever it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts import mlflow_ui_screenshots as ui

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_the_experiment_opens_on_its_runs_and_the_version_says_what_was_published(champion: str, published, tmp_path: Path):
    _, report = published
    edge = report["published"]
    problems = ui.check(champion, edge["model"], edge["alias"], tmp_path, str(CHROMIUM))
    assert problems == []
    assert all((tmp_path / f"{name}.png").stat().st_size > 10_000 for name in ("experiment", "version", "pareto"))
