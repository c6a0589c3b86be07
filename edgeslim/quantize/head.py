"""Find the Detect head and its decode in an exported ultralytics graph.

Why split the head: its convolutions hold a third of a small detector's weights, so keeping them
float leaves the INT8 file at ~67% of FP32; they quantize as well as the neck's. Its *decode*
(the DFL integral, sigmoid, concat, anchor/stride box math) must stay float: those tensors mix
pixel-scale boxes with [0, 1] scores, and one 8-bit range over both collapses mAP (ORT issue 14233;
ultralytics' own INT8 export keeps them float too). The head is found from the graph (the highest ``/model.N/`` index, ultralytics' Detect
layer), not from a hard-coded layer number.
"""

from __future__ import annotations

import re

import onnx

_LAYER = re.compile(r"^/model\.(\d+)/")
# Sub-modules of the head that are decode, not learned features: DFL's fixed 0..reg_max-1 integral.
DECODE_SCOPES = ("dfl/",)


def _head_prefix(model: onnx.ModelProto) -> str | None:
    indices = [int(m.group(1)) for n in model.graph.node if (m := _LAYER.match(n.name))]
    return f"/model.{max(indices)}/" if indices else None


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes of the last ultralytics layer (the Detect head)."""
    prefix = _head_prefix(model)
    return [n.name for n in model.graph.node if prefix and n.name.startswith(prefix)]


def decode_nodes(model: onnx.ModelProto) -> list[str]:
    """Head nodes that decode boxes and scores: the Detect module's own ops and DFL's.

    The learned branches (``cv2.i``, ``cv3.i``: convs and their activations) are sub-modules, so
    their nodes sit one scope deeper than the module's own reshape/concat/sigmoid/box math.
    """
    prefix = _head_prefix(model)
    decode = []
    for n in model.graph.node:
        rest = n.name[len(prefix) :] if prefix and n.name.startswith(prefix) else None
        if rest is not None and ("/" not in rest or rest.startswith(DECODE_SCOPES)):
            decode.append(n.name)
    return decode


def kept_float(model: onnx.ModelProto, keep_float: str) -> list[str]:
    """Nodes ``quantize.keep_float`` (decode | head | none) excludes from quantization."""
    return {"decode": decode_nodes, "head": head_nodes, "none": lambda _: []}[keep_float](model)
