"""Rank layers by what their quantization costs the detections, measured on calibration images.

For each layer (an ultralytics ``/model.N/`` module; the Detect head split into its conv branches
and its decode) the model is re-quantized with only that layer kept float, and its output is
compared with the FP32 model's on the same images. The layer whose float copy brings the output
closest to FP32 does the most damage when quantized.

Why measure the output instead of a per-tensor SQNR (onnxruntime.quantization.qdq_loss_debug):
measured on this project's detector with everything quantized, per-tensor SQNR found the one
broken tensor (the output concat mixing pixel boxes with [0, 1] scores, 2.5 dB) but then ranked
backbone convs (~27 dB) above the box decode (~50 dB), whose 0.6 px rounding is invisible to an
energy ratio yet costs a fifth of mAP50-95 (IoU thresholds up to 0.95). The error used here is
detection-aware and needs no labels: 1 - IoU between the FP32 and quantized box, plus the change
of the class score, at every anchor either model scores at or above ``conf``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnx

from edgeslim.dag.fan import Fan, sequential
from edgeslim.data.images import preprocess
from edgeslim.quantize.head import decode_nodes, head_nodes
from edgeslim.quantize.ort_int8 import OrtQuantizer
from edgeslim.runtime.session import first_output, open_session

_LAYER = re.compile(r"^(/model\.\d+/)([^/]+/)?")
DECODE_SUFFIX = "decode"
BOX_CHANNELS = 4  # ultralytics detect output: (batch, 4 box xywh + classes, anchors)


@dataclass(frozen=True)
class LayerError:
    layer: str
    nodes: list[str]  # quantized nodes of the layer: kept float together
    error: float  # detection error with only this layer float; lower = more damage when quantized

    def as_dict(self) -> dict:
        return {"layer": self.layer, "nodes": len(self.nodes), "error_when_float": round(self.error, 5)}


def layers(graph: onnx.ModelProto, candidates: Sequence[str]) -> dict[str, list[str]]:
    """Group quantized nodes into layers: ``/model.N/``; in the head ``/model.N/<branch>/`` and its decode."""
    head, decode = set(head_nodes(graph)), set(decode_nodes(graph))
    wanted = set(candidates)
    groups: dict[str, list[str]] = {}
    for node in graph.graph.node:
        if node.name not in wanted:
            continue
        match = _LAYER.match(node.name)
        if not match:
            key = node.name
        elif node.name in decode:
            key = match.group(1) + DECODE_SUFFIX
        else:
            key = match.group(1) + (match.group(2) or "") if node.name in head else match.group(1)
        groups.setdefault(key, []).append(node.name)
    return groups


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching boxes; ``a``, ``b``: (..., 4) centre x, centre y, width, height."""
    lo = np.maximum(a[..., :2] - a[..., 2:] / 2, b[..., :2] - b[..., 2:] / 2)
    hi = np.minimum(a[..., :2] + a[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = np.prod(np.clip(a[..., 2:], 0, None), axis=-1) + np.prod(np.clip(b[..., 2:], 0, None), axis=-1) - inter
    return inter / np.maximum(union, np.finfo(np.float32).eps)


def detection_error(reference: np.ndarray, output: np.ndarray, conf: float) -> float:
    """Mean of (1 - IoU) + |score change| over anchors either model detects at ``conf``."""
    ref_boxes, out_boxes = (np.moveaxis(x[:, :BOX_CHANNELS], 1, -1) for x in (reference, output))
    ref_scores, out_scores = reference[:, BOX_CHANNELS:], output[:, BOX_CHANNELS:]
    relevant = (ref_scores.max(axis=1) >= conf) | (out_scores.max(axis=1) >= conf)
    if not relevant.any():
        return 0.0
    box_error = 1.0 - _iou_xywh(ref_boxes, out_boxes)
    score_error = np.abs(ref_scores - out_scores).max(axis=1)
    return float((box_error + score_error)[relevant].mean())


def model_outputs(model: Path, images: Sequence[Path], imgsz: int) -> np.ndarray:
    """The first output of ``model`` for each image, stacked on the batch axis."""
    return first_output(open_session(model, "onnx-fp32"), [preprocess(p, imgsz) for p in images])


def rank_layers(quantizer: OrtQuantizer, probe_dir: Path, images: Sequence[Path], conf: float, fan: Fan = sequential) -> list[LayerError]:
    """Layers of ``quantizer``'s candidates, most damaging first; each probe is one item of ``fan``
    (independent: its own scratch file under ``probe_dir``, the calibration ranges cached by then)."""
    probe_dir.mkdir(parents=True, exist_ok=True)
    reference = model_outputs(quantizer.pre, images, quantizer.imgsz)
    probe = partial(_probe, quantizer, probe_dir, reference, list(images), conf)
    return sorted(fan(probe, list(enumerate(layers(quantizer.graph, quantizer.candidates()).items()))), key=lambda e: e.error)


def _probe(
    quantizer: OrtQuantizer,
    probe_dir: Path,
    reference: np.ndarray,
    images: list[Path],
    conf: float,
    item: tuple[int, tuple[str, list[str]]],
) -> LayerError:
    """The detection error with only one layer kept float (its scratch model removed after)."""
    index, (layer, nodes) = item
    path = probe_dir / f"probe-{index}.onnx"
    quantizer.quantize(path, nodes)
    error = detection_error(reference, model_outputs(path, images, quantizer.imgsz), conf)
    path.unlink()
    return LayerError(layer, nodes, error)
