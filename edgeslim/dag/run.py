"""Running steps in order: the one loop every runner shares (Prefect wraps each call in a task).

A step whose gate fails ends the run: nothing after it may publish a model that failed a gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from edgeslim.config import Params, bound
from edgeslim.dag.fan import Fan, sequential
from edgeslim.dag.layout import Layout
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.scoped import scope
from edgeslim.dag.step import Step, StepInput, onnx_source_skip
from edgeslim.errors import EdgeslimError

Call = Callable[[Step, StepInput, Params], Outcome]  # how a runner executes one body (directly, as a Prefect task)


class MissingInput(EdgeslimError):
    """A step ran before the steps it reads (DVC: their stage outputs are missing)."""


def direct(step: Step, inp: StepInput, p: Params) -> Outcome:
    return step.body(inp, p)


def run_step(step: Step, p: Params, layout: Layout, outcomes: Mapping[str, Outcome], call: Call = direct, fan: Fan = sequential) -> Outcome:
    """One step with exactly its declared params and needs; its wall time (runner overhead included).

    ``outcomes`` may hold more than the needs: the source's tells whether a PyTorch step can run."""
    scoped = scope(p, step.reads, step.name)
    reason = onnx_source_skip(step.torch, outcomes) or (step.skip(scoped) if step.skip else None)
    if reason:
        return Outcome(step.name, skipped=reason)
    missing = [n for n in step.needs if n not in outcomes]
    if missing:
        raise MissingInput(f"step {step.name} needs the outcome of {', '.join(missing)} first")
    inp = StepInput(step.name, layout, {n: outcomes[n] for n in step.needs}, fan)
    start = time.perf_counter()
    outcome = call(step, inp, scoped)
    return replace(outcome, seconds=time.perf_counter() - start)


def run_steps(
    steps: Sequence[Step], p: Params, layout: Layout, done: Mapping[str, Outcome] | None = None, call: Call = direct, fan: Fan = sequential
) -> dict[str, Outcome]:
    """Run ``steps`` after the outcomes already ``done``; stop after the first step whose gate fails.
    ``fan`` runs the independent work inside a step (sequential unless the runner spreads it)."""
    outcomes = dict(done or {})
    for step in steps:
        outcomes[step.name] = outcome = run_step(step, p, layout, outcomes, call, fan)
        if outcome.failed_gates:
            break
        p = bound(p, outcome.binds) if outcome.binds else p
    return outcomes


def bound_by(p: Params, outcomes: Mapping[str, Outcome]) -> Params:
    """``p`` with what the steps in ``outcomes`` chose for the steps after them (in their order)."""
    for outcome in outcomes.values():
        p = bound(p, outcome.binds) if outcome.binds and outcome.skipped is None else p
    return p


def failed_gates(outcomes: Mapping[str, Outcome]) -> list[str]:
    """The first failed gate with its detail, the others by their figure (one error line holds them all)."""
    failed = [g for o in outcomes.values() for g in o.failed_gates]
    return [
        f"gate {g.name} failed: {g.detail}" if i == 0 else f"gate {g.name} failed: {g.value:.4g} (threshold {g.threshold:g})"
        for i, g in enumerate(failed)
    ]
