"""Step ``baseline``: train the tiny detector from its yaml (``edgeslim baseline``, and the DVC stage
the ``source`` stage takes its model from unless ``compress.source`` names one).

A DVC pipeline reproduces from a fresh clone with nothing but params.yaml, so its default source
model is trained; the compress flow pulls its source from the registry instead (flows/compress.py).
"""

from __future__ import annotations

from edgeslim.baseline.train import train_baseline
from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import SOURCE, StepInput
from edgeslim.dag.steps.dataset import dataset_info


def baseline(inp: StepInput, p: Params) -> Outcome:
    data = dataset_info(inp.outcome("dataset"))
    trained = train_baseline(p.baseline, p.evaluate, data.data_yaml, len(data.names), inp.dir())
    print(f"baseline trained {trained.epochs_run} epochs: {trained.metric} {trained.map50_95:.4f} mAP50 {trained.map50:.4f}")
    figures = {"map50_95": trained.map50_95, "map50": trained.map50, "epochs_run": float(trained.epochs_run)}
    return Outcome(
        inp.step, artifacts={SOURCE: trained.weights, "arch_yaml": trained.arch_yaml}, metrics=figures, details={"baseline": figures}
    )
