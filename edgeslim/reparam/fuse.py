"""Re-parameterization by fusion: BN folding and parallel-branch merging (ultralytics ``fuse``).

ultralytics' ``fuse`` covers Conv/Conv2/DWConv+BN, ConvTranspose+BN, RepConv (3x3 + 1x1 + optional
identity BN → one 3x3) and RepVGGDW (7x7 + 3x3 depthwise → one 7x7). It works in place, so this runs
it on a deep copy and reports what changed, module by module, and every module that still holds a
BatchNorm or unmerged parallel branches afterwards (a block type ultralytics does not know how to
fuse), so nothing is skipped silently.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn
from ultralytics.nn.tasks import DetectionModel

import edgeslim.ultra  # noqa: F401


@dataclass
class FuseReport:
    fused: dict[str, str] = field(default_factory=dict)  # module name → kind
    not_fused: dict[str, str] = field(default_factory=dict)  # still holds BatchNorm or parallel branches
    bn_before: int = 0
    bn_after: int = 0

    def as_dict(self) -> dict:
        kinds: dict[str, int] = {}
        for kind in self.fused.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "fused": self.fused,
            "fused_kinds": kinds,
            "not_fused": self.not_fused,
            "bn_before": self.bn_before,
            "bn_after": self.bn_after,
        }


def _bn_holders(model: nn.Module) -> dict[str, str]:
    """Modules that own a BatchNorm child directly (a Conv's ``bn``, a RepConv's identity ``bn``...)."""
    holders = {}
    for name, module in model.named_modules():
        if any(isinstance(child, nn.modules.batchnorm._BatchNorm) for child in module.children()):
            holders[name] = type(module).__name__
    return holders


def _unmerged_branches(model: nn.Module) -> dict[str, str]:
    """Re-parameterizable modules (they define ``forward_fuse``) still running their training forward."""
    return {
        name: type(m).__name__
        for name, m in model.named_modules()
        if hasattr(m, "forward_fuse") and "forward" not in vars(m) and any(True for _ in m.children())
    }


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _kind(source: nn.Module, name: str) -> tuple[str, str]:
    """Name and kind to report for a BatchNorm holder that fusion removed.

    A branch of a re-parameterizable block (RepConv's conv1/conv2, RepVGGDW's conv/conv1) is reported
    as the block, since the branches merged into one conv; a RepConv's own BatchNorm is its identity branch.
    """
    parent = name.rpartition(".")[0]
    if parent and hasattr(source.get_submodule(parent), "forward_fuse"):
        name = parent
    module = source.get_submodule(name)
    kind = type(module).__name__
    if kind == "RepConv" and getattr(module, "bn", None) is not None:
        kind = "RepConv+identity"
    return name, kind


def fuse_model(model: DetectionModel) -> tuple[DetectionModel, FuseReport]:
    """Return a fused copy of ``model`` (eval mode, float32) and what was fused."""
    source = copy.deepcopy(model).float().eval()
    before = _bn_holders(source)
    fused = copy.deepcopy(source).fuse(verbose=False)
    after = _bn_holders(fused)
    report = FuseReport(bn_before=_count_bn(source), bn_after=_count_bn(fused), not_fused=_unmerged_branches(fused))
    for name, kind in before.items():
        if name in after:
            report.not_fused[name] = kind
            continue
        name, kind = _kind(source, name)
        report.fused[name] = kind
    return fused.eval(), report
