"""The step flow: one registry step, run on a worker of another pool (``steps.<name>.work_pool``).

The parent compress run (tasks/placement.py) hands over the step's name, the run's full params and
the outcomes the step needs, every file in them as a content-addressed blob in MLflow
(:mod:`edgeslim.registry.blobs`). This run downloads and checks them and rebuilds the dataset from the
same params. That dataset must hash as the parent's did. The run then executes the step as the
registry declares it and sends the outcome back the same way: its files as blobs, the outcome itself as
one more blob, whose reference it leaves in a Prefect table artifact for the parent to read.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_table_artifact

from edgeslim import workspace
from edgeslim.config import Params, load_params
from edgeslim.dag.layout import Layout
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.registry import DATASET, step_named
from edgeslim.dag.run import run_step, run_steps
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.registry import blobs
from edgeslim.registry import mlflow_registry as reg
from tasks.step import as_task

STEP_RESULT_KEY = "edgeslim-step-result"


@flow(name="edgeslim-step", log_prints=True)
def step_flow(
    step: str, params: dict, inputs: dict[str, dict], transfer_run: str, tracking_uri: str | None = None, params_file: str = "params.yaml"
) -> str:
    """Run ``step`` with the parent's ``params`` (its workspace replaced by this checkout's, from
    ``params_file``) on ``inputs`` (outcomes whose artifacts are blob references); returns the blob
    URI of the outcome."""
    p = Params.model_validate({**params, "workspace": str(load_params(params_file).workspace)})
    client = reg.connect(workspace.flow_tracking_uri(p, tracking_uri))
    layout = Layout(workspace.new_run_dir(p, f"step-{step}"), datasets=workspace.datasets_dir(p))
    arrived = layout.dir("inputs")
    outcomes = {
        name: Outcome.from_dict(data, lambda ref: blobs.get(blobs.Blob(**ref), arrived))
        for name, data in inputs.items()
        if name != DATASET.name
    }
    if DATASET.name in inputs:
        outcomes[DATASET.name] = local = run_steps((DATASET,), p, layout, call=as_task)[DATASET.name]
        sent = inputs[DATASET.name]["details"]["dataset"]["sha256"]
        if dataset_info(local).sha256 != sent:
            raise blobs.TransferError(
                f"the dataset built here hashes {dataset_info(local).sha256[:12]}, the parent's {sent[:12]}: "
                "dataset.data_yaml must name the same data on every worker"
            )
    outcome = run_step(step_named(step), p, layout, outcomes, call=as_task)
    wire = outcome.to_dict(lambda path: blobs.put(client, transfer_run, path).as_dict())
    record = layout.dir("outcome") / f"{step}.outcome.json"
    record.write_text(json.dumps(wire, indent=2, sort_keys=True) + "\n")
    sent_back = blobs.put(client, transfer_run, record)
    create_table_artifact(table=[sent_back.as_dict()], key=STEP_RESULT_KEY, description=f"the outcome of step {step}, as a blob in MLflow")
    print(f"step {step} done on this worker; outcome {sent_back.uri}")
    return sent_back.uri


def read_outcome(ref: dict, dest: Path) -> Outcome:
    """The outcome a step run sent back (``ref``: its table artifact's row), its files downloaded under ``dest``."""
    data = json.loads(blobs.get(blobs.Blob(**ref), dest).read_text())
    return Outcome.from_dict(data, lambda blob: blobs.get(blobs.Blob(**blob), dest))
