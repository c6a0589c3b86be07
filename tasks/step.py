"""Prefect's side of the DAG: each registry step runs as a Prefect task of its own name.

No result caching: steps pass file paths whose content changes between runs, so Prefect's input
hashing would either miss or wrongly hit; idempotence lives in the library (dataset folders keyed
by params hash, baseline reuse by tag) and in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import ParamSpec, TypeVar, cast

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import Step, StepInput
from edgeslim.registry.transient import is_transient

P = ParamSpec("P")
R = TypeVar("R")


def step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The task decorator of the flows' own steps (registry I/O: pull, publish, page).

    Typed as returning the function's own signature: called inside a flow, a sync task returns its
    value (Prefect's stubs also allow a coroutine, for async tasks, which edgeslim has none of).
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        made: Task[P, R] = task(name=name, cache_policy=NO_CACHE, log_prints=True)(fn)
        return cast(Callable[P, R], made)

    return wrap


def _transient(_task: Task, _run: TaskRun, state: State) -> bool:
    """Prefect's retry condition: retry only what another try can mend (a server restarting, a timeout)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - whatever the task raised, re-raised by its state
        return is_transient(exc)
    return False


def retrying(fn: Callable[P, R], p: Params) -> Callable[P, R]:
    """A step task that reads or writes the registry or artifact store, with ``prefect.task_retries``
    further tries ``prefect.task_retry_delay_s`` apart when it fails on a transient error."""
    made = cast(Task[P, R], fn).with_options(
        retries=p.prefect.task_retries, retry_delay_seconds=p.prefect.task_retry_delay_s, retry_condition_fn=_transient
    )
    return cast(Callable[P, R], made)


@cache
def _task(dag_step: Step) -> Callable[[StepInput, Params], Outcome]:
    return step(dag_step.name)(dag_step.body)


def as_task(dag_step: Step, inp: StepInput, p: Params) -> Outcome:
    """:data:`edgeslim.dag.run.Call` for Prefect: the step's body as a task run."""
    return _task(dag_step)(inp, p)
