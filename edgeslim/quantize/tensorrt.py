"""TensorRT engine from an explicit Q/DQ ONNX, where ``tensorrt`` imports and a CUDA GPU is present.

Why explicit Q/DQ: TensorRT's implicit INT8 calibrators are deprecated since 10.1 and gone in 11,
and NVIDIA's YOLOv7 figures put implicit INT8 at 89% of mAP against ~99.5% for explicit Q/DQ.
The Q/DQ model TensorRT gets is quantized from the same calibration ranges and with the same float
layers as the CPU artifact, but in the form TensorRT takes: symmetric signed 8-bit activations and
full 8-bit weights (TensorRT's Q/DQ have zero point 0; ``reduce_range`` is a VNNI-less CPU concern),
float bias (TensorRT fuses bias itself and its DequantizeLinear takes no int32), and Q/DQ on the
inputs of convolutions only (NVIDIA's placement advice; TensorRT fuses what follows).

Float (decode) layers run FP16 on TensorRT 10 (weakly typed network, INT8 + FP16 builder flags)
when ``head_precision: fp16``; otherwise, and always on TensorRT 11, where precision flags are gone,
the network is strongly typed and they run in the ONNX model's FP32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from edgeslim.config import QuantizeParams, TensorRTParams
from edgeslim.errors import EdgeslimError

# What the TensorRT variant of the Q/DQ model changes against the CPU one (see the module docstring).
TENSORRT_TYPES = {"activation_type": "qint8", "weight_type": "qint8", "reduce_range": False}
TENSORRT_QDQ_OPTIONS = {"QuantizeBias": False, "OpTypesToExcludeOutputQuantization": ["Conv"]}
HEADER_LENGTH_BYTES = 4  # ultralytics' .engine files: little-endian JSON length, JSON metadata, engine


class TensorRTError(EdgeslimError):
    """The TensorRT parser or builder refused the Q/DQ model."""


@dataclass(frozen=True)
class Engine:
    path: Path | None  # None when skipped
    detail: str  # the skip reason, or the precision the engine was built with

    def as_dict(self) -> dict:
        return {"engine": str(self.path), "precision": self.detail} if self.path else {"skipped": self.detail}


def unavailable(tp: TensorRTParams) -> str | None:
    """Why the TensorRT step cannot run here, or None when it can."""
    if not tp.enabled:
        return "disabled (quantize.tensorrt.enabled: false)"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed (pip install -e '.[tensorrt]' on a machine with an NVIDIA GPU)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


def tensorrt_params(qp: QuantizeParams) -> QuantizeParams:
    """The quantization params of the Q/DQ model TensorRT is built from."""
    return qp.model_copy(update=TENSORRT_TYPES)


def build_engine(qdq_onnx: Path, out_path: Path, tp: TensorRTParams) -> Engine:
    """Parse ``qdq_onnx`` and build an engine into ``out_path`` with ultralytics' metadata header."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    fp16 = tp.head_precision == "fp16" and hasattr(trt.BuilderFlag, "FP16")
    strongly_typed = not fp16 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(qdq_onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT cannot parse {qdq_onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, tp.workspace_mib << 20)
    if fp16:  # TensorRT 10's weakly typed mode: the flags let it pick INT8 for Q/DQ'd convs, FP16 for the rest
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT could not build an engine from {qdq_onnx} (see its log above)")
    metadata = json.dumps({p.key: p.value for p in onnx.load(str(qdq_onnx), load_external_data=False).metadata_props}).encode()
    out_path.write_bytes(len(metadata).to_bytes(HEADER_LENGTH_BYTES, "little") + metadata + bytes(serialized))
    precision = "int8 convs, fp16 float layers (weakly typed)" if fp16 else "int8 convs, fp32 float layers (strongly typed)"
    if tp.head_precision == "fp16" and not fp16:
        precision += "; fp16 asked, but this TensorRT has no FP16 builder flag"
    return Engine(out_path, f"TensorRT {trt.__version__}: {precision}")
