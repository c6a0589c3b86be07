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

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import Step, StepInput

P = ParamSpec("P")
R = TypeVar("R")


def step(name: str, retries: int = 0) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The task decorator of the flows' own steps (registry I/O: pull, publish, page).

    Typed as returning the function's own signature: called inside a flow, a sync task returns its
    value (Prefect's stubs also allow a coroutine, for async tasks, which edgeslim has none of).
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        made: Task[P, R] = task(name=name, cache_policy=NO_CACHE, retries=retries, retry_delay_seconds=2, log_prints=True)(fn)
        return cast(Callable[P, R], made)

    return wrap


@cache
def _task(dag_step: Step) -> Callable[[StepInput, Params], Outcome]:
    return step(dag_step.name)(dag_step.body)


def as_task(dag_step: Step, inp: StepInput, p: Params) -> Outcome:
    """:data:`edgeslim.dag.run.Call` for Prefect: the step's body as a task run."""
    return _task(dag_step)(inp, p)
