"""MLflow pyfunc wrapper so registered versions load with ``mlflow.pyfunc.load_model``.

The artifact itself (``weights``: a .pt or .onnx) is what edgeslim pulls and ships; the wrapper
makes the version usable from any MLflow client: input a DataFrame with an ``image`` column of
file paths, output one row per detection.

This file is logged with every version as MLflow "models from code" (``python_model=<this file>``,
``set_model`` below): consumers of the registry usually do not have edgeslim installed, so it imports
only mlflow, pandas and (when loaded) ultralytics, and no pickled edgeslim class is involved.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
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


class YoloDetector(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001 (mlflow's context type)
        from ultralytics import YOLO

        self._model = YOLO(context.artifacts[WEIGHTS_KEY], task="detect")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001, ARG002 (mlflow PythonModel interface)
        rows = []
        for path in model_input["image"]:
            result = self._model.predict(str(path), verbose=False, device="cpu")[0]
            for (x0, y0, x1, y1), conf, cls in zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist()):
                rows.append({"image": path, "class": result.names[int(cls)], "conf": conf, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
        return pd.DataFrame(rows, columns=[name for name, _ in OUTPUT_COLUMNS])


set_model(YoloDetector())
