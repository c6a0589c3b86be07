"""What a dataset's labels can train and score, read as ultralytics reads them, checked against a model's task.

Why: ultralytics trains a segment model on box labels, or a pose model on keypoints of another shape,
without an error until deep in the loss (or quietly, with empty masks). A user who points a segment
checkpoint at a detection set should learn that in one line, before anything trains.

ultralytics' data.yaml names no task. Its label files say what they hold: 5 columns are a box; more
are a polygon, which both segment (the mask) and obb (the turned box fitted to it) take, and which a
detector reduces to its box; ``kpt_shape`` in data.yaml makes every row a box plus keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from edgeslim.data.images import label_file
from edgeslim.data.splits import split_images
from edgeslim.data.tasks import Task, a_model
from edgeslim.errors import DataError

BOX_COLUMNS = 5  # class, cx, cy, w, h
LOOKED_AT = 20  # val label files read to tell boxes from polygons (the generator and ultralytics write one kind per set)


@dataclass(frozen=True)
class LabelKind:
    """``boxes``, ``polygons`` or ``keypoints`` (with ``kpt_shape``)."""

    kind: str
    kpt_shape: tuple[int, int] | None


def label_kind(data_yaml: Path) -> LabelKind:
    """The kind of labels the dataset's val split holds (see module doc)."""
    shape = (yaml.safe_load(Path(data_yaml).read_text()) or {}).get("kpt_shape")
    if shape:
        return LabelKind("keypoints", (int(shape[0]), int(shape[1])))
    labels = [f for f in (label_file(i) for i in split_images(data_yaml, "val")[:LOOKED_AT]) if f.is_file()]
    widths = {len(row.split()) for f in labels for row in f.read_text().splitlines() if row.strip()}
    return LabelKind("polygons" if widths and min(widths) > BOX_COLUMNS else "boxes", None)


NEEDS = {"segment": ("polygons",), "obb": ("polygons",), "pose": ("keypoints",), "detect": ("boxes", "polygons")}


def check_task_against_labels(task: Task, kpt_shape: tuple[int, int] | None, labels: LabelKind, label: str) -> None:
    """One clear error when ``label`` (a model of ``task``) cannot be trained or scored on ``labels``."""
    if labels.kind not in NEEDS[task]:
        raise DataError(
            f"{label} is {a_model(task)}, but the dataset's labels are {labels.kind} "
            f"({a_model(task)} needs {' or '.join(NEEDS[task])}): point dataset.data_yaml at {task} labels"
        )
    if task == "pose" and kpt_shape != labels.kpt_shape:
        raise DataError(
            f"{label} predicts keypoints of shape {list(kpt_shape or ())}, but the dataset's kpt_shape is "
            f"{list(labels.kpt_shape or ())}: the model and the data must agree on the keypoints"
        )
