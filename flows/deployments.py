"""The Prefect deployments, declared once: served by `edgeslim serve`, or written to prefect.yaml.

``compress`` (parameter ``model``: NAME, NAME@ALIAS or NAME:VERSION) is what the MLflow webhook
receiver, the retrain flow and compress-many start with ``run_deployment``; ``retrain`` runs on
``triggers.retrain.cron``; ``compress-many`` fans out one compress run per (model, target) pair.

Two ways to run them. `edgeslim serve` registers them and runs their flow runs in its own process,
with the params file, overrides and tracking URI it was started with (one machine). prefect.yaml
(``edgeslim prefect-yaml --write``; ``edgeslim deploy`` applies it) binds the flows to the work pool
``prefect.cpu_pool`` and the step flow (``edgeslim-step/<pool>``, a step placed by ``steps.<name>.work_pool``)
to ``prefect.gpu_pool`` and any other pool a step is placed on. Each worker runs a flow run from its own checkout (``prefect.code_dir_env``,
read by the pull step when the run starts, so workers need not share a disk or a path) against the
MLflow server its environment names (MLFLOW_TRACKING_URI).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import prefect
import yaml
from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from edgeslim.config import Params
from flows.compress import compress_flow
from flows.compress_many import compress_many_flow
from flows.retrain import retrain_flow
from flows.step_run import step_flow

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = Path("prefect.yaml")
TAGS = ["edgeslim"]
# Every run of the deployments beats at prefect.heartbeat_s, the pace flows/crash_detection.py's automation expects.
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


@dataclass(frozen=True)
class Spec:
    """One deployment: its name, flow, work pool and description, and its schedule (cron, timezone) if any."""

    name: str
    flow: Flow[..., Any]
    pool: str
    description: str
    cron: tuple[str, str] | None = None

    @property
    def entrypoint(self) -> str:
        """``path/to/file.py:function``, how prefect.yaml and a worker find the flow."""
        source = Path(inspect.getsourcefile(self.flow.fn) or "").resolve().relative_to(REPO)
        return f"{source.as_posix()}:{self.flow.fn.__name__}"


def specs(p: Params) -> list[Spec]:
    """Every deployment: the flows on the cpu pool, and the step flow on the gpu pool and on every pool
    a step is placed on (``steps.<name>.work_pool``), named for its pool."""
    retrain, cpu = p.triggers.retrain, p.prefect.cpu_pool
    step_pools = dict.fromkeys([p.prefect.gpu_pool, *p.steps.pools().values()])
    return [
        Spec(p.triggers.compress_deployment, compress_flow, cpu,
             "Compress a registered model version and publish <model>-edge@candidate when every gate passes."),
        Spec(p.triggers.retrain_deployment, retrain_flow, cpu,
             "Finetune the champion on the newest dataset version; move the champion alias only when better.",
             cron=(retrain.cron, retrain.timezone)),
        Spec(p.prefect.compress_many_deployment, compress_many_flow, cpu,
             "Compress many (model, target) pairs at once, one compress run each, bounded by a global concurrency limit."),
        *(Spec(pool, step_flow, pool, f"Run one step of a compress run (steps.<name>.work_pool: {pool}), files moved through MLflow.")
          for pool in step_pools),
    ]  # fmt: skip


def deployments(p: Params, tracking_uri: str, params_file: Path, overrides: list[str]) -> list[RunnerDeployment]:
    common = {"tracking_uri": tracking_uri, "params_file": str(Path(params_file).resolve()), "overrides": list(overrides)}
    return [
        cast(
            RunnerDeployment,  # the sync call's value (the stubs also allow the async overload's coroutine)
            spec.flow.to_deployment(
                name=spec.name,
                parameters={k: v for k, v in common.items() if k in inspect.signature(spec.flow.fn).parameters},
                tags=TAGS,
                description=spec.description,
                schedule=Cron(spec.cron[0], timezone=spec.cron[1]) if spec.cron else None,
            ),
        )
        for spec in specs(p)
    ]


def serve_deployments(p: Params, tracking_uri: str, params_file: Path, overrides: list[str]) -> None:
    """Register the deployments with the Prefect server and run their flow runs until interrupted (each in a
    subprocess of this one, which inherits the heartbeat pace)."""
    os.environ[HEARTBEAT_ENV] = str(p.prefect.heartbeat_s)
    serve(*deployments(p, tracking_uri, params_file, overrides), print_starting_message=True)


def prefect_yaml(p: Params) -> str:
    """prefect.yaml for ``prefect deploy --all``: every deployment on its pool, run from each worker's
    own checkout, with the checkout's params.yaml."""
    doc = {
        "name": "edgeslim",
        "prefect-version": prefect.__version__,
        "build": None,
        "push": None,
        # Resolved when a run starts, from the worker's environment (a deployment-level pull would be resolved at deploy time).
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": f"{{{{ ${p.prefect.code_dir_env} }}}}"}}],
        "deployments": [
            {
                "name": spec.name,
                "entrypoint": spec.entrypoint,
                "description": spec.description,
                "tags": list(TAGS),
                "parameters": {"params_file": "params.yaml"},
                "work_pool": {"name": spec.pool, "job_variables": {"env": {HEARTBEAT_ENV: str(p.prefect.heartbeat_s)}}},
                "schedules": [{"cron": spec.cron[0], "timezone": spec.cron[1]}] if spec.cron else [],
            }
            for spec in specs(p)
        ],
    }
    header = "# Written by `edgeslim prefect-yaml --write` from params.yaml and flows/deployments.py; `make lint` checks it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=200)


def ensure_pools(p: Params) -> list[str]:
    """Create the work pools that do not exist yet, as process pools (a team's Docker or Kubernetes pools,
    made beforehand, are left as they are); returns the names created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    created = []
    with get_client(sync_client=True) as client:
        for name in (p.prefect.cpu_pool, p.prefect.gpu_pool):
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                template = ProcessWorker.get_default_base_job_template()
                client.create_work_pool(WorkPoolCreate(name=name, type=ProcessWorker.type, base_job_template=template))
                created.append(name)
    return created
