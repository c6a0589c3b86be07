"""Untrained builds of the search's candidates, for timing: weights do not change speed.

Each variant is pruned and its activation swapped exactly as the ``prune`` step will do it once it
is chosen (the same functions and params), fused, exported, and converted to every format of the
target this machine can build. INT8 formats are calibrated on a few val images only: their speed,
not their accuracy, is what is measured here (the chosen variant's INT8 is calibrated on the curated
set and gated later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from edgeslim.config import Params
from edgeslim.data.images import preprocess
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.prune.activation import swap_activation
from edgeslim.prune.pipeline import prune_stage
from edgeslim.quantize.head import kept_float
from edgeslim.quantize.ort_int8 import quantize_int8
from edgeslim.reparam.fuse import fuse_model
from edgeslim.runtime.formats import FORMATS, ONNXRUNTIME, OPENVINO, TENSORRT
from edgeslim.search.space import Variant


@dataclass(frozen=True)
class Built:
    """One variant, untrained: its unfused checkpoint (what its short finetunes start from), its
    FP32 ONNX, and a file per format built here."""

    variant: Variant
    unfused: Path
    fp32: Path
    formats: dict[str, Path]
    macs_reduction: float


def build_variant(
    variant: Variant, model: nn.Module, template: dict[str, Any], images: np.ndarray, calib: Sequence[Path], data_yaml: Path,
    imgsz: int, p: Params, formats: list[str], folder: Path,
) -> Built:  # fmt: skip
    """Prune a copy of the unfused ``model`` to the variant's level, swap its activation, and build
    ``formats`` (those this machine can build) from its fused FP32 export."""
    import copy

    prune = p.prune.model_copy(
        update={"target_macs_reduction": variant.prune, "rounds": 1, "sparse": p.prune.sparse.model_copy(update={"enabled": False})}
    )
    pruned, report = prune_stage(
        copy.deepcopy(model), template, images, data_yaml, imgsz, prune, p.baseline, p.evaluate, p.export.opset, folder
    )
    pruned, _ = swap_activation(pruned, variant.activation)
    unfused = save_checkpoint(pruned, template, folder / "unfused.pt")
    fused, _ = fuse_model(load_checkpoint(unfused)[1])
    fp32 = export_onnx(save_checkpoint(fused, template, folder / "fused.pt"), imgsz, p.export.opset, folder / "fp32.onnx")
    built = {name: path for name in formats if (path := _format(name, fp32, calib, imgsz, p, folder)) is not None}
    return Built(variant, unfused, fp32, built, float(report["macs_reduction"]))


REFERENCE_FORMAT = {ONNXRUNTIME: "onnx-fp32", OPENVINO: "openvino-fp32"}  # what a runtime's candidates are timed against


def source_exports(fused_source: Path, imgsz: int, p: Params, runtimes: set[str], folder: Path) -> dict[str, Path]:
    """The unpruned source's own FP32 export on each runtime: what each candidate's ratio is to."""
    fp32 = export_onnx(fused_source, imgsz, p.export.opset, folder / "source-fp32.onnx")
    out = {ONNXRUNTIME: fp32}
    if OPENVINO in runtimes:
        from edgeslim.runtime import openvino_backend as ovb

        out[OPENVINO] = ovb.convert_onnx(fp32, ovb.ir_dir("source-fp32", folder), "source-fp32")
    return out


def _format(name: str, fp32: Path, calib: Sequence[Path], imgsz: int, p: Params, folder: Path) -> Path | None:
    fmt = FORMATS[name]
    if fmt.runtime == TENSORRT:
        return None  # built where a GPU and TensorRT are (the tensorrt step); not timed on this CPU
    if fmt.runtime == ONNXRUNTIME:
        return fp32 if fmt.precision == "fp32" else quantize_int8(fp32, calib, imgsz, p.quantize, folder / "int8.onnx").path
    from edgeslim.runtime import openvino_backend as ovb

    ir = ovb.ir_dir("fp32", folder)
    if not ir.exists():  # one IR for fp32, bf16 (opened at bf16) and int8 (quantized from it)
        ir = ovb.convert_onnx(fp32, ir, "fp32")
    if fmt.precision != "int8":
        return ir
    ignored = ovb.ignored_patterns(kept_float(onnx.load(str(fp32)), p.quantize.keep_float))
    batches = [preprocess(path, imgsz) for path in calib]
    return ovb.quantize_ptq(ir, batches, ovb.ir_dir("int8", folder), "int8", ignored, len(batches), ovb.onnx_metadata(fp32))
