"""MLflow pyfunc wrapper so registered versions load with ``mlflow.pyfunc.load_model``.

The artifact itself (``weights``: a .pt, an .onnx, or the preferred format's OpenVINO IR folder, run at
the precision it was gated at) is what edgeslim pulls and ships; the wrapper
makes the version usable from any MLflow client: input a DataFrame with an ``image`` column of
file paths, output one row per detection.

This file is logged with every version as MLflow "models from code" (``python_model=<this file>``,
``set_model`` below): consumers of the registry usually do not have edgeslim installed, so it imports
only mlflow, pandas and (when loaded) ultralytics, and no pickled edgeslim class is involved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import yaml
from mlflow.models import ModelSignature, set_model
from mlflow.types import ColSpec, Schema

WEIGHTS_KEY = "weights"
OUTPUT_COLUMNS = (
    ("image", "string"),
    ("class", "string"),
    ("conf", "double"),
    ("x0", "double"),
    ("y0", "double"),
    ("x1", "double"),
    ("y1", "double"),
)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image")]), outputs=Schema([ColSpec(kind, name) for name, kind in OUTPUT_COLUMNS])
)


# An OpenVINO IR's format (metadata.yaml ``edgeslim_format``) → the precision hint it was gated at.
IR_PRECISION = {"openvino-fp32": "f32", "openvino-int8": "f32", "openvino-bf16": "bf16"}


def ir_precision(weights: str) -> str | None:
    """The precision an IR folder is to run at; None for any other artifact."""
    meta = Path(weights) / "metadata.yaml"
    if not meta.is_file():
        return None
    return IR_PRECISION.get((yaml.safe_load(meta.read_text()) or {}).get("edgeslim_format", "openvino-fp32"))


@contextlib.contextmanager
def precision(hint: str | None) -> Iterator[None]:
    """ultralytics compiles an IR at OpenVINO's default precision (bf16 on AMX CPUs): set the gated one.
    (edgeslim.runtime.openvino_backend.forced_precision does this in the pipeline; consumers lack edgeslim.)"""
    if hint is None:
        yield
        return
    import openvino as ov

    original = ov.Core.compile_model
    ov.Core.compile_model = lambda core, model, device_name=None, config=None, **kw: original(
        core, model, device_name or "CPU", {**(config or {}), "INFERENCE_PRECISION_HINT": hint}, **kw
    )
    try:
        yield
    finally:
        ov.Core.compile_model = original


class YoloDetector(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 (mlflow's context type)
        from ultralytics import YOLO

        self._model = YOLO(context.artifacts[WEIGHTS_KEY], task="detect")
        self._precision = ir_precision(context.artifacts[WEIGHTS_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001, ARG002 (mlflow PythonModel interface)
        rows = []
        for path in model_input["image"]:
            with precision(self._precision):
                result = self._model.predict(str(path), verbose=False, device="cpu")[0]
            for (x0, y0, x1, y1), conf, cls in zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist()):
                rows.append({"image": path, "class": result.names[int(cls)], "conf": conf, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
        return pd.DataFrame(rows, columns=[name for name, _ in OUTPUT_COLUMNS])


set_model(YoloDetector())
