"""The embedded set for every ultralytics task (issue 28 item 2), read back by ultralytics itself.

Why: each task's labels must be what ultralytics' own loader accepts (a malformed row is dropped
as "corrupt" and the model silently learns less), the same seed must give the same bytes, and the
detector's set, which the kept references were trained on, must not change by a byte.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from test_arch_families import ONE_EPOCH, TINY_DATA

from edgeslim.baseline.train import train_baseline
from edgeslim.config import ConfigError, load_params
from edgeslim.data.images import preprocess
from edgeslim.data.synthetic import generate_dataset, render_scene
from edgeslim.data.tasks import FLIP_IDX, HIDDEN, KPT_SHAPE, VISIBLE
from edgeslim.ultra import YOLO

SMALL = ["dataset.splits={train: 24, val: 12, calib_pool: 24}", "dataset.image_size=160", "dataset.object_size=[16,48]"]
# sha256 of the SMALL detect set as the generator wrote it before it knew any other task
DETECT_BEFORE_TASKS = "577cba8f31f9e4268f8d1d8de3453f6db845731a268cd468c77b6a7456d5efb5"
OTHER_TASKS = ("segment", "pose", "obb")


def test_the_detect_set_is_byte_identical_to_before_tasks_existed(tmp_path: Path):
    assert generate_dataset(load_params(REPO / "params.yaml", SMALL).dataset, tmp_path / "d", progress=False).sha256 == DETECT_BEFORE_TASKS


@pytest.mark.parametrize("task", OTHER_TASKS)
def test_each_task_is_seeded_and_read_by_ultralytics(task: str, tmp_path: Path):
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    p = load_params(REPO / "params.yaml", [*SMALL, "dataset.defect_fraction=1.0"])
    a = generate_dataset(p.dataset, tmp_path / "a", progress=False, task=task)
    assert generate_dataset(p.dataset, tmp_path / "b", progress=False, task=task).sha256 == a.sha256
    assert a.sha256 != DETECT_BEFORE_TASKS

    data = check_det_dataset(str(a.data_yaml))
    seen = YOLODataset(img_path=data["train"], data=data, imgsz=160, augment=False, task=task)
    labels = seen.labels
    assert len(labels) == 24 and all(len(lb["cls"]) for lb in labels), "every board has objects, none dropped as corrupt"
    classes = {int(c) for lb in labels for c in lb["cls"].ravel()}
    if task == "segment":
        assert data["names"][len(p.dataset.classes)] == p.dataset.defect_class and len(p.dataset.classes) in classes
        assert all(len(lb["segments"]) == len(lb["cls"]) for lb in labels)
    if task == "pose":
        assert tuple(data["kpt_shape"]) == KPT_SHAPE and tuple(data["flip_idx"]) == FLIP_IDX
        assert all(lb["keypoints"].shape == (len(lb["cls"]), *KPT_SHAPE) for lb in labels)
    if task == "obb":
        assert all(len(s) == 4 for lb in labels for s in lb["segments"]), "four corners per box"


def test_pose_marks_covered_corners_hidden_and_obb_turns_the_parts():
    p = load_params(REPO / "params.yaml").dataset
    seen = [v for i in range(60) for part in render_scene(p, "pose", 0, i)[1] for *_, v in part.corners]
    assert set(seen) == {VISIBLE, HIDDEN}, "a cable or finger over a corner hides it, the rest are visible"
    turns = []
    for i in range(20):
        for part in render_scene(p, "obb", 0, i)[1]:
            (x0, y0), (x1, y1) = part.outline[:2]
            turns.append(math.degrees(math.atan2(y1 - y0, x1 - x0)))
            bx0, by0, bx1, by1 = part.box
            assert all(bx0 - 1 <= x <= bx1 + 1 and by0 - 1 <= y <= by1 + 1 for x, y in part.outline), "corners inside its box"
    assert np.mean([abs(t) % 90 > 5 for t in turns]) > 0.5, "most parts are turned off the axes"


def test_a_family_without_the_tasks_head_is_a_config_error():
    with pytest.raises(ConfigError, match=r"no pose head for 'yolov9t'.*yolov8"):
        load_params(REPO / "params.yaml", ["baseline.arch=yolov9t", "baseline.task=pose"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """``trained(task)``: params, data and a tiny model trained a few epochs on the task's own labels
    (one per task for the whole module: CI time)."""
    done: dict[str, tuple] = {}

    def get(task: str) -> tuple:
        if task not in done:
            tmp = tmp_path_factory.mktemp(task)
            p = load_params(REPO / "params.yaml", [*LEARNS, f"baseline.task={task}"])
            data = generate_dataset(p.dataset, tmp / "data", progress=False, task=task)
            done[task] = (p, data, train_baseline(p.baseline, p.evaluate, data.data_yaml, len(data.names), tmp / "train"))
        return done[task]

    return get


# the smallest run here after which every task's model scores above zero (about 30-40 s a task on 2 cores),
# so that comparing metrics is not comparing zeros
EPOCHS = 30
LEARNS = (
    "dataset.splits={train: 64, val: 16, calib_pool: 8}", "dataset.image_size=128", "dataset.object_size=[24,56]",
    "baseline.imgsz=96", "baseline.batch=8", f"baseline.epochs={EPOCHS}", "baseline.warmup_epochs=0", "baseline.lr0=0.02",
)  # fmt: skip


@pytest.mark.parametrize("task", OTHER_TASKS)
def test_the_baseline_trains_each_task_on_its_own_labels(task: str, trained):
    """ultralytics' own trainer for the task; the checkpoint says its task."""
    _, data, result = trained(task)
    model = YOLO(str(result.weights))
    assert model.task == task and model.names == dict(enumerate(data.names))
    assert result.epochs_run == EPOCHS and 0.0 <= result.map50_95 <= 1.0


@pytest.mark.parametrize("task", OTHER_TASKS)
def test_the_task_metric_is_ultralytics_own_and_its_interval_starts_from_it(task: str, trained, tmp_path: Path):
    """Mask mAP for segment, pose mAP for pose, box mAP for obb, as ultralytics' validator gives them
    (box mAP beside); the per-image matches kept for the bootstrap give back exactly that figure."""
    from edgeslim.evaluate.accuracy import evaluate_map
    from edgeslim.evaluate.bootstrap import PerImage

    p, data, result = trained(task)
    size = p.baseline.imgsz
    ours = evaluate_map(result.weights, data.data_yaml, size, p.evaluate, tmp_path / "ours", task=task)
    theirs = YOLO(str(result.weights)).val(
        data=str(data.data_yaml), imgsz=size, batch=p.evaluate.batch, conf=p.evaluate.conf, iou=p.evaluate.iou, rect=False,
        device="cpu", plots=False, verbose=False, project=str(tmp_path / "theirs"), workers=0,
    )  # fmt: skip
    primary = getattr(theirs, {"segment": "seg", "pose": "pose", "obb": "box"}[task])
    assert ours.map50_95 == pytest.approx(primary.map) and ours.box_map50_95 == pytest.approx(theirs.box.map)
    boxes = evaluate_map(result.weights, data.data_yaml, size, p.evaluate, tmp_path / "boxes", task=task, metric="box")  # gates.metric=box
    assert boxes.map50_95 == pytest.approx(theirs.box.map)
    assert PerImage.load(boxes.per_image).scorer().map50_95() == pytest.approx(theirs.box.map, abs=1e-9)
    assert ours.map50_95 > 0, "the model learned something: the figures compared are not zeros"
    assert PerImage.load(ours.per_image).scorer().map50_95() == pytest.approx(ours.map50_95, abs=1e-9)


def test_nms_runs_to_the_end_whatever_the_clock(monkeypatch: pytest.MonkeyPatch):
    """ultralytics' NMS gives up after 2 s plus 50 ms an image and returns no boxes for the rest of the
    batch: on a busy machine the same OBB model scored 0.0696 and 0.156. Every NMS edgeslim's
    validations run (through ``edgeslim.ultra``) ignores the clock, here one that jumps 100 s a reading."""
    from types import SimpleNamespace

    import torch

    from edgeslim.ultra import nms

    readings = iter(range(0, 10**6, 100))
    monkeypatch.setattr(nms, "time", SimpleNamespace(time=lambda: float(next(readings))))
    preds = torch.zeros(4, 4 + 2, 8)  # 4 images, 8 candidates each: xywh, 2 class scores
    preds[:, :2] = 50.0 + torch.arange(8) * 40.0  # centres 40 px apart
    preds[:, 2:4] = 20.0  # 20 px boxes: none overlaps, none is suppressed
    preds[:, 4] = 0.9
    for rotated in (False, True):
        rows = preds if not rotated else torch.cat([preds, torch.zeros(4, 1, 8)], 1)  # obb: an angle row
        kept = nms.non_max_suppression(rows, 0.25, 0.7, nc=2, rotated=rotated)
        assert [len(k) for k in kept] == [8, 8, 8, 8], rotated


def _saved(task: str, nc: int, tmp: Path, kpt_shape: tuple[int, int] | None = None) -> Path:
    """A tiny untrained ``task`` model of ``nc`` classes saved as ultralytics saves one."""
    import torch
    from ultralytics.nn.tasks import DetectionModel, OBBModel, PoseModel, SegmentationModel

    from edgeslim.models.arch import write_arch_yaml

    base = load_params(REPO / "params.yaml", [*ONE_EPOCH, f"baseline.task={task}"]).baseline
    cls = {"detect": DetectionModel, "segment": SegmentationModel, "pose": PoseModel, "obb": OBBModel}[task]
    model = cls(str(write_arch_yaml(base, nc, tmp / task, kpt_shape)), nc=nc, verbose=False)
    model.names = {i: n for i, n in enumerate(NAMES[:nc])}
    path = tmp / f"{task}-{nc}.pt"
    torch.save({"model": model}, path)
    return path


NAMES = ("resistor", "capacitor", "ic", "led", "connector", "solder_bridge")


@pytest.mark.parametrize(
    ("model_task", "data_task", "nc", "kpt_shape", "message"),
    [
        ("segment", "detect", 5, None, "is a segment model, but the dataset's labels are boxes (a segment model needs polygons)"),
        ("pose", "pose", 5, (17, 3), "predicts keypoints of shape [17, 3], but the dataset's kpt_shape is [4, 3]"),
        ("detect", "pose", 5, None, "is a detect model, but the dataset's labels are keypoints"),
        ("segment", "segment", 5, None, "predicts 5 classes"),
    ],
)
def test_a_model_its_data_cannot_train_or_score_is_one_clear_error(model_task, data_task, nc, kpt_shape, message, tmp_path: Path):
    """The task is read from the checkpoint and the kind of labels from the data, as ultralytics reads
    them; a mismatch is named. A model that suits its data passes the same check."""
    from edgeslim.dag.source import check_against_data, source_facts
    from edgeslim.errors import EdgeslimError

    p = load_params(REPO / "params.yaml", list(TINY_DATA))
    data = generate_dataset(p.dataset, tmp_path / "data", progress=False, task=data_task)
    facts = source_facts(_saved(model_task, nc, tmp_path, kpt_shape), 64)
    assert facts["task"] == model_task and facts["kpt_shape"] == (list(kpt_shape) if kpt_shape else None)
    with pytest.raises(EdgeslimError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        check_against_data(facts, data, "the model")
    suited = generate_dataset(p.dataset, tmp_path / "suited", progress=False, task=model_task)
    if nc == len(suited.names) and (kpt_shape or (4, 3)) == (4, 3):
        check_against_data(facts, suited, "the model")


def test_gates_metric_names_one_of_the_tasks_maps_and_a_foreign_one_is_refused(tmp_path: Path):
    """``gates.metric``: null is the task's primary; box is there for every task; a mask mAP of a
    pose model is one clear error when the source is read, before anything is compressed."""
    from edgeslim.dag.source import checked_source_facts
    from edgeslim.data.tasks import scoring
    from edgeslim.errors import CheckpointError

    assert [scoring(t, None).label for t in ("detect", "segment", "pose", "obb")] == [
        "box mAP50-95", "mask mAP50-95", "pose mAP50-95", "OBB mAP50-95",
    ]  # fmt: skip
    assert scoring("segment", "box").key == "metrics/mAP50-95(B)" and scoring("pose", None).key == "metrics/mAP50-95(P)"
    p = load_params(REPO / "params.yaml", ["compress.imgsz=64", "gates.metric=mask"])
    assert checked_source_facts(_saved("segment", 6, tmp_path), p)["task"] == "segment"
    with pytest.raises(CheckpointError, match=r"gates.metric mask: a pose model is scored on pose or box mAP only"):
        checked_source_facts(_saved("pose", 5, tmp_path, (4, 3)), p)


@pytest.mark.parametrize("task", OTHER_TASKS)
def test_a_tasks_export_matches_its_model_on_every_output(task: str, trained, tmp_path: Path):
    """ONNX (ONNX Runtime) and its OpenVINO IR against the torch model: boxes, scores, the task's own
    rows (mask coefficients, keypoints, angle) and a segment export's protos; the ONNX scored by the
    task's validator keeps the model's metric."""
    from edgeslim.data.images import preprocess_batch
    from edgeslim.data.splits import split_images
    from edgeslim.evaluate.accuracy import evaluate_map
    from edgeslim.export.onnx_export import export_onnx
    from edgeslim.models.checkpoint import read_checkpoint
    from edgeslim.reparam.equivalence import compare_runtime
    from edgeslim.runtime.openvino_backend import convert_onnx

    p, data, result = trained(task)
    size = p.baseline.imgsz
    onnx = export_onnx(result.weights, size, p.export.opset, tmp_path / f"{task}.onnx", task=task)
    ir = convert_onnx(onnx, tmp_path / "ir", task)
    _, model, _ = read_checkpoint(result.weights)
    images = preprocess_batch(split_images(data.data_yaml, "val")[: p.fuse.equivalence_images], size)
    own = {"decoded_boxes", "decoded_scores", "decoded_extra", *({"raw_proto"} if task == "segment" else set())}
    for artifact, fmt in ((onnx, "onnx-fp32"), (ir, "openvino-fp32")):
        eq = compare_runtime(model, artifact, images, p.evaluate.threads, fmt)
        assert set(eq.parts) == own, fmt
        assert eq.within(p.fuse.onnx_max_rel_l2, p.fuse.onnx_max_rel_abs), (fmt, eq.parts)
    exported = evaluate_map(onnx, data.data_yaml, size, p.evaluate, tmp_path / "val", task=task)
    source = evaluate_map(result.weights, data.data_yaml, size, p.evaluate, tmp_path / "val", task=task)
    assert exported.map50_95 == pytest.approx(source.map50_95, rel=0.05, abs=1e-4)


def test_an_objects_size_is_read_from_its_tasks_label_row():
    """A box row's ``w h`` and a polygon row's area (segment outline, obb corners) give the same
    size for the same square; a polygon's columns 3-4 are a corner, not a size. On the generator's
    own parts, each task's label gives at most the part's bounding box."""
    from edgeslim.data.tasks import TASKS, label_line, label_size

    square = ["0", "0.1", "0.1", "0.3", "0.1", "0.3", "0.3", "0.1", "0.3"]  # 0.2 x 0.2, corners
    assert label_size(["0", "0.2", "0.2", "0.2", "0.2"], "detect") == pytest.approx(0.2)
    assert label_size(["0", "0.2", "0.2", "0.2", "0.2", "0.1", "0.1", "2"], "pose") == pytest.approx(0.2)
    assert label_size(square, "obb") == pytest.approx(0.2)
    assert label_size(square[:1] + square[:0:-1], "segment") == pytest.approx(0.2)  # either winding
    p = load_params(REPO / "params.yaml", SMALL).dataset
    for task in TASKS:
        _, parts, _ = render_scene(p, task, 0, 3)
        for part in parts:
            x0, y0, x1, y1 = part.box
            bound = math.sqrt((x1 - x0) * (y1 - y0)) / p.image_size
            assert 0.3 * bound < label_size(label_line(part, p.image_size, task).split(), task) <= bound + 1e-3, (task, part)


@pytest.mark.parametrize("task", OTHER_TASKS)
def test_calibration_reads_a_tasks_labels_and_predictions(task: str, trained, tmp_path: Path):
    """The calibration pool's objects from the task's labels (sizes of the outlines, not of a
    corner's coordinates) and from the model's own predictions (classes only from the class columns:
    mask coefficients, keypoints and an angle are not classes)."""
    from edgeslim.calibration.pool import measure_pool
    from edgeslim.calibration.probe import ModelProbe
    from edgeslim.data.splits import split_images
    from edgeslim.export.onnx_export import export_onnx

    p, data, result = trained(task)
    size = p.baseline.imgsz
    onnx = export_onnx(result.weights, size, p.export.opset, tmp_path / f"{task}.onnx", task=task)
    nc = len(data.names)
    probe = ModelProbe(
        onnx, nc, task, p.evaluate.conf, p.calibration.pred_iou, p.evaluate.threads
    )  # a barely trained model: keep its faint boxes
    images = split_images(data.data_yaml, "val")
    seen = [probe(preprocess(image, size)) for image in images]
    classes = np.concatenate([s.classes for s in seen])
    assert classes.size and classes.min() >= 0 and classes.max() < nc
    assert (np.concatenate([s.boxes_xywh[:, 2:4] for s in seen]) > 0).all()  # widths and heights, whatever the box kind
    labelled = measure_pool(images, probe, size, nc, task)
    assert labelled.objects_from == "labels" and all(0 < s.object_size < 1 for s in labelled.stats if s.objects)


@pytest.mark.parametrize("task", OTHER_TASKS)
def test_int8_keeps_each_tasks_decode_float_and_quantizes_its_learned_convs(task: str, trained, tmp_path: Path):
    """quantize.keep_float=decode on a task head: the ops that mix scales stay float (the output's
    concat of boxes, scores and mask coefficients; keypoint decode; the angle's sigmoid and the
    rotation's cos/sin), while the learned convs of the task's own branch (cv4, a segment model's
    protos) quantize like the box and class branches."""
    import onnx

    from edgeslim.export.onnx_export import export_onnx
    from edgeslim.quantize.head import decode_nodes, head_nodes

    p, _, result = trained(task)
    model = onnx.load(str(export_onnx(result.weights, p.baseline.imgsz, p.export.opset, tmp_path / f"{task}.onnx", task=task)))
    decode, head = set(decode_nodes(model)), set(head_nodes(model))
    produced_by = {out: node for node in model.graph.node for out in node.output}
    assert produced_by[model.graph.output[0].name].name in decode  # output0: boxes, scores and the task's rows, joined
    own = [n for n in model.graph.node if n.name in head and n.op_type == "Conv" and "/cv4." in n.name]
    assert own and not any(n.name in decode for n in own)
    ops = {n.op_type for n in model.graph.node if n.name in decode}
    if task == "obb":
        assert {"Cos", "Sin", "Sigmoid"} <= ops
    if task == "pose":
        assert sum(n.op_type == "Sigmoid" for n in model.graph.node if n.name in decode) == 2  # class scores and keypoint visibility
    if task == "segment":
        proto = [n for n in model.graph.node if n.name in head and "/proto/" in n.name and n.op_type == "Conv"]
        assert proto and not any(n.name in decode for n in proto)
