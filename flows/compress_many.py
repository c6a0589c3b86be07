"""The compress-many flow: one compress deployment run per (model, target) pair, at once, on the pools.

Prefect does the scheduling: each pair becomes a run of the ``compress`` deployment, started with
``run_deployment`` as a linked sub-flow and executed by whichever worker of its pool takes it. A
Prefect global concurrency limit (``prefect.concurrency_limit``, ``prefect.max_concurrent`` slots,
shared by every compress-many run) bounds how many are in flight. Nothing passes through a shared
disk: a child pulls its model from the registry and publishes back to it, and its result comes back
as a Prefect table artifact that the parent reads through the API. The per-model publish lock keeps
edge versions unique when two runs publish the same model.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from edgeslim import workspace
from edgeslim.cluster.fanout import OUTCOME_GATE, Job, Row, markdown_table, parse_jobs, row_from_result
from edgeslim.config import Params, load_params
from edgeslim.errors import EdgeslimError, GateFailed
from edgeslim.triggers.start import compress_deployment
from flows.compress import RESULT_ARTIFACT_KEY
from tasks.subflow import artifact_row, ended, run_subflow

SUMMARY_ARTIFACT_KEY = "edgeslim-compress-many"


class SomeFailed(EdgeslimError):
    """At least one child run did not publish (exit 2; 3 when every one that did not failed a gate)."""

    def __init__(self, message: str, gates_only: bool) -> None:
        super().__init__(message)
        self.exit_code = GateFailed.exit_code if gates_only else EdgeslimError.exit_code


@flow(name="edgeslim-compress-many", log_prints=True)
def compress_many_flow(
    jobs: list[dict[str, Any] | str], tracking_uri: str | None = None, params_file: str = "params.yaml", overrides: list[str] | None = None
) -> dict:
    """Compress every ``{model: REF, target: PROFILE}`` pair (a bare REF: ``target.name``) as its own
    compress run, ``prefect.max_concurrent`` at a time; one summary table for all of them.

    ``params_file`` is this run's (the limit's name and size, the known targets); the children read
    their deployment's own. ``tracking_uri``: None = the MLflow server of each child's environment.
    """
    p = load_params(params_file, overrides or [])
    pairs = parse_jobs(jobs, p)
    _ensure_limit(p)
    futures = [_child.with_options(name=f"compress {job.label}").submit(job, p, tracking_uri, overrides or []) for job in pairs]
    rows = [future.result() for future in futures]
    table = markdown_table(rows)
    out = workspace.new_run_dir(p, "compress-many") / "report.json"
    out.write_text(json.dumps({"runs": [row.__dict__ for row in rows]}, indent=2) + "\n")
    create_markdown_artifact(key=SUMMARY_ARTIFACT_KEY, markdown=table, description=f"report.json: {out}")
    print(table)
    failed = [r for r in rows if not r.edge_version]
    if failed:
        said = "; ".join(f"{r.model} for {r.target}: {r.outcome}, run {r.state} ({r.detail})" for r in failed)
        raise SomeFailed(
            f"{len(failed)} of {len(rows)} runs published nothing: {said}; report: {out}", all(r.outcome == OUTCOME_GATE for r in failed)
        )
    return {"report": str(out), "runs": [row.__dict__ for row in rows]}


def _ensure_limit(p: Params) -> None:
    """Create the global concurrency limit, or resize it to ``prefect.max_concurrent`` (Prefect would
    otherwise run unbounded: a missing limit only warns)."""
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(p.prefect.concurrency_limit, p.prefect.max_concurrent)
        except ObjectAlreadyExists:  # another compress-many created it between the read and the create
            pass


@task(cache_policy=NO_CACHE, log_prints=True)
def _child(job: Job, p: Params, tracking_uri: str | None, overrides: list[str]) -> Row:
    """One compress deployment run for ``job``, holding one slot of the limit until it ends. The child
    reads the params file of its deployment (on a worker: the one in the worker's checkout), with this
    run's overrides and the job's target on top."""
    parameters: dict[str, Any] = {"model": job.model, "overrides": job.overrides(overrides)}
    if tracking_uri:
        parameters["tracking_uri"] = tracking_uri
    with concurrency(p.prefect.concurrency_limit, occupy=1, strict=True):
        run = run_subflow(compress_deployment(p), parameters, f"compress {job.label}")
    state, message = ended(run)
    print(f"{job.label}: {run.name} ended {state}")
    return row_from_result(job, run.name, str(run.id), state, artifact_row(run.id, RESULT_ARTIFACT_KEY), message)
