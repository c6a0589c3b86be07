"""What a device needs to know about an ONNX artifact before running it: format and I/O shapes.

The shapes go into the manifest so the agent's smoke test can check that the model it downloaded
produces outputs of the shapes the publisher saw, without shipping ONNX tooling to the device.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from edgeslim.models.onnx_model import QUANT_OPS


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
