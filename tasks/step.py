"""The task decorator every step uses.

No result caching: steps pass file paths whose content changes between runs, so Prefect's input
hashing would either miss or wrongly hit; idempotence lives in the library (dataset folders keyed
by params hash, baseline reuse by tag) and in the registry.
"""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE


def step(name: str, retries: int = 0):
    return task(name=name, cache_policy=NO_CACHE, retries=retries, retry_delay_seconds=2, log_prints=True)
