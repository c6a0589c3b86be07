"""What a run's outcomes add up to: the report (stage table, gates, details, timings) and one MLflow
step record per step, both read off the outcomes (nothing re-derived in the runners)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, placement_key
from edgeslim.dag.step import Step
from edgeslim.registry.mlflow_registry import flat_params
from edgeslim.registry.tracking import MAX_TAG_CHARS, StepRecord
from edgeslim.report import Report


def build_report(model: str, version: str, outcomes: Mapping[str, Outcome]) -> Report:
    """The report of the steps that ran; stage rows carry their share of the source's mAP once the
    ``gates`` step has computed it."""
    ran = [o for o in outcomes.values() if o.skipped is None]
    ratios: dict[str, float | None] = next((o.details["map_ratios"] for o in ran if "map_ratios" in o.details), {})
    intervals: dict[str, dict] = next((o.details["map_ratio_intervals"] for o in ran if "map_ratio_intervals" in o.details), {})
    stages = [
        replace(s, map_ratio=ratios.get(s.name), map_ratio_ci=(i["low"], i["high"]) if (i := intervals.get(s.name)) else None)
        for o in ran
        for s in o.stages
    ]
    details: dict[str, Any] = {k: v for o in ran for k, v in o.details.items() if k != "map_ratios"}
    skipped = {o.step: o.skipped for o in outcomes.values() if o.skipped}
    if skipped:
        details["skipped_steps"] = skipped
    return Report(
        model=model,
        source_version=version,
        stages=stages,
        gates={g.name: g for o in ran for g in o.gates},
        details=details,
        timings={o.step: o.seconds for o in outcomes.values() if o.seconds},
    )


def _value(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def step_records(p: Params, steps: Iterable[Step], outcomes: Mapping[str, Outcome]) -> list[StepRecord]:
    """One record per step that ran: the params keys it declares, its figures, its files, its wall time."""
    params = p.model_dump(mode="json")
    return [
        StepRecord(
            step.name,
            flat_params({key: _value(params, key) for key in step.reads}),
            dict(outcome.metrics),
            [path for path in outcome.artifacts.values() if path.is_file()],
            outcome.seconds,
            {f"edgeslim.placement.{k}": str(v) for k, v in outcome.details.get(placement_key(step.name), {}).items()},
            _candidates(outcome),
        )
        for step in steps
        if (outcome := outcomes.get(step.name)) is not None and outcome.skipped is None
    ]


def _candidates(outcome: Outcome) -> list[StepRecord]:
    """The search's candidates, a nested run each under the step's run (MLflow's compare view plots them)."""
    rows = outcome.details.get("search", {}).get("candidates", [])
    return [
        StepRecord(
            row["candidate"],
            {"format": row["format"], "variant": row["candidate"].split("/")[0]},
            {
                "latency_ms": row["latency_ms"],
                "latency_ratio": row["ratio"],
                **({"map_ratio": row["map_ratio"]} if row["map_ratio"] is not None else {}),
            },
            tags={"edgeslim.search.status": row["status"][:MAX_TAG_CHARS]},
        )
        for row in rows
    ]
