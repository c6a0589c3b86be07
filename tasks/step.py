"""Prefect's side of the DAG: each registry step runs as a Prefect task of its own name.

No result caching: steps pass file paths whose content changes between runs, so Prefect's input
hashing would either miss or wrongly hit; idempotence lives in the library (dataset folders keyed
by params hash, baseline reuse by tag) and in the registry.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import Step, StepInput


def step(name: str, retries: int = 0) -> Callable[[Callable[..., Any]], Task[..., Any]]:
    """The task decorator of the flows' own steps (registry I/O: pull, publish, page)."""
    return task(name=name, cache_policy=NO_CACHE, retries=retries, retry_delay_seconds=2, log_prints=True)


@cache
def _task(dag_step: Step) -> Task[[StepInput, Params], Outcome]:
    return step(dag_step.name)(dag_step.body)


def as_task(dag_step: Step, inp: StepInput, p: Params) -> Outcome:
    """:data:`edgeslim.dag.run.Call` for Prefect: the step's body as a task run."""
    return _task(dag_step)(inp, p)
