"""Starting a deployment run as a linked sub-flow and reading what it left behind, through the API only.

Why an artifact and not the run's return value: a result is readable by the parent only through result
storage that both machines share, and the runs on the pools share nothing but the Prefect API and the
MLflow server. So a child leaves a one-row Prefect table artifact under a known key.
"""

from __future__ import annotations

import json
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment


def run_subflow(deployment: str, parameters: dict[str, Any], name: str) -> FlowRun:
    """Run ``deployment`` on its pool and wait for it to end; Prefect links it under the calling task."""
    return cast(
        FlowRun,  # the sync call's value (the stubs also allow the async overload's coroutine)
        run_deployment(deployment, parameters=parameters, timeout=None, as_subflow=True, flow_run_name=name[:100]),
    )


def ended(run: FlowRun) -> tuple[str, str]:
    """The final state's name and message of a finished run."""
    return ((run.state.name if run.state else None) or "Unknown", (run.state.message if run.state else None) or "")


def artifact_row(flow_run_id: UUID, key: str) -> dict[str, Any] | None:
    """The one row of the table artifact ``key`` that run ``flow_run_id`` created, if it did."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key]))
        )
    if not found:
        return None
    data = found[0].data  # a table artifact's rows, as JSON text
    rows = json.loads(data) if isinstance(data, str) else data
    return dict(rows[0]) if isinstance(rows, list) and rows else None
