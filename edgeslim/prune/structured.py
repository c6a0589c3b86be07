"""Structured channel pruning on torch-pruning's dependency graph, to a MACs target.

Why this shape: users set a compute budget ("40% fewer MACs"), not per-layer channel counts. The
layer-wise policy caps how hard each layer may be cut (shallow layers, which see raw pixels and
hold few channels, less than deep ones); the pruner walks towards those caps in small increments
and stops at the first increment that meets the target, so the model loses no more than needed.
The detect head's output convs and DFL keep their channels (they define the output format), and
attention blocks are treated as opaque leaves: their head layout cannot lose channels, and tracing
their matmuls is what blew tracing up to tens of GB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules.block import PSABlock
from ultralytics.nn.modules.head import Detect

import edgeslim.ultra  # noqa: F401
from edgeslim.config import PruneParams
from edgeslim.errors import PruneError
from edgeslim.prune.latency import LatencyBudget

IMPORTANCE: dict[str, Callable[[], tp.importance.Importance]] = {
    "bn_scale": tp.importance.BNScaleImportance,
    "l1": lambda: tp.importance.MagnitudeImportance(p=1),
    "l2": lambda: tp.importance.MagnitudeImportance(p=2),
    "random": tp.importance.RandomImportance,
}


class _OpaqueBlock(tp.pruner.function.BasePruningFunc):
    """Makes torch-pruning treat a block as one leaf whose channels never change."""

    TARGET_MODULES = None

    def prune_out_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:  # noqa: ARG002 (torch-pruning interface)
        raise PruneError(f"{type(layer).__name__} cannot lose channels (its groups are skipped)")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return next(m for m in layer.modules() if isinstance(m, nn.Conv2d)).in_channels

    get_in_channels = get_out_channels


OPAQUE_BLOCKS: tuple[type[nn.Module], ...] = (PSABlock,)


class _CapRespectingPruner(tp.pruner.BasePruner):
    """torch-pruning rounds the kept channels *down* to ``round_to``, which on a 32-channel layer
    turns a 3% step into 25%; rounding *up* keeps every layer within its policy cap."""

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        keep = current_channels - n_pruned
        keep = -(-keep // round_to) * round_to
        return max(current_channels - keep, 0)


@dataclass
class PruneReport:
    macs_before: int
    params_before: int
    macs_after: int = 0
    params_after: int = 0
    channels_before: dict[str, int] = field(default_factory=dict)  # conv name → output channels
    channels_after: dict[str, int] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)  # per increment: macs, params

    @property
    def macs_reduction(self) -> float:
        return 1.0 - self.macs_after / self.macs_before

    def as_dict(self) -> dict:
        return {
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "macs_reduction": self.macs_reduction,
            "steps": self.steps,
            "channels_before": self.channels_before,
            "channels_after": self.channels_after,
        }


def count_macs(model: nn.Module, imgsz: int) -> tuple[int, int]:
    """(MACs, parameters) of one ``imgsz`` × ``imgsz`` image."""
    was_training = model.training
    macs, params = tp.utils.count_ops_and_params(model.eval(), torch.zeros(1, 3, imgsz, imgsz))
    model.train(was_training)
    return int(macs), int(params)


def conv_channels(model: nn.Module) -> dict[str, int]:
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def layer_ratios(model: nn.Module, p: PruneParams) -> dict[nn.Module, float]:
    """Channel-ratio cap per conv: ``ratio_shallow`` at the first layer rising to ``ratio_deep``.

    Depth is the index of the top-level layer holding the conv (ultralytics' ``model.model``); the
    detect head counts as the deepest layer.
    """
    layers = list(model.model)
    last = max(len(layers) - 1, 1)
    caps = {}
    for index, layer in enumerate(layers):
        cap = p.ratio_shallow + (p.ratio_deep - p.ratio_shallow) * index / last
        for m in layer.modules():
            if isinstance(m, nn.Conv2d):
                caps[m] = cap
    return caps


HEAD_BRANCHES = ("cv2", "cv3", "cv4")  # box, class and a task head's own (segment's mask coefficients, pose's keypoints, obb's angle)


def protected_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose output channels define the model's outputs: each head branch's last conv, DFL,
    and a segment head's proto output (the masks are its channels weighted by the coefficients)."""
    keep: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, Detect):
            keep += [branch[-1] for name in HEAD_BRANCHES for branch in getattr(m, name, None) or ()]
            keep.append(m.dfl)
            if getattr(m, "proto", None) is not None:
                keep.append(m.proto.cv3)
    return keep


def prune_model(
    model: nn.Module,
    p: PruneParams,
    target: float,
    imgsz: int,
    caps: dict[nn.Module, float] | None = None,
    budget: LatencyBudget | None = None,
) -> PruneReport:
    """Prune ``model`` in place (it must be split-free, see rewrite.py) until ``target`` of MACs is
    gone, or, with a ``budget``, until the budget's latency check passes. ``caps``: per-layer ratio
    caps (default: the depth ramp of ``layer_ratios``).

    Raises PruneError when the caps are reached before the target or the budget.
    """
    macs0, params0 = count_macs(model, imgsz)
    report = PruneReport(macs_before=macs0, params_before=params0, channels_before=conv_channels(model))
    opaque = {m for m in model.modules() if isinstance(m, OPAQUE_BLOCKS)}
    model.train()
    for param in model.parameters():
        param.requires_grad_(True)  # torch-pruning traces through autograd
    pruner = _CapRespectingPruner(
        model,
        torch.zeros(1, 3, imgsz, imgsz),
        importance=IMPORTANCE[p.importance](),
        pruning_ratio=p.ratio_deep,
        pruning_ratio_dict=caps or layer_ratios(model, p),
        iterative_steps=p.steps,
        ignored_layers=protected_layers(model),
        round_to=p.round_to,
        customized_pruners={kind: _OpaqueBlock() for kind in OPAQUE_BLOCKS},
    )
    macs, params = macs0, params0
    for _ in range(p.steps):
        for group in pruner.step(interactive=True):
            if not any(dep.target.module in opaque for dep, _ in group):
                group.prune()
        macs, params = count_macs(model, imgsz)
        report.steps.append({"macs": macs, "params": params, "reduction": 1.0 - macs / macs0})
        if budget is None and 1.0 - macs / macs0 >= target:
            break
        changed = macs < (report.steps[-2]["macs"] if len(report.steps) > 1 else macs0)  # an unchanged level needs no new timing
        if budget is not None and changed and budget.met(model.eval(), 1.0 - macs / macs0):
            break
        model.train()
    model.eval()
    report.macs_after, report.params_after, report.channels_after = macs, params, conv_channels(model)
    if budget is not None and not (budget.checks and budget.checks[-1]["ratio"] <= budget.target):
        best = min(c["ratio"] for c in budget.checks)
        raise PruneError(
            f"the latency budget prune.target_latency_ratio {budget.target} cannot be met: the deepest cut the layer caps allow "
            f"({report.macs_reduction:.1%} fewer MACs) runs at {best:.3f}x the unpruned FP32 ONNX here. Raise prune.ratio_deep "
            f"(now {p.ratio_deep}) or the budget; nothing was finetuned"
        )
    if budget is None and report.macs_reduction < target:
        raise PruneError(
            f"pruning reached {report.macs_reduction:.1%} fewer MACs, short of the target {target:.0%}: "
            f"the layer caps (prune.ratio_shallow {p.ratio_shallow}, prune.ratio_deep {p.ratio_deep}) are too low"
        )
    return report
