"""ONNX Runtime static INT8 quantization (QDQ, per-channel); the Detect head's decode stays float.

Why a class: the accuracy-aware fallback quantizes the same model several times with different
nodes kept float. ``quant_pre_process`` (shape inference + graph optimization) runs once and the
calibration ranges are cached (``calibration_cache_path``), so each later attempt costs only the
graph rewrite, not another pass over the calibration images. Ranges do not depend on the
activation type, so the TensorRT variant (symmetric QInt8) reuses them too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from edgeslim.config import QuantizeParams
from edgeslim.data.images import preprocess
from edgeslim.quantize.compact import compact
from edgeslim.quantize.head import kept_float
from edgeslim.runtime.onnxruntime_backend import (
    CalibrationDataReader,
    CalibrationMethod,
    QDQRegistry,
    QLinearOpsRegistry,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
_TYPES = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}
PRE_NAME = "pre.onnx"


class ImageReader(CalibrationDataReader):
    """Feeds images one at a time, with a progress bar (calibration is the slow part)."""

    def __init__(self, input_name: str, images: Sequence[Path], imgsz: int) -> None:
        self._input = input_name
        self._iter = iter(tqdm(images, desc="int8 calibration", unit="img"))
        self._imgsz = imgsz

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._iter, None)
        return None if path is None else {self._input: preprocess(path, self._imgsz)}


@dataclass(frozen=True)
class Quantized:
    path: Path
    float_nodes: list[str]  # excluded by keep_float plus those the caller asked for
    quantized_tensors: int  # QuantizeLinear nodes in the result


def _ranges_key(images: Sequence[Path], qp: QuantizeParams) -> str:
    """What the cached calibration ranges depend on: image contents, method and quantized op types."""
    digest = hashlib.sha256(f"{qp.method}:{sorted(qp.op_types)}".encode())
    for path in images:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


class OrtQuantizer:
    """One FP32 model prepared for quantization; ``quantize`` may be called repeatedly."""

    def __init__(self, fp32: Path, calib_images: Sequence[Path], imgsz: int, qp: QuantizeParams, work_dir: Path) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.source = onnx.load(str(fp32))
        self.pre = work_dir / PRE_NAME
        quant_pre_process(str(fp32), str(self.pre), skip_symbolic_shape=True)
        self.graph = onnx.load(str(self.pre))
        self.base_float = kept_float(self.graph, qp.keep_float)
        self.calib_images = list(calib_images)
        self.work_dir = work_dir
        self._ranges = work_dir / f"calibration-ranges-{_ranges_key(self.calib_images, qp)}.json"
        self.imgsz, self._qp = imgsz, qp
        self._op_types = list(qp.op_types) or sorted(set(QLinearOpsRegistry) | set(QDQRegistry))

    def candidates(self) -> list[str]:
        """Nodes this configuration quantizes: what the fallback may keep float instead."""
        excluded = set(self.base_float)
        return [n.name for n in self.graph.graph.node if n.op_type in self._op_types and n.name not in excluded]

    def quantize(
        self, out_path: Path, float_nodes: Sequence[str] = (), qp: QuantizeParams | None = None, extra_options: dict | None = None
    ) -> Quantized:
        """Quantize to ``out_path`` with ``float_nodes`` kept float (besides ``keep_float``'s).

        ``qp`` and ``extra_options`` (ONNX Runtime's) shape a variant for another runtime (TensorRT);
        calibration ranges are shared. The FP32 model's metadata (names, stride, imgsz) is carried
        over for ultralytics' validator.
        """
        qp = qp or self._qp
        excluded = [*self.base_float, *(n for n in float_nodes if n not in self.base_float)]
        reader = None if self._ranges.is_file() else ImageReader(self.source.graph.input[0].name, self.calib_images, self.imgsz)
        # ONNX Runtime writes and deletes `<input>-inferred.onnx` beside its input: concurrent calls (the fallback's
        # sweep on Dask) would race on that one name, so each call reads its own link of the preprocessed model.
        own_input = out_path.with_name(f"{out_path.stem}-input.onnx")
        own_input.unlink(missing_ok=True)
        try:
            os.link(self.pre, own_input)
        except OSError:  # another filesystem: a copy
            shutil.copyfile(self.pre, own_input)
        quantize_static(
            str(own_input),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=self._op_types,
            per_channel=qp.per_channel,
            reduce_range=qp.reduce_range,
            activation_type=_TYPES[qp.activation_type],
            weight_type=_TYPES[qp.weight_type],
            nodes_to_exclude=excluded,
            calibrate_method=_METHODS[qp.method],
            calibration_cache_path=self._ranges,
            # Symmetric signed activations (zero point 0) are what TensorRT's explicit Q/DQ and ARM kernels take.
            extra_options={"ActivationSymmetric": qp.activation_type == "qint8", **(extra_options or {})},
        )
        own_input.unlink()
        quantized = compact(onnx.load(str(out_path)))
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(self.source.metadata_props)
        onnx.save(quantized, str(out_path))
        return Quantized(out_path, excluded, sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node))


def quantize_int8(fp32: Path, calib_images: Sequence[Path], imgsz: int, qp: QuantizeParams, out_path: Path) -> Quantized:
    """Quantize once (no fallback); the work files live next to ``out_path``."""
    return OrtQuantizer(fp32, calib_images, imgsz, qp, out_path.parent / f"{out_path.stem}-work").quantize(out_path)
