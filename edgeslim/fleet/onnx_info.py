"""What a device needs to know about an artifact (an ONNX file, an OpenVINO IR folder) before running it: format and I/O shapes.

The shapes go into the manifest so the agent's smoke test can check that the model it downloaded
produces outputs of the shapes the publisher saw, without shipping ONNX tooling to the device.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import yaml

from edgeslim.models.onnx_model import QUANT_OPS

IR_METADATA = "metadata.yaml"
FORMAT_KEY = "edgeslim_format"  # written by the openvino step (edgeslim.dag.steps.openvino)


def _shape(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def describe(path: Path) -> tuple[str, dict[str, dict[str, list[int | None]]]]:
    """``(format, {"inputs": {name: shape}, "outputs": {name: shape}})``; None marks a dynamic dim."""
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    fmt = "onnx-int8" if any(n.op_type in QUANT_OPS for n in graph.node) else "onnx-fp32"
    io = {
        "inputs": {v.name: _shape(v) for v in graph.input if v.name not in initializers},
        "outputs": {v.name: _shape(v) for v in graph.output},
    }
    return fmt, io


def ir_format(folder: Path) -> str:
    """The format an IR folder was gated as (its metadata.yaml's ``edgeslim_format``; openvino-fp32 if unsaid)."""
    meta = yaml.safe_load((folder / IR_METADATA).read_text()) if (folder / IR_METADATA).exists() else {}
    return str((meta or {}).get(FORMAT_KEY, "openvino-fp32"))


def ir_io(folder: Path) -> dict[str, dict[str, list[int | None]]]:
    """Input and output shapes of an IR, read without compiling it."""
    from edgeslim.runtime.openvino_backend import ports, read_model

    model = read_model(folder)
    return {kind: {io.name: io.shape for io in ports(getattr(model, kind), kind[:-1])} for kind in ("inputs", "outputs")}
