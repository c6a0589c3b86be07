"""`edgeslim serve`: the Prefect deployments the triggers start, served by this process.

``compress`` (parameter ``model``: NAME, NAME@ALIAS or NAME:VERSION) is what the MLflow webhook
receiver and the retrain flow start with ``run_deployment``; ``retrain`` runs on
``triggers.retrain.cron``. Both carry the params file, overrides and tracking URI this process was
started with, so a triggered run computes exactly what `edgeslim compress` would.
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from edgeslim.config import Params
from flows.compress import compress_flow
from flows.retrain import retrain_flow


def deployments(p: Params, tracking_uri: str, params_file: Path, overrides: list[str]) -> list[RunnerDeployment]:
    common = {"tracking_uri": tracking_uri, "params_file": str(Path(params_file).resolve()), "overrides": list(overrides)}
    compress = compress_flow.to_deployment(
        name=p.triggers.compress_deployment,
        parameters=common,
        tags=["edgeslim"],
        description="Compress a registered model version and publish <model>-edge@candidate when every gate passes.",
    )
    retrain = retrain_flow.to_deployment(
        name=p.triggers.retrain_deployment,
        parameters=common,
        tags=["edgeslim"],
        schedule=Cron(p.triggers.retrain.cron, timezone=p.triggers.retrain.timezone),
        description="Finetune the champion on the newest dataset version; move the champion alias only when better.",
    )
    return [compress, retrain]  # type: ignore[list-item]  # sync to_deployment: not the async overload's coroutine


def serve_deployments(p: Params, tracking_uri: str, params_file: Path, overrides: list[str]) -> None:
    """Register the deployments with the Prefect server and run their flow runs until interrupted."""
    serve(*deployments(p, tracking_uri, params_file, overrides), print_starting_message=True)
