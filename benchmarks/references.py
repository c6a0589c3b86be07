"""The trained references the benchmark states its accuracy against, each trained once and cached.

Why: the embedded baseline stops at ``baseline.epochs`` while its val mAP is still climbing, so a
ratio against it mostly measures extra training. The *converged* reference is the same
architecture and recipe trained until val fitness stops improving (ultralytics' early stopping
with ``benchmark.converged.patience``, capped at ``max_epochs``). yolov8n is the stock size users
pick, trained on the same data so that its compressed artifacts have an mAP too. Training is the
slow part (minutes to an hour on 2 cores), so each result is cached under its params and the
dataset's hash, and a rerun with the same inputs reuses it; a training cut short resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeslim.baseline.train import train_baseline
from edgeslim.config import BaselineParams, Params, digest
from edgeslim.data.synthetic import DatasetInfo

RESULT_FILE = "reference.json"


@dataclass(frozen=True)
class TrainedReference:
    name: str
    weights: Path
    imgsz: int
    map50_95: float  # best val mAP50-95 during training (the checkpoint kept)
    map50: float
    epochs_run: int
    max_epochs: int
    converged: bool  # early stopping ended it before the cap
    train_s: float  # this call's training time (a resumed run counts only the part it ran)
    key: str
    stopped_by: str  # early stopping (a plateau), the epoch cap, or an operator (then said why)

    def as_dict(self) -> dict:
        return {**asdict(self), "weights": str(self.weights)}


def converged_params(p: Params) -> BaselineParams:
    """The embedded baseline's recipe, with the converged reference's epoch cap and patience."""
    ref = p.benchmark.converged
    return p.baseline.model_copy(update={"epochs": ref.max_epochs, "patience": ref.patience})


def yolov8n_params(p: Params) -> BaselineParams:
    """The baseline's recipe (batch, lr, seed) on the stock yolov8n network at its own image size."""
    ref = p.benchmark.yolov8n
    update = {"arch": ref.arch, "scale": ref.scale, "imgsz": ref.imgsz, "epochs": ref.max_epochs, "patience": ref.patience}
    return p.baseline.model_copy(update=update)


def training_key(base: BaselineParams, p: Params, data: DatasetInfo) -> str:
    """What the training reads: the recipe, the validator's conf/iou (its fitness), the data."""
    return digest({"baseline": base.model_dump(mode="json"), "conf": p.evaluate.conf, "iou": p.evaluate.iou, "data": data.sha256})


def trained_reference(name: str, base: BaselineParams, p: Params, data: DatasetInfo, root: Path) -> TrainedReference:
    """Train ``base`` on ``data`` (or reuse the cached result of the same params and data)."""
    key = training_key(base, p, data)
    folder = Path(root) / f"{name}-{key}"
    cached = folder / RESULT_FILE
    if cached.exists():
        found = json.loads(cached.read_text())
        print(f"{name}: reusing the reference trained {found['epochs_run']} epochs ({cached})")
        return TrainedReference(**{**found, "weights": Path(found["weights"])})
    print(f"{name}: training up to {base.epochs} epochs (patience {base.patience}) at {base.imgsz} px, cached in {folder}")
    start = time.perf_counter()
    trained = train_baseline(base, p.evaluate, data.data_yaml, len(data.names), folder, resume=True)
    ref = TrainedReference(
        name=name,
        weights=trained.weights,
        imgsz=base.imgsz,
        map50_95=trained.map50_95,
        map50=trained.map50,
        epochs_run=trained.epochs_run,
        max_epochs=base.epochs,
        converged=trained.epochs_run < base.epochs,
        train_s=time.perf_counter() - start,
        key=key,
        stopped_by="early stopping: val fitness plateaued"
        if trained.epochs_run < base.epochs
        else f"the epoch cap ({base.epochs}), not converged",
    )
    cached.write_text(json.dumps(ref.as_dict(), indent=2) + "\n")
    return ref
