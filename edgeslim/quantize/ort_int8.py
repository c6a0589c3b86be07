"""ONNX Runtime static INT8 quantization (QDQ, per-channel), detect head kept in float.

Why the head stays float: quantizing the Detect module's sigmoid/concat/DFL/box decode collapses
mAP (ORT issue 14233, DESIGN.md); only weighted ops (``op_types``) of the backbone and neck are
quantized. The head is found from the graph (the highest ``/model.N/`` index, ultralytics' Detect
layer), not from a hard-coded layer number.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from tqdm import tqdm

from edgeslim.config import QuantizeParams
from edgeslim.data.images import preprocess

_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
_TYPES = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}
_LAYER = re.compile(r"^/model\.(\d+)/")


@dataclass
class QuantReport:
    excluded_nodes: list[str] = field(default_factory=list)
    quantized_nodes: int = 0
    calibration_images: int = 0

    def as_dict(self) -> dict:
        return {
            "excluded_nodes": len(self.excluded_nodes),
            "quantized_nodes": self.quantized_nodes,
            "calibration_images": self.calibration_images,
        }


class _ImageReader(CalibrationDataReader):
    """Feeds calibration images one at a time, with a progress bar (calibration is the slow part)."""

    def __init__(self, input_name: str, images: list[Path], imgsz: int) -> None:
        self._input = input_name
        self._iter = iter(tqdm(images, desc="int8 calibration", unit="img"))
        self._imgsz = imgsz

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._iter, None)
        return None if path is None else {self._input: preprocess(path, self._imgsz)}


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes of the last ultralytics layer (the Detect head)."""
    indices = [int(m.group(1)) for n in model.graph.node if (m := _LAYER.match(n.name))]
    if not indices:
        return []
    prefix = f"/model.{max(indices)}/"
    return [n.name for n in model.graph.node if n.name.startswith(prefix)]


def quantize_int8(fp32: Path, calib_images: list[Path], imgsz: int, qp: QuantizeParams, out_path: Path) -> QuantReport:
    """Quantize ``fp32`` to ``out_path``; ultralytics metadata is carried over for its validator."""
    source = onnx.load(str(fp32))
    excluded = head_nodes(source) if qp.keep_head_float else []
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        reader = _ImageReader(source.graph.input[0].name, calib_images, imgsz)
        quantize_static(
            str(pre),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(qp.op_types),
            per_channel=qp.per_channel,
            reduce_range=qp.reduce_range,
            activation_type=_TYPES[qp.activation_type],
            weight_type=_TYPES[qp.weight_type],
            nodes_to_exclude=excluded,
            calibrate_method=_METHODS[qp.method],
        )
    quantized = onnx.load(str(out_path))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(source.metadata_props)
    onnx.save(quantized, str(out_path))
    n_q = sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    return QuantReport(excluded_nodes=excluded, quantized_nodes=n_q, calibration_images=len(calib_images))
