"""Artifact formats: the runtime that runs one and the precision it computes in.

A format's name is what the target profiles, the manifest and ``fleet.agent.formats`` say; its
precision is set explicitly wherever it is opened (never the runtime's default), and every format
is gated on its own mAP because a precision change changes the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ONNXRUNTIME, OPENVINO, TENSORRT = "onnxruntime", "openvino", "tensorrt"
FP32, BF16, INT8 = "fp32", "bf16", "int8"
IR_SUFFIX = "_openvino_model"  # ultralytics' folder name for an OpenVINO IR (xml, bin, metadata.yaml)


@dataclass(frozen=True)
class Format:
    name: str
    runtime: str
    precision: str  # what the float parts compute in is fp32 for the int8 formats (their Q/DQ or FakeQuantize parts run int8)

    @property
    def float_precision(self) -> str:
        """The precision the runtime is told to compute float ops in."""
        return BF16 if self.precision == BF16 else FP32


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("onnx-fp32", ONNXRUNTIME, FP32),
        Format("onnx-int8", ONNXRUNTIME, INT8),
        Format("openvino-fp32", OPENVINO, FP32),
        Format("openvino-bf16", OPENVINO, BF16),
        Format("openvino-int8", OPENVINO, INT8),
        Format("tensorrt", TENSORRT, INT8),
    )
}


def format_named(name: str) -> Format:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r} (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def is_ir(path: Path) -> bool:
    """An OpenVINO IR: its ``.xml`` or the folder that holds one."""
    return path.suffix == ".xml" or (path.is_dir() and any(path.glob("*.xml")))


def runtime_of(path: Path) -> str:
    """The runtime a file is for, from its kind (.onnx, an IR, .engine)."""
    if is_ir(path):
        return OPENVINO
    return TENSORRT if path.suffix == ".engine" else ONNXRUNTIME


def default_format(path: Path) -> Format:
    """The format a file runs as when nobody says: FP32 on its runtime (TensorRT engines carry their own precision)."""
    runtime = runtime_of(path)
    return {ONNXRUNTIME: FORMATS["onnx-fp32"], OPENVINO: FORMATS["openvino-fp32"], TENSORRT: FORMATS["tensorrt"]}[runtime]


def artifact_bytes(path: Path) -> int:
    """An artifact's size: a file's bytes, or those of the files in an IR folder."""
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) if path.is_dir() else path.stat().st_size
