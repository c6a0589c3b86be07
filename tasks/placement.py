"""Where each step of a compress run executes: as a task in the run's own process, or, for the steps
that ``steps.<name>.work_pool`` places on a pool, as a run of the ``edgeslim-step/<pool>`` deployment
there (flows/step_run.py), with the parent waiting on it.

The step's input files go up as blobs in MLflow (:mod:`edgeslim.registry.blobs`), and its outcome comes
back the same way, each file checked by sha256. The returned outcome says where it ran: the pool, the
sub-flow run, and the transfer run in ``details["<step>_placement"]``, which report.json carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache

from prefect.runtime import flow_run

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, placement_key
from edgeslim.dag.run import Call
from edgeslim.dag.scoped import whole
from edgeslim.dag.step import Step, StepInput
from edgeslim.errors import EdgeslimError
from edgeslim.registry import blobs
from edgeslim.registry import mlflow_registry as reg
from flows.step_run import STEP_RESULT_KEY, read_outcome, step_flow
from tasks.step import as_task, step
from tasks.subflow import artifact_row, ended, run_subflow


class StepRunFailed(EdgeslimError):
    """A step placed on another pool did not finish there (or left no outcome)."""


def step_deployment(pool: str) -> str:
    return f"{step_flow.name}/{pool}"


def placed(p: Params, tracking_uri: str) -> Call:
    """The :data:`~edgeslim.dag.run.Call` of a compress run with these params: ``as_task``, except for
    the steps placed on a pool. A sub-flow run gets the params whole, as bound for its step (what the
    search chose included), not as the run began."""
    pools = p.steps.pools()

    def call(dag_step: Step, inp: StepInput, scoped: Params) -> Outcome:
        pool = pools.get(dag_step.name)
        if pool is None:
            return as_task(dag_step, inp, scoped)
        return _remote_task(dag_step.name, pool)(dag_step, inp, whole(scoped), pool, tracking_uri)

    return call


@cache
def _remote_task(name: str, pool: str) -> Callable[[Step, StepInput, Params, str, str], Outcome]:
    return step(f"{name}@{pool}")(_remote)


def _remote(dag_step: Step, inp: StepInput, p: Params, pool: str, tracking_uri: str) -> Outcome:
    client = reg.connect(tracking_uri)
    transfer = blobs.transfer_run(client, p.mlflow.experiment, str(flow_run.id or "no-flow-run"))
    inputs = {name: o.to_dict(lambda path: blobs.put(client, transfer, path).as_dict()) for name, o in inp.outcomes.items()}
    parameters = {
        "step": dag_step.name,
        "params": p.model_dump(mode="json"),
        "inputs": inputs,
        "transfer_run": transfer,
        "tracking_uri": tracking_uri,
    }
    print(
        f"running step {dag_step.name} on work pool {pool} (inputs: {sum(len(o.artifacts) for o in inp.outcomes.values())} files via MLflow)"
    )
    run = run_subflow(step_deployment(pool), parameters, f"{dag_step.name} of {flow_run.name or 'a compress run'}")
    state, message = ended(run)
    ref = artifact_row(run.id, STEP_RESULT_KEY)
    if ref is None:
        raise StepRunFailed(f"step {dag_step.name} on work pool {pool}: run {run.name} ended {state} without an outcome: {message}")
    outcome = read_outcome(ref, inp.dir() / "arrived")
    where = {"work_pool": pool, "flow_run_id": str(run.id), "flow_run_name": run.name, "transfer_run": transfer}
    print(f"step {dag_step.name} came back from {run.name} on {pool}")
    return replace(outcome, details={**outcome.details, placement_key(dag_step.name): where})
