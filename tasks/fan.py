"""Prefect's side of :class:`edgeslim.dag.fan.Fan`: each item as a Prefect task run on a Dask cluster.

Prefect's own engine for parallel tasks is the ``DaskTaskRunner`` (prefect-dask). The fan opens one
for the call: a ``distributed.LocalCluster`` of ``prefect.dask.n_workers`` processes by default, or
the scheduler at ``prefect.dask.address`` (a cluster a team already runs). Its task runs belong to
the flow run that calls the fan, so they show under the step in the Prefect UI.

A local cluster costs its start and each worker process's imports (measured in
``benchmarks/fan.py``), so fewer than ``prefect.dask.min_items`` items run in this process, one
after another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from edgeslim.config import DaskParams
from edgeslim.dag.fan import Fan, sequential

T = TypeVar("T")
R = TypeVar("R")


@task(cache_policy=NO_CACHE)
def _item(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def _label(fn: Callable[..., Any]) -> str:
    inner = fn.func if isinstance(fn, partial) else fn
    return getattr(inner, "__name__", "item").strip("_")


def task_runner(dp: DaskParams) -> DaskTaskRunner:
    if dp.address:
        return DaskTaskRunner(address=dp.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": dp.n_workers, "threads_per_worker": dp.threads_per_worker, "processes": True})


def dask_fan(dp: DaskParams) -> Fan:
    """The fan of a flow run with these params (sequential when ``prefect.dask.enabled`` is off)."""
    if not dp.enabled:
        return sequential

    def fan(fn: Callable[[T], R], items: Sequence[T], /) -> list[R]:
        if len(items) < dp.min_items:
            return sequential(fn, items)
        label = _label(fn)
        print(f"{label}: {len(items)} items on Dask ({dp.address or f'local cluster, {dp.n_workers} workers'})")
        item_task = _item.with_options(name=f"fan-{label}")
        with task_runner(dp) as runner:
            futures = [
                runner.submit(item_task.with_options(task_run_name=f"{label}-{i}"), {"fn": fn, "item": x}) for i, x in enumerate(items)
            ]
            return [f.result() for f in futures]

    return fan
