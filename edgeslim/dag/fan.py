"""Mapping a function over independent items: the seam where a runner spreads a step's inner loop.

A step body that loops over independent work (the INT8 fallback's per-layer sweep, the scoring of
several artifacts) calls ``inp.fan(fn, items)`` instead of a list comprehension. The library's
runners (DVC stages, benchmarks) keep :func:`sequential`; the Prefect flow hands in a fan that runs
each item as a Prefect task on a Dask cluster (:mod:`tasks.fan`). ``fn`` must be picklable (a
module-level function or a ``functools.partial`` of one), because a fan may run it in another process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Fan(Protocol):
    """``fn`` over ``items``, results in the items' order."""

    def __call__(self, fn: Callable[[T], R], items: Sequence[T], /) -> list[R]: ...


def sequential(fn: Callable[[T], R], items: Sequence[T], /) -> list[R]:
    return [fn(item) for item in items]
