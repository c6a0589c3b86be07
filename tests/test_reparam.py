"""Fusion of every fusable branch, auxiliary-branch stripping and the equivalence gate, on real images.

Tiny models built from yaml (v8, 11, v9 GELAN, the project's dual-head YOLOv9), BatchNorm given
the statistics of real val images and non-trivial affine parameters so folding has work to do.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from ultralytics.cfg import get_cfg
from ultralytics.nn.modules import CBFuse, CBLinear, Detect
from ultralytics.nn.tasks import DetectionModel, OBBModel, PoseModel, SegmentationModel, yaml_model_load
from ultralytics.utils.loss import v8DetectionLoss

from edgeslim.config import load_params
from edgeslim.dag.steps.fuse import check_fused
from edgeslim.data.images import list_images, preprocess, preprocess_batch
from edgeslim.data.tasks import KPT_SHAPE
from edgeslim.gates import equivalence_gate
from edgeslim.models.arch import write_arch_yaml
from edgeslim.models.checkpoint import save_checkpoint
from edgeslim.models.dual import DualDetectionLoss, build_detection_model, is_dual
from edgeslim.reparam.equivalence import compare_models, first_departure
from edgeslim.reparam.fuse import fuse_model
from edgeslim.reparam.strip import strip_auxiliary
from edgeslim.ultra import CFG_MODELS

IMGSZ = 64
NC = 5
FAMILIES = {"yolov8": "Conv", "yolo11": "DWConv", "yolov9t": "RepConv", "yolov9-dual": "RepConv"}
PARITY = 1e-6  # the bar for a correct fusion on real images
VAR_FLOOR = 0.1


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml", ["baseline.scale=[0.33, 0.125, 256]"])


@pytest.fixture(scope="module")
def val_dir(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint.parent / "data" / "images" / "val"


@pytest.fixture(scope="module")
def images(val_dir: Path) -> np.ndarray:
    return np.concatenate([preprocess(p, IMGSZ) for p in sorted(val_dir.glob("*.jpg"))])


@pytest.fixture(scope="module")
def build(params, images: np.ndarray, tmp_path_factory: pytest.TempPathFactory):
    """``build(arch)``: a fresh copy of the module's one tiny model of ``arch`` (built once: CI time)."""
    built: dict[str, DetectionModel] = {}

    def get(arch: str) -> DetectionModel:
        if arch not in built:
            built[arch] = _build(arch, params, images, tmp_path_factory.mktemp(arch))
        return copy.deepcopy(built[arch])

    return get


def _build(arch: str, params, images: np.ndarray, out_dir: Path) -> DetectionModel:
    """A tiny model of ``arch`` whose BatchNorm layers are far from identity: random affine
    parameters and the running statistics of real images, variances floored at ``VAR_FLOOR``.

    Why the floor: an untrained network whose near-constant channels get divided by sqrt(var + eps)
    amplifies float32 rounding ~1000x over a GELAN's depth (measured: 1e-4 relative, unfused and fused
    alike against float64); trained networks give such channels small gammas (a dual YOLOv9 trained
    4 epochs here: 6e-8 relative L2 after strip + fuse). Without real statistics at all the output
    hardly depends on the kernels, and a corrupted kernel would go unnoticed.
    """
    if arch == "yolov9t":  # ultralytics' GELAN yamls have no scales: the t size is already tiny
        cfg = yaml_model_load(next(CFG_MODELS.rglob("yolov9t.yaml")))
    else:
        cfg = yaml_model_load(write_arch_yaml(params.baseline.model_copy(update={"arch": arch}), NC, out_dir))
    torch.manual_seed(0)
    return _with_real_statistics(build_detection_model(cfg, nc=NC), images)


def _with_real_statistics(model: DetectionModel, images: np.ndarray) -> DetectionModel:
    """``model`` with its BatchNorm layers far from identity (see :func:`_build`)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_(0.0, 0.2)
        bn.momentum = 1.0  # running statistics = those of the real images below
    with torch.no_grad():
        model.train()(torch.from_numpy(images))
    for bn in bns:
        bn.running_var.clamp_(min=VAR_FLOOR)
    return model.eval()


@pytest.mark.parametrize("arch", FAMILIES)
def test_fused_model_is_equivalent_on_real_images(arch: str, build, params, images: np.ndarray):
    model = build(arch)
    single = strip_auxiliary(model)[0] if is_dual(model) else model
    fused, report = fuse_model(single)
    assert report.bn_before > 0 and report.bn_after == 0 and not report.not_fused
    assert FAMILIES[arch] in report.as_dict()["fused_kinds"]
    assert all(hasattr(m, "bn") for m in model.modules() if type(m).__name__ == "Conv"), "fusion works on a copy"

    eq = compare_models(model, fused, images)
    assert set(eq.parts) == {"raw_boxes", "raw_scores", "decoded_boxes", "decoded_scores"}
    assert eq.rel_l2 <= PARITY, eq.parts
    assert equivalence_gate(eq, params.fuse).passed


def test_dual_head_trains_both_heads_and_strips_to_the_main_one(build, params, images: np.ndarray):
    dual = build("yolov9-dual")
    dual.args = get_cfg()  # loss gains (box, cls, dfl) as the trainer sets them
    x = torch.from_numpy(images[:2])
    with torch.no_grad():
        preds = dual.train()(x)
    assert isinstance(preds, list) and len(preds) == 2 and all("scores" in p for p in preds), "[aux, main] while training"
    batch = {
        "img": x,
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[1.0], [3.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.2], [0.3, 0.6, 0.2, 0.2]]),
    }
    weight = params.baseline.aux_loss_weight
    total, _ = DualDetectionLoss(dual, weight)(preds, batch)
    main, _ = v8DetectionLoss(dual)(preds[1], batch)
    aux, _ = v8DetectionLoss(dual)(preds[0], batch)
    assert aux.sum() > 0 and torch.allclose(total, main + weight * aux)
    dual.eval()

    plain, report = strip_auxiliary(dual)
    assert type(plain) is DetectionModel and type(plain.model[-1]) is Detect
    assert not any(isinstance(m, (CBLinear, CBFuse)) for m in plain.modules())
    assert {"CBLinear", "CBFuse"} <= set(report.removed.values())
    assert report.params_after == sum(p.numel() for p in plain.parameters()) < report.params_before
    head, plain_head = dual.model[-1], plain.model[-1]
    assert torch.equal(plain_head.cv3[0][-1].weight, head.cv3[0][-1].weight), "the main head's weights, not the auxiliary one's"
    assert not torch.equal(plain_head.cv3[0][-1].weight, head.aux.cv3[0][-1].weight)
    eq = compare_models(dual, plain, images)
    assert eq.rel_l2 == 0.0, "stripping alone changes no number of the main output"


@pytest.mark.parametrize("arch", ["yolov9t", "yolov9-dual"])
def test_corrupted_fused_kernel_fails_the_gate_and_names_the_module(arch: str, build, params, val_dir: Path, tmp_path: Path):
    model = build(arch)
    strip = None
    single = model
    if is_dual(model):
        single, strip = strip_auxiliary(model)
    fused, report = fuse_model(single)
    if strip:  # a conv of the main head, whose layer index stripping changed
        target = next(n for n in report.fused if n.startswith(f"model.{len(fused.model) - 1}.cv2"))
    else:
        reps = sorted(n for n, k in report.fused.items() if k == "RepConv")
        target = reps[len(reps) // 2]
    kernel = fused.get_submodule(target).conv.weight
    kernel.data *= 1.5  # one fused kernel off by half its value
    source = save_checkpoint(model, {}, tmp_path / "source.pt")
    corrupt = save_checkpoint(fused, {}, tmp_path / "fused.pt")

    images = preprocess_batch(list_images(val_dir)[: params.fuse.equivalence_images], IMGSZ)
    gate, eq = check_fused(source, corrupt, images, params.fuse, "equivalence", strip.rename() if strip else None)
    assert not gate.passed
    assert eq["departure"]["module"] == target and eq["departure"]["tolerance"] == params.fuse.max_rel_l2
    assert eq["departure"]["rel_l2"] > params.fuse.max_rel_l2 and target in gate.detail
    if strip:
        assert eq["departure"]["reference_module"] != target and eq["departure"]["reference_module"].startswith(
            f"model.{len(model.model) - 1}."
        )


TASK_MODELS = {"segment": SegmentationModel, "pose": PoseModel, "obb": OBBModel}
# what each task's head adds to a detector's outputs, and the branch of the head that makes it
TASK_OUTPUTS = {"segment": ({"raw_mask_coefficient", "raw_proto"}, "proto"), "pose": ({"raw_kpts"}, "cv4"), "obb": ({"raw_angle"}, "cv4")}


@pytest.mark.parametrize("task", TASK_MODELS)
def test_the_equivalence_gate_covers_every_output_of_a_tasks_head(task: str, params, images: np.ndarray, tmp_path: Path):
    """Segment's protos and mask coefficients, pose's keypoints and obb's angle are compared too: a
    fault in the task's own branch fails the gate and is named, though boxes and scores agree."""
    base = params.baseline.model_copy(update={"task": task})
    cfg = yaml_model_load(write_arch_yaml(base, NC, tmp_path, KPT_SHAPE[:2] if task == "pose" else None))
    torch.manual_seed(0)
    model = _with_real_statistics(TASK_MODELS[task](cfg, nc=NC, verbose=False), images)
    fused, report = fuse_model(model)
    assert report.bn_after == 0 and not report.not_fused

    eq = compare_models(model, fused, images)
    own, branch = TASK_OUTPUTS[task]
    assert set(eq.parts) == {"raw_boxes", "raw_scores", "decoded_boxes", "decoded_scores", "decoded_extra", *own}
    assert eq.rel_l2 <= PARITY and equivalence_gate(eq, params.fuse).passed, eq.parts

    head = f"model.{len(fused.model) - 1}.{branch}"
    target = sorted(n for n in report.fused if n.startswith(head))[-1]
    fused.get_submodule(target).conv.weight.data *= 1.5
    broken = compare_models(model, fused, images)
    assert not equivalence_gate(broken, params.fuse).passed
    assert broken.parts["raw_boxes"]["rel_l2"] <= PARITY and broken.parts["raw_scores"]["rel_l2"] <= PARITY
    assert max(broken.parts[k]["rel_l2"] for k in own) > params.fuse.max_rel_l2
    assert first_departure(model, fused, images, params.fuse.max_rel_l2)["module"] == target
