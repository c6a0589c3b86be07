"""A mutex held in the registry itself, so publishing one model is serialized across processes and machines.

Why in the registry: two flow runs for the same model may run on different workers that share
nothing but the tracking server. Creating a registered model is atomic on the server (its name is
a unique key), so ``<model>.publish-lock`` exists for exactly one holder at a time. A lock older
than ``ttl_s`` belongs to a crashed holder and is broken.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeslim.errors import RegistryError

LOCK_SUFFIX = ".publish-lock"
SINCE_TAG = "edgeslim.lock_since"
HOLDER_TAG = "edgeslim.lock_holder"


# What creating the lock can answer while another run takes or releases it: the name exists, or the
# server's own existence check raced a release and looked up a model that was deleted meanwhile.
CONTENDED = frozenset({"RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"})


def _stale(client: MlflowClient, lock: str, ttl_s: float) -> bool:
    """Whether the lock is older than ``ttl_s``. The server creates a registered model before it sets
    its tags, so a lock caught in between has no ``SINCE_TAG`` yet: its age is then its creation time's."""
    try:
        held = client.get_registered_model(lock)
    except MlflowException:
        return False  # released meanwhile
    since = float(held.tags.get(SINCE_TAG, held.creation_timestamp / 1000))
    return time.time() - since > ttl_s


@contextmanager
def registry_lock(client: MlflowClient, model: str, holder: str, ttl_s: float, timeout_s: float, poll_s: float) -> Iterator[None]:
    """Hold ``<model>.publish-lock`` for the duration of the block."""
    lock = f"{model}{LOCK_SUFFIX}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_registered_model(
                lock,
                tags={HOLDER_TAG: holder, SINCE_TAG: f"{time.time():.3f}"},
                description=f"held by {holder} since {datetime.now(UTC).isoformat()}; edgeslim deletes it after publishing",
            )
            break
        except MlflowException as exc:
            if exc.error_code not in CONTENDED:
                raise RegistryError(
                    f"could not take the publish lock {lock}: {exc.message}"
                ) from exc  # the cause tells a transient failure (registry/transient.py)
        if _stale(client, lock, ttl_s):
            try:
                client.delete_registered_model(lock)
            except MlflowException:
                pass  # another waiter broke it first
            continue
        if time.monotonic() > deadline:
            raise RegistryError(f"publish lock {lock} still held after {timeout_s:.0f}s; another run is publishing {model}")
        time.sleep(poll_s)
    try:
        yield
    finally:
        try:
            client.delete_registered_model(lock)
        except MlflowException:
            pass  # server gone: the lock turns stale after ttl_s and the next holder breaks it
