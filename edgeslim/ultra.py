"""The one door to ultralytics' settings: no auto-logging, NMS that ignores the clock.

Why a module of its own: ultralytics auto-logs to MLflow when mlflow is installed, and edgeslim logs to
MLflow itself (one parent run, nested stage runs). Its environment (offline, quiet) must be in place
before ultralytics is first imported, so the package's ``__init__`` sets it; what can only be set on
the imported library is set here.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path

Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)  # the package's __init__ named it

import ultralytics  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.data.utils import IMG_FORMATS  # noqa: E402, F401 (the image suffixes ultralytics reads: data.images, data.splits)
from ultralytics.utils import DATASETS_DIR, SETTINGS, nms  # noqa: E402, F401
from ultralytics.utils.ops import xyxy2xywh  # noqa: E402

# edgeslim owns MLflow logging; ultralytics' own callback would open stray runs in the same server.
for _key in ("mlflow", "sync", "hub", "wandb", "tensorboard", "clearml", "comet", "dvc", "neptune", "raytune"):
    if SETTINGS.get(_key):
        SETTINGS.update({_key: False})

# ultralytics' NMS gives up after 2 s plus 50 ms per image of a batch and returns no boxes for the
# batch's remaining images (a "NMS time limit exceeded" warning). On a busy 2-core machine a metric then
# depends on the load: one OBB model scored mAP50-95 0.0696 and 0.156 within one run. Scores and gates
# must not read the clock, so every validation and prediction runs its NMS to the end.
nms.non_max_suppression = partial(nms.non_max_suppression, max_time_img=math.inf)
non_max_suppression = nms.non_max_suppression

CFG_MODELS = Path(ultralytics.__file__).parent / "cfg" / "models"

__all__ = ["YOLO", "CFG_MODELS", "non_max_suppression", "xyxy2xywh"]
