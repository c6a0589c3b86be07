"""What compress-many fans out: one compress run per (model reference, target profile) pair.

Pure: the pairs are checked before anything starts (a typo in the tenth pair must not leave nine runs
behind), and each child's overrides are the parent's plus its target, so a child computes exactly
what ``edgeslim compress --model REF -S target.name=TARGET`` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeslim.config import AUTO_TARGET, ConfigError, Params
from edgeslim.registry.references import parse_source

OUTCOME_PUBLISHED = "published"
OUTCOME_REUSED = "already published"
OUTCOME_GATE = "gate failed"
OUTCOME_FAILED = "failed"


@dataclass(frozen=True)
class Job:
    model: str  # a registered version or a run artifact, as `edgeslim compress --model` takes it
    target: str  # a profile of target.profiles
    name: str | None = None  # the registered model's name: its edge versions go to <name><mlflow.edge_suffix>

    @property
    def label(self) -> str:
        return f"{self.model} for {self.target}"

    def overrides(self, base: Sequence[str]) -> list[str]:
        """The child's overrides: the parent's, this target, and (for a registered source) its name as
        ``model_name``, so that each model publishes to its own edge model."""
        named = [f"model_name={self.name}"] if self.name else []
        return [*base, f"target.name={self.target}", *named]


def parse_jobs(raw: Sequence[dict[str, Any] | str], p: Params) -> list[Job]:
    """``raw``: ``{"model": REF, "target": PROFILE}`` mappings (target defaults to ``target.name``) or
    bare references. Malformed references, local files, unknown profiles and repeats are refused up front."""
    if not raw:
        raise ConfigError("compress-many needs at least one (model, target) pair")
    jobs = []
    for item in raw:
        entry = {"model": item} if isinstance(item, str) else dict(item)
        unknown = set(entry) - {"model", "target"}
        if unknown or not entry.get("model"):
            raise ConfigError(f"compress-many pair {item!r}: expected {{model: REF, target: PROFILE}}")
        target = entry.get("target") or p.target.name
        if target != AUTO_TARGET and target not in p.target.profiles:
            known = ", ".join([AUTO_TARGET, *p.target.profiles])
            raise ConfigError(f"compress-many pair {item!r}: unknown target {target!r}; known: {known} (auto: each worker's own CPU)")
        source = parse_source(str(entry["model"]), p.mlflow.source_alias)
        if source.file is not None:
            raise ConfigError(f"compress-many pair {item!r}: a local file is not on the workers; register it first (edgeslim register)")
        jobs.append(Job(str(entry["model"]), target, source.registered.name if source.registered else None))
    repeated = sorted({j.label for j in jobs if jobs.count(j) > 1})
    if repeated:
        raise ConfigError(f"compress-many got the same pair twice: {', '.join(repeated)}")
    return jobs


def result_of(report: dict) -> dict[str, Any]:
    """What a compress run tells its parent (a Prefect table artifact's one row), from its report.json."""
    published = report.get("published")
    gates = report.get("gates", {})
    gated = gates.get("map_ratio") or gates.get("map_ratio_fp32") or {}
    return {
        "outcome": (OUTCOME_REUSED if published.get("reused") else OUTCOME_PUBLISHED) if published else OUTCOME_GATE,
        "edge_version": f"{published['model']}:{published['version']}" if published else None,
        "map_ratio": gated.get("value"),
        "mlflow_run_url": report.get("details", {}).get("mlflow_run_url"),
        "detail": "; ".join(f"{name}: {g['detail']}" for name, g in gates.items() if not g["passed"]),
    }


@dataclass(frozen=True)
class Row:
    """One child run, as the summary table shows it."""

    model: str
    target: str
    flow_run: str  # the child's flow run name
    flow_run_id: str
    state: str  # Prefect's final state name
    outcome: str  # published / already published / gate failed / failed
    edge_version: str | None = None  # NAME:VERSION of the edge model it published (or found published)
    map_ratio: float | None = None  # the gated artifact's mAP ratio against gates.reference
    mlflow_run_url: str | None = None
    detail: str = ""


def row_from_result(job: Job, flow_run: str, flow_run_id: str, state: str, result: dict[str, Any] | None, message: str) -> Row:
    """A child's row: its result, or (when it ended before leaving one) its final state's message."""
    if result is None:
        return Row(job.model, job.target, flow_run, flow_run_id, state, OUTCOME_FAILED, detail=message or "the run left no result")
    return Row(
        job.model, job.target, flow_run, flow_run_id, state, str(result["outcome"]), edge_version=result.get("edge_version"),
        map_ratio=result.get("map_ratio"), mlflow_run_url=result.get("mlflow_run_url"), detail=str(result.get("detail") or ""),
    )  # fmt: skip


def markdown_table(rows: Sequence[Row]) -> str:
    """The summary as people read it (the Prefect artifact's body)."""
    lines = [
        f"# compress-many: {sum(r.outcome in (OUTCOME_PUBLISHED, OUTCOME_REUSED) for r in rows)} of {len(rows)} published",
        "",
        "| model | target | flow run | state | outcome | edge version | mAP ratio | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r.map_ratio:.3f}" if r.map_ratio is not None else "—"
        run = f"[{r.flow_run}]({r.mlflow_run_url})" if r.mlflow_run_url else r.flow_run
        lines.append(f"| {r.model} | {r.target} | {run} | {r.state} | {r.outcome} | {r.edge_version or '—'} | {ratio} | {r.detail[:200]} |")
    return "\n".join(lines) + "\n"
