"""Step ``dataset``: the embedded synthetic set for the ``dataset`` params, or the user's data.yaml
(read as ultralytics reads it: folders, ``.txt`` image lists or lists of them; no ``calib_pool`` →
calibration is curated from ``train``)."""

from __future__ import annotations

from pathlib import Path

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import StepInput
from edgeslim.data.splits import split_images
from edgeslim.data.synthetic import SPLITS, DatasetInfo


def dataset(inp: StepInput, p: Params) -> Outcome:
    layout = inp.layout
    task = p.baseline.task
    folder = layout.dataset(workspace.dataset_key(p.dataset, task))
    info = workspace.resolve_dataset(p.dataset, task, folder, copy_user=layout.datasets is None)
    counts = {f"images_{split}": float(len(split_images(info.data_yaml, split))) for split in SPLITS}
    print(f"dataset {info.root} sha256 {info.sha256[:12]} classes {list(info.names)}")
    section = {"root": str(info.root), "data_yaml": str(info.data_yaml), "sha256": info.sha256, "names": list(info.names)}
    return Outcome(inp.step, metrics=counts, details={"dataset": section})


def dataset_info(outcome: Outcome) -> DatasetInfo:
    """The dataset a ``dataset`` outcome describes."""
    d = outcome.details["dataset"]
    return DatasetInfo(Path(d["root"]), Path(d["data_yaml"]), d["sha256"], tuple(d["names"]))
