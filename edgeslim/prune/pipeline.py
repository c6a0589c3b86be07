"""The prune stage end to end: split-free rewrite → optional sparse training → prune/finetune rounds.

Returns the pruned model (before the final finetune, which is its own step) and one report, so the
flow can show mAP after pruning and after finetuning separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeslim.config import BaselineParams, EvaluateParams, PruneParams
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.prune.finetune import finetune
from edgeslim.prune.latency import OTHER, LatencyBudget, export_candidate, latency_caps, layer_costs_ms
from edgeslim.prune.rewrite import rewrite_model
from edgeslim.prune.structured import PruneReport, prune_model


def prune_stage(
    model: nn.Module,
    template: dict[str, Any],
    images: np.ndarray,
    data_yaml: Path,
    imgsz: int,
    p: PruneParams,
    base: BaselineParams,
    ev: EvaluateParams,
    opset: int,
    out_dir: Path,
) -> tuple[nn.Module, dict]:
    """Prune ``model`` to ``p.target_macs_reduction`` in ``p.rounds`` rounds (or, in budget mode, to
    ``p.target_latency_ratio`` in one); return it and a report.

    Round r reaches r/rounds of the target and, except the last, is finetuned for
    ``p.finetune.round_epochs`` before the next one ranks channels again.
    """
    model, rewrite = rewrite_model(model, images, p.rewrite_max_rel_l2)
    print(f"split-free rewrite of {len(rewrite.rewritten)} blocks, rel L2 {rewrite.equivalence['rel_l2']:.2e}")
    report: dict = {"rewrite": rewrite.as_dict(), "rounds": []}
    if p.sparse.enabled:
        print(f"sparse training: {p.sparse.epochs} epochs, L1 {p.sparse.l1_reg:g} on BatchNorm gammas")
        sparse = finetune(model, template, data_yaml, imgsz, base, ev, p.finetune, p.sparse.epochs, p.sparse.l1_reg, out_dir / "sparse")
        _, model = load_checkpoint(sparse.weights)
        report["sparse"] = {"epochs": sparse.epochs_run, "map50_95": sparse.map50_95, "map50": sparse.map50}
    caps, budget = None, None
    if p.policy == "latency" or p.target_latency_ratio is not None:
        caps, budget, report["latency"] = _latency_steering(model, template, images[:1], imgsz, p, ev, opset, out_dir / "latency")
    first: PruneReport | None = None
    for r in range(1, p.rounds + 1):
        target = p.target_macs_reduction * r / p.rounds
        pruned = prune_model(model, p, target, imgsz, caps, budget)
        first = first or pruned
        entry = {"target": target, **{k: v for k, v in pruned.as_dict().items() if not k.startswith("channels")}}
        print(
            f"round {r}/{p.rounds}: MACs {pruned.macs_before / 1e6:.1f}M -> {pruned.macs_after / 1e6:.1f}M, "
            f"params {pruned.params_before / 1e6:.3f}M -> {pruned.params_after / 1e6:.3f}M"
        )
        if r < p.rounds:
            tuned = finetune(model, template, data_yaml, imgsz, base, ev, p.finetune, p.finetune.round_epochs, 0.0, out_dir / f"round{r}")
            _, model = load_checkpoint(tuned.weights)
            entry.update(finetuned_map50_95=tuned.map50_95, finetuned_epochs=tuned.epochs_run)
        report["rounds"].append(entry)
    if budget is not None:
        report["latency"].update(target_latency_ratio=budget.target, budget_checks=budget.checks, met_ratio=budget.checks[-1]["ratio"])
    assert first is not None  # rounds ≥ 1 (validated)
    last = pruned
    report.update(
        macs_before=first.macs_before,
        params_before=first.params_before,
        macs_after=last.macs_after,
        params_after=last.params_after,
        macs_reduction=1.0 - last.macs_after / first.macs_before,
        channels_before=first.channels_before,
        channels_after=last.channels_after,
    )
    return model, report


def _latency_steering(
    model: nn.Module, template: dict[str, Any], sample: np.ndarray, imgsz: int, p: PruneParams, ev: EvaluateParams, opset: int, folder: Path
) -> tuple[dict[nn.Module, float] | None, LatencyBudget | None, dict]:
    """Profile the unpruned export once; its per-layer costs steer the caps (``policy: latency``)
    and it is the reference the budget's candidates are timed against."""
    unpruned = export_candidate(model, template, imgsz, opset, folder, "unpruned")
    costs = layer_costs_ms(unpruned, sample, ev.threads, p.latency_runs)
    total = sum(costs.values())
    print(
        "per-layer ONNX Runtime ms (top 5): "
        + ", ".join(f"{'other' if i == OTHER else i}: {ms:.2f}" for i, ms in sorted(costs.items(), key=lambda kv: -kv[1])[:5])
        + f" of {total:.2f}"
    )
    caps = latency_caps(model, costs, p) if p.policy == "latency" else None
    budget = None
    if p.target_latency_ratio is not None:
        budget = LatencyBudget(
            p.target_latency_ratio, unpruned, sample, template, imgsz, opset, ev.threads, p.latency_runs, p.latency_rounds, folder
        )
    section = {
        "layer_ms": {("other" if i == OTHER else str(i)): ms for i, ms in sorted(costs.items())},
        "profiled_ms": total,
        "policy": p.policy,
    }
    return caps, budget, section
