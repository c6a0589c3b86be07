"""Re-parameterization by fusion: Conv+BN folding, RepConv branch merging (ultralytics ``fuse``).

Works on a deep copy (``fuse`` mutates in place) and reports what changed, module by module, and
every module that still holds BatchNorm afterwards, so nothing is skipped silently.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

import edgeslim.ultra  # noqa: F401
from ultralytics.nn.tasks import DetectionModel


@dataclass
class FuseReport:
    fused: dict[str, str] = field(default_factory=dict)  # module name → kind
    not_fused: dict[str, str] = field(default_factory=dict)  # still holds BatchNorm after fusion
    bn_before: int = 0
    bn_after: int = 0

    def as_dict(self) -> dict:
        return {"fused": self.fused, "not_fused": self.not_fused, "bn_before": self.bn_before, "bn_after": self.bn_after}


def _bn_holders(model: nn.Module) -> dict[str, str]:
    """Modules that own a BatchNorm child directly (a Conv's ``bn``, a RepConv branch's ``bn``...)."""
    holders = {}
    for name, module in model.named_modules():
        if any(isinstance(child, nn.modules.batchnorm._BatchNorm) for child in module.children()):
            holders[name] = type(module).__name__
    return holders


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fuse_model(model: DetectionModel) -> tuple[DetectionModel, FuseReport]:
    """Return a fused copy of ``model`` (eval mode, float32) and what was fused."""
    source = copy.deepcopy(model).float().eval()
    before = _bn_holders(source)
    fused = copy.deepcopy(source).fuse(verbose=False)
    after = _bn_holders(fused)
    report = FuseReport(bn_before=_count_bn(source), bn_after=_count_bn(fused))
    for name, kind in before.items():
        if name in after:
            report.not_fused[name] = kind
            continue
        # RepConv's branches (conv1, conv2, identity bn) merge into one conv: report the RepConv.
        parent = name.rpartition(".")[0]
        if parent and type(source.get_submodule(parent)).__name__ == "RepConv":
            report.fused[parent] = "RepConv"
        else:
            report.fused[name] = kind
    return fused.eval(), report
