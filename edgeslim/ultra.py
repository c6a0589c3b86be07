"""The one door to ultralytics: offline settings first, then the import.

Why a module of its own: ultralytics reads its settings and environment at import time, tries to
download fonts and weights, and auto-logs to MLflow when mlflow is installed. edgeslim runs where
nothing can be downloaded and logs to MLflow itself (one parent run, nested stage runs), so every
import of ultralytics in the project goes through here, after these settings are in place.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path

_CONFIG_DIR = Path(os.environ.get("YOLO_CONFIG_DIR", Path.home() / ".config" / "edgeslim-ultralytics"))
os.environ.setdefault("YOLO_CONFIG_DIR", str(_CONFIG_DIR))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")
_CONFIG_DIR.mkdir(parents=True, exist_ok=True)

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
