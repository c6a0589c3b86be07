"""The ultralytics tasks the embedded set is written for, and each one's label format.

Why one module: the generator, the arch lookup and the trainer all need to agree on what a task
is called, which label columns it writes and which metric it is judged on, and these follow
ultralytics' own conventions (``docs/datasets/{detect,segment,pose,obb}``), which this module
states once:

- detect: ``cls cx cy w h``;
- segment: ``cls x1 y1 ... xn yn``, the object's outline polygon;
- pose: ``cls cx cy w h`` then ``x y v`` per keypoint (v 2 visible, 1 labelled but hidden), with
  ``kpt_shape`` and ``flip_idx`` in data.yaml;
- obb: ``cls x1 y1 x2 y2 x3 y3 x4 y4``, the turned box's corners.

All coordinates are normalised to the image size. Imports neither torch nor ultralytics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from edgeslim.errors import CheckpointError

Task = Literal["detect", "segment", "pose", "obb"]
TASKS: tuple[Task, ...] = ("detect", "segment", "pose", "obb")
YAML_SUFFIX = {"segment": "seg", "pose": "pose", "obb": "obb"}  # ultralytics' model yamls: yolov8-seg.yaml, ...

Metric = Literal["box", "mask", "pose"]  # which of the validator's mAPs: gates.metric
METRICS: dict[Task, tuple[Metric, ...]] = {"detect": ("box",), "segment": ("mask", "box"), "pose": ("pose", "box"), "obb": ("box",)}
METRIC_SUFFIX = {"box": "B", "mask": "M", "pose": "P"}  # ultralytics' key for it: metrics/mAP50-95(M)
METRIC_RESULTS = {"box": "box", "mask": "seg", "pose": "pose"}  # where the validator's results hold it
METRIC_MATCHES = {"box": "tp", "mask": "tp_m", "pose": "tp_p"}  # the per-prediction matches it counts
KPT_SHAPE = (4, 3)  # pose: each part's corners (top-left, top-right, bottom-right, bottom-left), x y visibility
FLIP_IDX = (1, 0, 3, 2)  # a horizontal flip swaps the left and right corners
POSE_YAML_KEYS = ("kpt_shape", "flip_idx")  # what a pose set's data.yaml adds (data_yaml_extras), as ultralytics names it
VISIBLE, HIDDEN = 2, 1  # ultralytics' keypoint visibility: labelled and visible, labelled but covered

Point = tuple[float, float]


@dataclass(frozen=True)
class Part:
    """One labelled object of a board, in pixels.

    ``box`` bounds it (x0, y0, x1, y1); ``outline`` is its shape as a polygon (the mask a segment
    label gives, the turned corners an obb label gives); ``corners`` are its keypoints with their
    visibility."""

    cls: int
    box: tuple[int, int, int, int]
    outline: tuple[Point, ...]
    corners: tuple[tuple[float, float, int], ...]


def a_model(task: str) -> str:
    """``a segment model``, ``an obb model``: a task's model named in an error."""
    return f"{'an' if task[0] in 'aeiou' else 'a'} {task} model"


def ultralytics_key(metric: Metric, which: str = "mAP50-95") -> str:
    """The key ultralytics' trainer, validator and results.csv write ``metric`` under: ``metrics/mAP50-95(M)``."""
    return f"metrics/{which}({METRIC_SUFFIX[metric]})"


def metric_key(task: Task, which: str = "mAP50-95") -> str:
    """The key ultralytics' trainer and validator report the task's primary metric under."""
    return ultralytics_key(METRICS[task][0], which)


def metric_name(task: Task) -> str:
    """The task's primary mAP50-95 as ultralytics' own results name it (``mAP50-95(M)``): what a
    training's epoch and result lines show."""
    return metric_key(task).removeprefix("metrics/")


@dataclass(frozen=True)
class Scoring:
    """What a run's validations are scored as: the source's task, and the one of its metrics the
    gates compare (``gates.metric``; null: the task's primary, which ultralytics' own trainer and
    results lead with)."""

    task: Task
    metric: Metric

    @property
    def label(self) -> str:
        """The metric as the report, the plots and MLflow name it: ``mask mAP50-95``, ``OBB mAP50-95``."""
        return f"{'OBB' if self.task == 'obb' else self.metric} mAP50-95"

    @property
    def key(self) -> str:
        """ultralytics' own key for it (``metrics/mAP50-95(M)``), as its trainer and results.csv write it."""
        return ultralytics_key(self.metric)


def scoring(task: Task, metric: Metric | None) -> Scoring:
    """The scoring of a ``task`` model on ``metric`` (None: the task's primary), or one clear error
    for a metric the task has none of (a mask mAP of a detector)."""
    chosen = metric or METRICS[task][0]
    if chosen not in METRICS[task]:
        raise CheckpointError(f"gates.metric {chosen}: {a_model(task)} is scored on {' or '.join(METRICS[task])} mAP only")
    return Scoring(task, chosen)


def _xy(x: float, y: float, size: int) -> str:
    return f"{min(max(x / size, 0.0), 1.0):.6f} {min(max(y / size, 0.0), 1.0):.6f}"


def label_line(part: Part, size: int, task: Task) -> str:
    """One object's row of a label file, in ``task``'s format."""
    x0, y0, x1, y1 = part.box
    box = f"{(x0 + x1) / 2 / size:.6f} {(y0 + y1) / 2 / size:.6f} {(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}"
    if task == "detect":
        return f"{part.cls} {box}"
    if task == "pose":
        return f"{part.cls} {box} " + " ".join(f"{_xy(x, y, size)} {v}" for x, y, v in part.corners)
    return f"{part.cls} " + " ".join(_xy(x, y, size) for x, y in part.outline)


def label_size(row: list[str], task: Task) -> float:
    """An object's size in a label row of ``task``'s format: the square root of its area, as a fraction
    of the image side (a box's ``w h``; a segment or obb row's polygon, by the shoelace formula)."""
    if task in ("detect", "pose"):
        return math.sqrt(float(row[3]) * float(row[4]))
    xs, ys = [float(v) for v in row[1::2]], [float(v) for v in row[2::2]]
    area = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs))) / 2
    return math.sqrt(abs(area))


def data_yaml_extras(task: Task) -> str:
    """What a task adds to data.yaml besides the splits and names (pose: the keypoints' shape and flip order)."""
    if task != "pose":
        return ""
    shape, flip = POSE_YAML_KEYS
    return f"{shape}: [{KPT_SHAPE[0]}, {KPT_SHAPE[1]}]\n{flip}: [{', '.join(map(str, FLIP_IDX))}]\n"
