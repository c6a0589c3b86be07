"""One pass of the FP32 ONNX model per pool image: a backbone embedding and the model's detections.

Why the FP32 ONNX and not the PyTorch model: it is the exact graph that gets quantized, it is already
on disk when calibration runs, and ONNX Runtime on CPU is the cheapest way to run it. The backbone
ends where the neck starts upsampling (the first ``Resize`` node; true for yolov8, yolo11 and
GELAN/yolov9 graphs); its output is globally average-pooled and L2-normalized into the embedding the
diversity selection measures distances in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from edgeslim.data.tasks import Task
from edgeslim.errors import CheckpointError
from edgeslim.runtime import onnxruntime_backend
from edgeslim.ultra import non_max_suppression, xyxy2xywh


@dataclass(frozen=True)
class Probe:
    embedding: np.ndarray  # (C,) unit-norm pooled backbone features
    classes: np.ndarray  # (n,) class ids of the detections
    boxes_xywh: np.ndarray  # (n, 4) detection boxes, pixels of the letterboxed input


def backbone_output(model: onnx.ModelProto) -> str:
    """Name of the tensor the neck's first upsample reads: the backbone's last feature map."""
    for node in model.graph.node:
        if node.op_type == "Resize":
            return node.input[0]
    raise CheckpointError("the ONNX model has no Resize (upsample) node, so its backbone output cannot be located")


class ModelProbe:
    """The FP32 ONNX model with the backbone feature map exposed as an extra output."""

    def __init__(self, fp32: Path, nc: int, task: Task, conf: float, iou: float, threads: int) -> None:
        """``nc`` and ``task`` say how to read the output's columns: box, ``nc`` class scores, then the
        task's extras (mask coefficients, keypoints, an obb's angle), which are not classes."""
        model = onnx.load(str(fp32))
        self._feature = backbone_output(model)
        model.graph.output.append(onnx.helper.make_tensor_value_info(self._feature, onnx.TensorProto.FLOAT, None))
        self._session = onnxruntime_backend.open_session(model.SerializeToString(), threads)  # a graph with an extra output: no file
        self._input = self._session.get_inputs()[0].name
        self._outputs = [self._session.get_outputs()[0].name, self._feature]
        self._conf, self._iou, self._nc, self._rotated = conf, iou, nc, task == "obb"

    def __call__(self, x: np.ndarray) -> Probe:
        """``x``: one preprocessed 1x3xHxW image (edgeslim.data.images.preprocess)."""
        detections, features = self._session.run(self._outputs, {self._input: x})
        pooled = features.reshape(features.shape[1], -1).mean(axis=1)
        embedding = pooled / max(float(np.linalg.norm(pooled)), np.finfo(np.float32).eps)
        kept = non_max_suppression(
            torch.from_numpy(detections), conf_thres=self._conf, iou_thres=self._iou, nc=self._nc, rotated=self._rotated
        )[0].numpy()
        xywh = kept[:, :4] if self._rotated else xyxy2xywh(kept[:, :4])  # rotated NMS keeps an obb's xywh (angle last)
        return Probe(embedding.astype(np.float32), kept[:, 5].astype(np.int64), xywh)
