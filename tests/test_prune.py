"""Structured pruning on v8, v9 (GELAN) and 11 models built from ultralytics yaml.

Each model is rewritten split-free (numerically checked), pruned to 40% fewer MACs, run, exported
to ONNX, and loaded back in a fresh Python process, which must compute exactly what this one does.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from edgeslim.config import load_params
from edgeslim.errors import PruneError
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.arch import write_arch_yaml
from edgeslim.models.checkpoint import save_checkpoint
from edgeslim.prune.rewrite import check_equivalent, rewrite_model
from edgeslim.prune.structured import count_macs, prune_model
from edgeslim.ultra import CFG_MODELS

REPO = Path(__file__).resolve().parents[1]
IMGSZ = 64
NC = 5
TARGET = 0.4


def _build(arch: str, tmp: Path) -> DetectionModel:
    """A tiny, randomly initialised detector of ``arch`` with non-trivial BatchNorm statistics."""
    p = load_params(REPO / "params.yaml", [f"baseline.arch={arch}"])
    cfg = str(CFG_V9T) if arch == "yolov9t" else str(write_arch_yaml(p.baseline, NC, tmp))
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=NC, verbose=False)
    model.names = {i: f"c{i}" for i in range(NC)}
    model.args = {"imgsz": IMGSZ}
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:  # the statistics of these batches (a cumulative average), not ultralytics' 0.03 step from the init's
        bn.momentum = None
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, IMGSZ, IMGSZ))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    return model.eval()


CFG_V9T = next(CFG_MODELS.rglob("yolov9t.yaml"))
_RELOAD = """
import sys, numpy as np, torch
from edgeslim.models.checkpoint import load_checkpoint
_, model = load_checkpoint(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    out = model(x)
np.save(sys.argv[3], (out[0] if isinstance(out, (tuple, list)) else out).numpy())
"""


@pytest.mark.parametrize("arch", ["yolov8", "yolov9t", "yolo11"])
def test_rewrite_prune_export_and_reload(arch: str, tmp_path: Path) -> None:
    model = _build(arch, tmp_path)
    images = np.random.default_rng(0).random((2, 3, IMGSZ, IMGSZ), dtype=np.float32)
    rewritten, report = rewrite_model(model, images, max_rel_l2=1e-6)
    assert report.rewritten, "no splitting block was found to rewrite"
    assert report.equivalence["rel_l2"] <= 1e-6

    p = load_params(REPO / "params.yaml", ["prune.ratio_deep=0.7", "prune.round_to=4"]).prune
    pruned = prune_model(rewritten, p, TARGET, IMGSZ)
    assert pruned.macs_reduction >= TARGET
    assert pruned.params_after < pruned.params_before
    assert count_macs(rewritten, IMGSZ)[0] == pruned.macs_after

    x = torch.from_numpy(images)
    with torch.no_grad():
        out = rewritten(x)[0]
    assert out.shape == model(x)[0].shape and torch.isfinite(out).all()
    assert (out[0] - out[1]).abs().max() > 0.1, "the outputs must depend on the input, or comparing them proves little"

    weights = save_checkpoint(rewritten, {"train_args": {"imgsz": IMGSZ}}, tmp_path / "pruned.pt")
    np.save(tmp_path / "x.npy", images)
    subprocess.run(
        [sys.executable, "-c", _RELOAD, str(weights), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), out.numpy(), rtol=1e-5, atol=1e-4)

    onnx_path = export_onnx(weights, IMGSZ, 17, tmp_path / "pruned.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: images[:1]})
    assert onnx_out.shape == (1, *out.shape[1:])
    np.testing.assert_allclose(onnx_out, out[:1].numpy(), rtol=1e-4, atol=1e-3)  # the exported graph computes what torch does


def test_head_outputs_are_protected_and_shallow_layers_capped(tmp_path: Path) -> None:
    model = _build("yolov8", tmp_path)
    rewritten, _ = rewrite_model(model, np.zeros((1, 3, IMGSZ, IMGSZ), np.float32), 1e-6)
    detect = rewritten.model[-1]
    heads_before = [branch[-1].out_channels for branch in (*detect.cv2, *detect.cv3)]
    first_before = rewritten.model[0].conv.out_channels
    p = load_params(REPO / "params.yaml", ["prune.ratio_shallow=0.1", "prune.ratio_deep=0.7", "prune.round_to=4"]).prune
    prune_model(rewritten, p, TARGET, IMGSZ)
    assert [branch[-1].out_channels for branch in (*detect.cv2, *detect.cv3)] == heads_before
    assert rewritten.model[0].conv.out_channels >= first_before * (1 - p.ratio_shallow)


def test_unreachable_target_is_a_clear_error(tmp_path: Path) -> None:
    model = _build("yolov8", tmp_path)
    rewritten, _ = rewrite_model(model, np.zeros((1, 3, IMGSZ, IMGSZ), np.float32), 1e-6)
    p = load_params(REPO / "params.yaml", ["prune.ratio_shallow=0.05", "prune.ratio_deep=0.1", "prune.steps=3"]).prune
    with pytest.raises(PruneError, match="short of the target 90%.*ratio_deep"):
        prune_model(rewritten, p, 0.9, IMGSZ)


def test_corrupted_rewrite_is_caught(tmp_path: Path) -> None:
    """The equivalence check is real: a rewritten block whose weights are off fails it.

    (The last block before the head: a random-init head is nearly insensitive to shallow features.)"""
    model = _build("yolov8", tmp_path)
    images = np.random.default_rng(1).random((2, 3, IMGSZ, IMGSZ), dtype=np.float32)
    rewritten, _ = rewrite_model(model, images, 1e-6)
    with torch.no_grad():
        rewritten.model[21].out.bn.bias.add_(10.0)
    with pytest.raises(PruneError, match="rel L2"):
        check_equivalent(model, rewritten, images, 1e-6, "test rewrite")


def test_sparse_training_and_iterative_rounds_keep_the_pruned_architecture(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Sparse training, then two prune → finetune rounds, with ultralytics' trainer on real images."""
    from edgeslim.data.images import list_images, preprocess_batch
    from edgeslim.models.checkpoint import load_checkpoint
    from edgeslim.prune.pipeline import prune_stage

    data_yaml = tiny_checkpoint.parent / "data" / "data.yaml"
    p = load_params(
        REPO / "params.yaml",
        [
            "baseline.imgsz=64",
            "baseline.batch=4",
            "prune.sparse.enabled=true",
            "prune.sparse.epochs=1",
            "prune.rounds=2",
            "prune.finetune.round_epochs=1",
            "prune.round_to=4",
            "prune.ratio_deep=0.7",
        ],
    )
    ckpt, model = load_checkpoint(tiny_checkpoint)
    images = preprocess_batch(list_images(data_yaml.parent / "images" / "val")[:2], 64)
    pruned, report = prune_stage(
        model, ckpt, images, data_yaml, p.baseline.imgsz, p.prune, p.baseline, p.evaluate, p.export.opset, tmp_path
    )
    assert report["sparse"]["epochs"] == 1 and (tmp_path / "sparse" / "finetuned.pt").is_file(), "sparse training wrote its checkpoint"
    assert [r["target"] for r in report["rounds"]] == [0.2, 0.4]
    assert "finetuned_map50_95" in report["rounds"][0] and report["macs_reduction"] >= 0.4
    # The round's finetuned checkpoint is the pruned architecture, not the yaml's.
    _, reloaded = load_checkpoint(tmp_path / "round1" / "finetuned.pt")
    assert count_macs(reloaded, 64)[0] == report["rounds"][0]["macs_after"]
    assert count_macs(pruned, 64)[0] == report["macs_after"]


def _labelled_batch(images: list[Path], imgsz: int) -> dict[str, torch.Tensor]:
    """``images`` and their YOLO labels as one ultralytics training batch (square images: the letterbox keeps the boxes)."""
    from edgeslim.data.images import label_file, preprocess_batch

    rows = [np.loadtxt(label_file(image), ndmin=2).reshape(-1, 5) for image in images]
    return {
        "img": torch.from_numpy(preprocess_batch(images, imgsz)),
        "cls": torch.from_numpy(np.concatenate([r[:, :1] for r in rows])).float(),
        "bboxes": torch.from_numpy(np.concatenate([r[:, 1:] for r in rows])).float(),
        "batch_idx": torch.cat([torch.full((len(r),), float(i)) for i, r in enumerate(rows)]),
    }


def _head_terms(teacher: torch.nn.Module, student: torch.nn.Module, batch: dict, head_weight: float, steps: int) -> list[float]:
    """The head distillation term at each of ``steps`` Adam steps on the training objective (detection loss
    plus distillation, as the finetune's trainer sums it) over one fixed batch; the student is a copy."""
    from ultralytics.cfg import get_cfg

    from edgeslim.prune.distill import HEAD_LOSS, HeadDistillationModel

    student = copy.deepcopy(student).float()
    student.args = get_cfg(overrides={"imgsz": batch["img"].shape[-1], "dis": 0.0})
    student.criterion = None
    for param in student.parameters():
        param.requires_grad_(True)
    wrapper = HeadDistillationModel(teacher, student, head_weight, 2.0).train()
    optimizer = torch.optim.Adam([q for q in wrapper.parameters() if q.requires_grad], lr=0.01)
    terms = []
    for _ in range(steps):
        total, items = wrapper.loss(batch)
        terms.append(float(items[HEAD_LOSS]) if head_weight else float(_head_term(wrapper).detach()))
        optimizer.zero_grad()
        total.sum().backward()
        optimizer.step()
    return terms


def _head_term(wrapper: torch.nn.Module) -> torch.Tensor:
    """The head term of the last forward pass, as the wrapper computes it (for a run that does not weigh it in)."""
    from edgeslim.prune.distill import head_distillation_loss

    level = len(wrapper.feats_idx) - 1
    student, teacher = (wrapper.decouple_outputs(feats[level]) for feats in (wrapper._student_feats, wrapper._teacher_feats))
    return head_distillation_loss(student, teacher, wrapper.reg_max, wrapper.temperature)


def test_distilled_finetune_keeps_the_student_and_learns_from_the_teacher(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The unpruned model teaches the pruned one: the run logs the head term, the result is the pruned
    student (no wrapper, no teacher), and the head term pulls the student's outputs to the teacher's."""
    from edgeslim.data.images import list_images, preprocess_batch
    from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
    from edgeslim.prune.distill import head_distillation_loss
    from edgeslim.prune.finetune import Teacher, finetune
    from edgeslim.prune.rewrite import rewrite_model
    from edgeslim.prune.structured import prune_model
    from edgeslim.reparam.fuse import fuse_model

    data_yaml = tiny_checkpoint.parent / "data" / "data.yaml"
    p = load_params(REPO / "params.yaml", ["baseline.imgsz=64", "baseline.batch=4", "prune.round_to=4", "prune.distill.enabled=true"])
    ckpt, model = load_checkpoint(tiny_checkpoint)
    images = preprocess_batch(list_images(data_yaml.parent / "images" / "val")[:2], 64)
    teacher_model, _ = fuse_model(copy.deepcopy(model))
    teacher = save_checkpoint(teacher_model, ckpt, tmp_path / "teacher.pt")
    student, _ = rewrite_model(model, images, p.prune.rewrite_max_rel_l2)
    prune_model(student, p.prune, 0.4, 64)
    result = finetune(
        student, ckpt, data_yaml, 64, p.baseline, p.evaluate, p.prune.finetune, 1, 0.0, tmp_path / "ft", Teacher(teacher, p.prune.distill)
    )
    _, tuned = load_checkpoint(result.weights)
    assert type(tuned).__name__ == "DetectionModel" and count_macs(tuned, 64)[0] == count_macs(student, 64)[0]
    log = (tmp_path / "ft" / "train" / "results.csv").read_text().splitlines()[0]
    assert "train/head_kd" in log, log

    # The head term is 0 for identical outputs and grows as the student departs from the teacher.
    nc, reg_max, anchors = 5, 16, 12
    t = {"scores": torch.randn(2, nc, anchors), "boxes": torch.randn(2, 4 * reg_max, anchors)}
    same = head_distillation_loss({k: v.clone() for k, v in t.items()}, t, reg_max, 2.0)
    far = head_distillation_loss({k: v + torch.randn_like(v) for k, v in t.items()}, t, reg_max, 2.0)
    bce_floor = torch.nn.functional.binary_cross_entropy_with_logits(t["scores"], t["scores"].sigmoid())  # entropy of the soft labels
    assert abs(float(same) - float(bce_floor)) < 1e-5 and float(far) > float(same)

    # On one fixed batch, a student whose head departs from the teacher's (its output biases shifted) is pulled
    # back: the head term falls step by step, and it is the distillation that pulls, not the detection loss.
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for branch in (*student.model[-1].cv2, *student.model[-1].cv3):
            branch[-1].bias.add_(torch.randn(branch[-1].bias.shape, generator=noise))
    batch = _labelled_batch(list_images(data_yaml.parent / "images" / "val")[:4], 64)
    distilled = _head_terms(teacher_model, student, batch, p.prune.distill.head_weight, steps=6)
    undistilled = _head_terms(teacher_model, student, batch, 0.0, steps=6)
    assert all(b < a for a, b in zip(distilled, distilled[1:])) and distilled[-1] < 0.7 * distilled[0], distilled
    assert undistilled[-1] > 0.9 * undistilled[0], undistilled


def test_latency_policy_and_budget_mode_prune_to_a_measured_budget(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The caps follow the profiled per-layer time, and budget mode stops at the first candidate whose
    FP32 ONNX, timed against the unpruned export, fits the budget (behaviour, not speed)."""
    from edgeslim.data.images import list_images, preprocess_batch
    from edgeslim.models.checkpoint import load_checkpoint
    from edgeslim.prune.latency import latency_caps, layer_costs_ms
    from edgeslim.prune.pipeline import prune_stage

    data_yaml = tiny_checkpoint.parent / "data" / "data.yaml"
    base = ["baseline.imgsz=64", "prune.round_to=4", "prune.ratio_deep=0.8", "prune.latency_runs=5", "prune.latency_rounds=3"]
    p = load_params(REPO / "params.yaml", [*base, "prune.policy=latency", "prune.target_latency_ratio=0.95"])
    ckpt, model = load_checkpoint(tiny_checkpoint)
    images = preprocess_batch(list_images(data_yaml.parent / "images" / "val")[:2], 64)
    pruned, report = prune_stage(model, ckpt, images, data_yaml, 64, p.prune, p.baseline, p.evaluate, p.export.opset, tmp_path)
    latency = report["latency"]
    assert latency["policy"] == "latency" and latency["profiled_ms"] > 0 and len(latency["layer_ms"]) > 5
    checks = latency["budget_checks"]
    assert checks[-1]["ratio"] <= 0.95 == latency["target_latency_ratio"] and all(c["ratio"] > 0.95 for c in checks[:-1])
    assert report["macs_after"] < report["macs_before"] and count_macs(pruned, 64)[0] == report["macs_after"]

    # The costliest layer gets the deepest cap, the cheapest the shallowest, and the caps rise with the cost.
    costs = {int(k): v for k, v in latency["layer_ms"].items() if k != "other"}
    caps = latency_caps(model, costs, p.prune)
    by_layer = {
        i: caps[next(m for m in layer.modules() if isinstance(m, torch.nn.Conv2d))]
        for i, layer in enumerate(model.model)
        if i in costs and any(isinstance(m, torch.nn.Conv2d) for m in layer.modules())
    }
    costliest, cheapest = max(by_layer, key=costs.get), min(by_layer, key=costs.get)
    assert by_layer[costliest] == max(by_layer.values()) == pytest.approx(0.8)
    shallow, deep = p.prune.ratio_shallow, p.prune.ratio_deep
    assert by_layer[cheapest] == min(by_layer.values()) == pytest.approx(shallow + (deep - shallow) * costs[cheapest] / max(costs.values()))
    assert by_layer[cheapest] < by_layer[costliest]
    assert [by_layer[i] for i in sorted(by_layer, key=costs.get)] == sorted(by_layer.values())
    assert layer_costs_ms(tmp_path / "latency" / "unpruned.onnx", images[:1], 1, 2)  # the profile parses


def test_unreachable_latency_budget_is_a_clear_error_before_finetuning(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from edgeslim.data.images import list_images, preprocess_batch
    from edgeslim.models.checkpoint import load_checkpoint
    from edgeslim.prune.pipeline import prune_stage

    data_yaml = tiny_checkpoint.parent / "data" / "data.yaml"
    over = [
        "baseline.imgsz=64",
        "prune.round_to=4",
        "prune.steps=2",
        "prune.ratio_deep=0.2",
        "prune.latency_runs=3",
        "prune.latency_rounds=1",
    ]
    p = load_params(REPO / "params.yaml", [*over, "prune.target_latency_ratio=0.05"])
    ckpt, model = load_checkpoint(tiny_checkpoint)
    images = preprocess_batch(list_images(data_yaml.parent / "images" / "val")[:2], 64)
    with pytest.raises(PruneError, match=r"latency budget prune.target_latency_ratio 0.05 cannot be met.*nothing was finetuned"):
        prune_stage(model, ckpt, images, data_yaml, 64, p.prune, p.baseline, p.evaluate, p.export.opset, tmp_path)
    # The budget was checked (the unpruned export it is timed against is there); no finetuning wrote its folder.
    assert (tmp_path / "latency" / "unpruned.onnx").is_file()
    assert not (tmp_path / "sparse").exists() and not list(tmp_path.glob("round*")), sorted(f.name for f in tmp_path.iterdir())


def _task_model(task: str, folder: Path) -> torch.nn.Module:
    """An untrained model of the embedded baseline's architecture with ``task``'s head, in eval mode."""
    from ultralytics.nn.tasks import OBBModel, PoseModel, SegmentationModel

    from edgeslim.data.tasks import KPT_SHAPE

    p = load_params(REPO / "params.yaml", [f"baseline.task={task}"])
    cls = {"segment": SegmentationModel, "pose": PoseModel, "obb": OBBModel}[task]
    torch.manual_seed(0)
    return cls(str(write_arch_yaml(p.baseline, NC, folder, KPT_SHAPE[:2] if task == "pose" else None)), nc=NC, verbose=False).eval()


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_a_tasks_head_outputs_keep_their_channels_when_pruned(task: str, tmp_path: Path) -> None:
    """Mask coefficients and protos, keypoints, angle: pruning thins the network, never an output."""
    from edgeslim.reparam.equivalence import output_parts

    model = _task_model(task, tmp_path)
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        before = {k: v.shape for k, v in output_parts(model(x), NC).items()}
    rewritten, _ = rewrite_model(model, x.numpy(), max_rel_l2=1e-5)
    prune = load_params(REPO / "params.yaml", ["prune.ratio_deep=0.7", "prune.round_to=4"]).prune
    report = prune_model(rewritten, prune, TARGET, IMGSZ)
    assert report.macs_reduction >= TARGET
    with torch.no_grad():
        after = {k: v.shape for k, v in output_parts(rewritten(x), NC).items()}
    assert after == before and any(k in before for k in ("raw_proto", "raw_kpts", "raw_angle"))


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_distillation_pulls_a_tasks_own_outputs_back_to_the_teachers(task: str, tmp_path: Path) -> None:
    """The head term covers what a task head adds (mask coefficients and protos, keypoints, angle): 0 for a
    student that is its teacher, and, once the student's task branch is moved, it falls step by step as
    it drives only that branch back."""
    from edgeslim.prune.distill import PROTO, TASK_OUTPUTS, head_distillation_loss, task_distillation_loss

    teacher = _task_model(task, tmp_path)
    student = copy.deepcopy(teacher)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        taught = teacher(x)[1]  # eval mode: ((decoded, ...), raw outputs), as the teacher runs in finetuning
    weight = taught["scores"].sigmoid().max(dim=1).values
    own = {k for k in (*TASK_OUTPUTS, PROTO) if k in taught}
    assert own and float(task_distillation_loss(student(x)[1], taught, weight).detach()) == 0.0

    head = student.model[-1]
    # the output biases of the task branch (an untrained network's features are near 0, so its outputs are
    # mostly bias): each output conv of cv4, and the prototypes' last BatchNorm
    moved = [*(conv[-1].bias for conv in head.cv4), *((head.proto.cv3.bn.bias,) if task == "segment" else ())]
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bias in moved:
            bias.add_(0.5 * torch.randn(bias.shape, generator=noise))
    optimizer = torch.optim.Adam(moved, lr=0.05)
    terms = []
    for _ in range(6):
        out = student(x)[1]
        task_term = task_distillation_loss(out, taught, weight)
        terms.append(float(task_term.detach()))
        total = head_distillation_loss(out, taught, int(head.reg_max), 2.0)  # the term the finetune adds, task part included
        without = head_distillation_loss(*({k: v for k, v in d.items() if k not in own} for d in (out, taught)), int(head.reg_max), 2.0)
        assert float((total - without).detach()) == pytest.approx(terms[-1], rel=1e-4)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert terms[0] > 0 and all(b < a for a, b in zip(terms, terms[1:])) and terms[-1] < 0.7 * terms[0], terms
