"""Load and save ultralytics checkpoints with errors a user can act on.

Why not ``YOLO(path)`` everywhere: a corrupt or foreign file then fails deep inside ultralytics
with a traceback; here it fails with the file name and what was wrong. Saved checkpoints keep
ultralytics' layout (``{"model": ..., "train_args": ...}``) so ``YOLO(path)``, export and val
accept them as they are.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, OBBModel, PoseModel, SegmentationModel

import edgeslim.ultra  # noqa: F401  (offline settings before ultralytics unpickles its classes)
from edgeslim.data.tasks import Task
from edgeslim.errors import CheckpointError

# ultralytics' task models built on DetectionModel, subclasses first; a plain DetectionModel is "detect".
BOX_TASKS: tuple[tuple[type[DetectionModel], Task], ...] = ((OBBModel, "obb"), (PoseModel, "pose"), (SegmentationModel, "segment"))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], DetectionModel, Task]:
    """The raw checkpoint dict, its model (float32, eval mode) and its task, for any ultralytics model
    built on boxes (detect, segment, pose, obb); a classifier, a state dict or a foreign module is one
    clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 (torch raises many types for truncated/foreign files)
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file: {exc}") from None
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else ckpt
    model = getattr(model, "student_model", model)  # a distillation run (ultralytics' distill_model, ours) saves the student wrapped
    if isinstance(ckpt, dict) and model is None and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(
            f"checkpoint {path} holds a state dict (weights only), not a model: save the model (ultralytics saves {{'model': model}})"
        )
    if isinstance(model, ClassificationModel):
        raise CheckpointError(
            f"checkpoint {path} is a classify model (one label per image, no boxes); edgeslim takes detect, segment, pose and obb models"
        )
    if not isinstance(model, DetectionModel):
        kind = f"a {type(model).__name__} module" if isinstance(model, nn.Module) else "no module"
        raise CheckpointError(f"checkpoint {path} holds {kind}, not an ultralytics detection model")
    return ckpt, model.float().eval(), model_task(model)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], DetectionModel]:
    """The raw checkpoint dict and its model (float32, eval mode): what the compress steps take. The
    task rides on the model's class (:func:`model_task`)."""
    ckpt, model, _ = read_checkpoint(path)
    return ckpt, model


def model_task(model: nn.Module) -> Task:
    """The ultralytics task of a loaded model, from its class (a plain DetectionModel is detect)."""
    return next((name for cls, name in BOX_TASKS if isinstance(model, cls)), "detect")


def keypoint_shape(model: DetectionModel) -> tuple[int, int] | None:
    """A pose model's keypoints (count, 2 or 3 values each), None for other tasks."""
    shape = getattr(cast(nn.Sequential, model.model)[-1], "kpt_shape", None)
    return (int(shape[0]), int(shape[1])) if shape else None


def training_imgsz(ckpt: dict[str, Any], model: DetectionModel) -> int | None:
    """The image size the checkpoint was trained at (ultralytics' ``train_args``, else ``model.args``)."""
    args = ckpt.get("train_args") or getattr(model, "args", None) or {}
    size = args.get("imgsz") if isinstance(args, dict) else None
    if isinstance(size, (list, tuple)):
        size = max(size)
    return int(size) if size else None


def save_checkpoint(model: nn.Module, template: dict[str, Any], path: Path) -> Path:
    """Save ``model`` with the metadata of ``template`` (train args, version), minus optimizer state."""
    ckpt = {k: v for k, v in template.items() if k not in ("ema", "optimizer", "updates", "model")}
    ckpt["model"] = copy.deepcopy(model).float().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def class_names(model: DetectionModel) -> list[str]:
    names = model.names
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
