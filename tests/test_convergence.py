"""The report says whether the source looks converged, from the training history ultralytics keeps
in its checkpoints (``train_results``, its results.csv): a ratio against a source still improving
flatters the compressed model (issue 27, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO

from edgeslim.config import ConvergenceParams, load_params
from edgeslim.dag.source import bind_source
from edgeslim.evaluate.convergence import FITNESS, convergence
from edgeslim.report import Report

PLATEAU = ConvergenceParams(window=5, min_gain=0.005)
RISING = [0.01 * e for e in range(1, 21)]  # +0.01 an epoch to the last
FLAT = [min(0.01 * e, 0.1) + 0.001 * (e % 2) for e in range(1, 21)]  # at 0.10 from epoch 10, jitter under min_gain


@pytest.mark.parametrize(
    ("fitness", "converged"),
    [(RISING, False), (FLAT, True), (RISING[:9], False), ([*RISING[:10], 0.1 + 0.005, *[0.1] * 9], True)],
    ids=["still-rising", "plateau", "shorter-than-two-windows", "gain-exactly-at-min"],
)
def test_convergence_looks_at_the_last_window_against_the_best_before(fitness: list[float], converged: bool):
    c = convergence(fitness, PLATEAU)
    assert c.converged is converged, c.detail
    assert c.epochs == len(fitness) and c.best == max(fitness) and c.best_epoch == fitness.index(max(fitness)) + 1


def _with_history(tiny_checkpoint: Path, fitness: list[float] | None, dest: Path) -> Path:
    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    ckpt.pop("train_results", None)
    if fitness is not None:  # the layout ultralytics' trainer saves: results.csv as a dict of columns
        ckpt["train_results"] = {"epoch": list(range(1, len(fitness) + 1)), FITNESS: fitness}
    torch.save(ckpt, dest)
    return dest


@pytest.mark.parametrize(
    ("fitness", "line"),
    [(RISING, "**Source not converged**: best val mAP50-95 0.2000 at epoch 20 of 20; the last 5 epochs added +0.0500"),
     (FLAT, "Source looks converged: best val mAP50-95 0.1010 at epoch"),
     (None, "Source convergence: unknown (the file records no training history).")],
    ids=["rising", "plateau", "no-history"],
)  # fmt: skip
def test_the_report_flags_a_source_still_improving_in_a_line_of_its_own(tiny_checkpoint: Path, tmp_path: Path, fitness, line: str):
    p = load_params(REPO / "params.yaml", ["compress.convergence.window=5"])
    _, facts = bind_source(p, _with_history(tiny_checkpoint, fitness, tmp_path / "src.pt"))
    assert (facts["convergence"] is None) is (fitness is None)
    report = Report("m", "1", details={"source": {"reference": "m@champion", **facts}})
    assert any(ln.startswith(line) for ln in report.markdown().splitlines()), report.markdown()
