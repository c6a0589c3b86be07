"""The activation lever (issue 27, item 2): ``compress.activation`` swaps the pruned student's SiLU,
the finetune keeps the swapped graph, and the fused student still passes its own equivalence gate
(fused against its unfused form); the accuracy gate judges it against the reference as before."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from conftest import REPO, write_params
from torch import nn

from edgeslim.config import ConfigError, load_params
from edgeslim.dag import dvc
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.checkpoint import load_checkpoint


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for _, m in model.named_modules(remove_duplicate=False))  # ultralytics shares one SiLU


def test_relu_student_is_finetuned_as_relu_and_keeps_the_fused_equivalence_gate(tmp_path: Path, tiny_checkpoint: Path):
    extra = {
        "dataset": {"splits": {"train": 8, "val": 4, "calib_pool": 4}},
        "compress": {"source": str(tiny_checkpoint), "imgsz": 64, "activation": "relu"},
        "baseline": {"batch": 4},
        "prune": {"round_to": 4, "finetune": {"epochs": 1}},
    }
    p = load_params(write_params(tmp_path / "params.yaml", tmp_path / "ws", extra))
    for name in ("dataset", "baseline", "source", "fuse", "search"):  # the fixed recipe: search.enabled is false here
        dvc.run_stage(name, p)
    pruned = dvc.run_stage("prune", p)
    swap = pruned.details["pruning"]["activation"]
    _, source = load_checkpoint(tiny_checkpoint)
    # every SiLU of the pruned student, whose split-free rewrite has more convolutions than the source
    assert swap["activation"] == "relu" and swap["swapped"] >= _count(source, nn.SiLU) > 0
    finetuned = dvc.run_stage("finetune", p)
    _, student = load_checkpoint(finetuned.artifact("finetuned"))
    assert _count(student, nn.SiLU) == 0 and _count(student, nn.ReLU) == swap["swapped"], "the finetune kept the swapped graph"
    assert student.yaml["activation"] == "nn.ReLU()"
    gate = next(g for g in finetuned.gates if g.name == "equivalence_pruned")
    assert gate.passed, gate.detail
    onnx_file = export_onnx(finetuned.artifact("model"), 64, p.export.opset, tmp_path / "relu.onnx")
    ops = [n.op_type for n in onnx.load(str(onnx_file)).graph.node]
    assert ops.count("Relu") > 0 and "Sigmoid" in ops and ops.count("Sigmoid") < ops.count("Relu"), "only the head's decode keeps a sigmoid"


def test_an_activation_swap_without_the_finetune_is_refused():
    with pytest.raises(ConfigError, match="compress.activation is relu, but prune.enabled is false"):
        load_params(REPO / "params.yaml", ["compress.activation=relu", "prune.enabled=false"])
