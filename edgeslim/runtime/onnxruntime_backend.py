"""ONNX Runtime: the sessions of the onnx-fp32 and onnx-int8 formats (CPU provider unless told).

Its sessions already have the interface :mod:`edgeslim.runtime.session` names. Inter-op threads are
1: a YOLO graph is one chain, and a second pool only competes for the same cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

# ONNX Runtime's INT8 builder, which edgeslim.quantize.ort_int8 drives (static QDQ): reached through this module,
# the one place that imports onnxruntime.
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

__all__ = [
    "CalibrationDataReader",
    "CalibrationMethod",
    "QDQRegistry",
    "QLinearOpsRegistry",
    "QuantFormat",
    "QuantType",
    "available_providers",
    "open_session",
    "quant_pre_process",
    "quantize_static",
    "unavailable",
    "version",
]

CPU = "CPUExecutionProvider"
GRAPH_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC", "disabled": "ORT_DISABLE_ALL"}


def open_session(
    model: Path | bytes,
    threads: int | None = None,
    *,
    profile_prefix: Path | None = None,
    graph_optimization: str = "all",
    providers: Sequence[str] = (CPU,),
    spinning: bool = True,
) -> ort.InferenceSession:
    """A session for ``model`` (a path, or a serialized ModelProto). ``profile_prefix``: ONNX
    Runtime's per-node profiler on; ``spinning=False``: no busy-waiting between runs (benchmarks)."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[graph_optimization])
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts, providers=list(providers))
    missing = set(providers) - set(session.get_providers())
    if missing:
        raise RuntimeError(f"execution providers {sorted(missing)} did not load (this build has {ort.get_available_providers()})")
    return session


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def unavailable(precision: str) -> str | None:  # noqa: ARG001 (every precision ONNX Runtime formats name runs on its CPU provider)
    return None


def version() -> str:
    return str(ort.__version__)
