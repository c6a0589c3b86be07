"""What an ONNX detector says about itself: its input size, and ultralytics' export metadata.

A user may bring only the ONNX file their team already ships. It has no PyTorch graph to fuse,
prune or finetune, but calibration, INT8, evaluation and the gates need only ONNX Runtime, given
the image size, the stride and the class names. ultralytics' exporter records those (and the task)
as ONNX ``metadata_props``, which its own ``AutoBackend`` reads back; a fixed input shape says the
size as well.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgeslim.data.tasks import TASKS, a_model
from edgeslim.errors import CheckpointError

ONNX_SUFFIX = ".onnx"
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


@dataclass(frozen=True)
class OnnxFacts:
    """``input_size``: the fixed square input side (None when dynamic); ``imgsz``: the exporter's record."""

    task: str | None
    kpt_shape: tuple[int, int] | None  # a pose export's keypoints
    stride: int | None
    input_size: int | None
    imgsz: int | None
    names: tuple[str, ...] | None
    quantized: bool  # holds INT8 operators (already quantized)


def is_onnx(path: Path) -> bool:
    return Path(path).suffix == ONNX_SUFFIX


def onnx_facts(path: Path) -> OnnxFacts:
    """The facts of the ONNX model ``path``, or one clear error for a foreign or corrupt file or a task without boxes."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (protobuf raises several types for truncated/foreign files)
        raise CheckpointError(f"{path} is corrupt or not an ONNX model: {exc}") from None
    meta = {p.key: p.value for p in model.metadata_props}
    task = meta.get("task")
    if task and task not in TASKS:
        raise CheckpointError(f"ONNX model {path} is {a_model(task)}; edgeslim takes {', '.join(TASKS)} models")
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise CheckpointError(f"ONNX model {path} has {len(inputs)} inputs; a detector takes one image tensor")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) == 4 and dims[-1] and dims[-2] and dims[-1] != dims[-2]:
        raise CheckpointError(
            f"ONNX model {path} takes {dims[-2]}x{dims[-1]} images; edgeslim compresses square inputs (export with imgsz=N)"
        )
    fixed = dims[-1] if len(dims) == 4 and dims[-1] else None
    size = _literal(meta.get("imgsz"))
    names = _literal(meta.get("names"))
    kpt = _literal(meta.get("kpt_shape"))
    return OnnxFacts(
        task=task,
        kpt_shape=(int(kpt[0]), int(kpt[1])) if isinstance(kpt, (list, tuple)) and len(kpt) == 2 else None,
        stride=int(meta["stride"]) if meta.get("stride", "").isdigit() else None,
        input_size=fixed,
        imgsz=int(max(size)) if isinstance(size, (list, tuple)) and size else None,
        names=tuple(str(names[i]) for i in sorted(names)) if isinstance(names, dict) else None,
        quantized=any(n.op_type in QUANT_OPS for n in model.graph.node),
    )


def _literal(text: str | None) -> object:
    """A Python literal as ultralytics writes metadata values (``str(dict)``, ``str(list)``), else None."""
    try:
        return ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError):
        return None
