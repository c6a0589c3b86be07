"""The source model's own facts, bound into the params before the compress steps run.

``compress.imgsz: null`` means "the size the model was trained at": a user's detector trained at
640, 320 or 224 px is compressed, calibrated and scored at that size, not at the embedded baseline's.
Every runner binds it the same way, once the source checkpoint is known, so each step reads one
definite ``compress.imgsz``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.config import Params
from edgeslim.errors import CheckpointError
from edgeslim.models.checkpoint import load_checkpoint, training_imgsz


def bind_source(p: Params, weights: Path) -> tuple[Params, dict[str, Any]]:
    """``p`` with ``compress.imgsz`` set for the checkpoint ``weights``, and the facts behind it.

    The params' value wins when set; either way it must be a multiple of the model's largest stride.
    """
    ckpt, model = load_checkpoint(weights)
    stride = int(max(model.stride))
    trained = training_imgsz(ckpt, model)
    imgsz, origin = (p.compress.imgsz, "params") if p.compress.imgsz else (trained, "checkpoint")
    if imgsz is None:
        raise CheckpointError(f"checkpoint {weights} records no training image size: set compress.imgsz")
    if imgsz % stride:
        raise CheckpointError(f"image size {imgsz} is not a multiple of the model's stride {stride}: set compress.imgsz to one")
    bound = p.model_copy(update={"compress": p.compress.model_copy(update={"imgsz": imgsz})})
    return bound, {"imgsz": imgsz, "imgsz_from": origin, "trained_imgsz": trained, "stride": stride}


def image_size(p: Params) -> int:
    """The ``compress.imgsz`` a step runs at: bound by :func:`bind_source` before any compress step."""
    if p.compress.imgsz is None:
        raise RuntimeError("compress.imgsz is unbound: the runner binds the source (bind_source) before the compress steps")
    return p.compress.imgsz
