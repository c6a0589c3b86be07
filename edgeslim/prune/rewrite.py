"""Rewrite a detection model into a prune-friendly one: every splitting block → its split-free twin.

Works on a deep copy, carries the weights over and proves the rewrite numerically before anything
is pruned, so a pruning result can never be blamed on the rewrite.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from torch import nn
from ultralytics.nn.modules.block import C2PSA, ADown, C2f, RepNCSPELAN4

import edgeslim.ultra  # noqa: F401
from edgeslim.errors import PruneError
from edgeslim.prune.blocks import SplitFreeADown, SplitFreeCSP, split_conv
from edgeslim.reparam.equivalence import Equivalence, compare_models

# Blocks that still cut tensors after the rewrite and are therefore left out of pruning (reported).
SPLITTING_UNSUPPORTED = ("C2", "PSA", "C2fAttn", "CBLinear", "A2C2f")
# Attributes DetectionModel._predict_once reads off each top-level layer (routing and bookkeeping).
LAYER_ATTRS = ("f", "i", "type", "np")


@dataclass
class RewriteReport:
    rewritten: dict[str, str] = field(default_factory=dict)  # module name → original block type
    unsupported: dict[str, str] = field(default_factory=dict)  # splitting blocks left as they are
    equivalence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"rewritten": self.rewritten, "unsupported": self.unsupported, "equivalence": self.equivalence}


def split_free(module: nn.Module) -> nn.Module | None:
    """The split-free twin of ``module``, or None when it needs none."""
    kind = type(module).__name__
    if isinstance(module, C2f):  # C2f, C3k2, C2fCIB, C2fPSA: chain = the bottlenecks
        a, b = split_conv(module.cv1, (module.c, module.c))
        return SplitFreeCSP(a, b, list(module.m), module.cv2, concat_all=True, source=kind)
    if isinstance(module, RepNCSPELAN4):  # RepNCSPELAN4, ELAN1: chain = cv2 then cv3
        a, b = split_conv(module.cv1, (module.c, module.c))
        return SplitFreeCSP(a, b, [module.cv2, module.cv3], module.cv4, concat_all=True, source=kind)
    if isinstance(module, C2PSA):  # only the attention chain's last output is concatenated
        a, b = split_conv(module.cv1, (module.c, module.c))
        return SplitFreeCSP(a, b, [module.m], module.cv2, concat_all=False, source=kind)
    if isinstance(module, ADown):
        return SplitFreeADown(module.cv1, module.cv2, source=kind)
    return None


def rewrite_model(model: nn.Module, images: np.ndarray, max_rel_l2: float) -> tuple[nn.Module, RewriteReport]:
    """Return a split-free copy of ``model`` and a report; raise PruneError if it is not equivalent.

    ``images`` (NCHW float32, real val images) feed both models for the equivalence check.
    """
    original = copy.deepcopy(model).float().eval()
    rewritten = copy.deepcopy(original)
    report = RewriteReport()
    for name, module in list(rewritten.named_modules()):
        if not name:
            continue
        twin = split_free(module)
        if twin is None:
            if type(module).__name__ in SPLITTING_UNSUPPORTED:
                report.unsupported[name] = type(module).__name__
            continue
        for attr in LAYER_ATTRS:
            if hasattr(module, attr):
                setattr(twin, attr, getattr(module, attr))
        parent_name, _, child = name.rpartition(".")
        setattr(rewritten.get_submodule(parent_name) if parent_name else rewritten, child, twin)
        report.rewritten[name] = type(module).__name__
    eq = check_equivalent(original, rewritten, images, max_rel_l2, what="split-free rewrite")
    report.equivalence = eq.as_dict()
    return rewritten.eval(), report


def check_equivalent(reference: nn.Module, candidate: nn.Module, images: np.ndarray, max_rel_l2: float, what: str) -> Equivalence:
    """Compare on ``images``; raise PruneError naming ``what`` when the relative L2 error exceeds the bound."""
    eq = compare_models(reference, candidate, images)
    if not eq.rel_l2 <= max_rel_l2:  # also catches NaN
        raise PruneError(f"{what} changed the model's output: rel L2 {eq.rel_l2:.3e} > tolerance {max_rel_l2:.1e}")
    return eq
