"""``edgeslim rollout status|pause|resume|abort``: read a staged rollout's tags, or write its control tag.

The rollout itself (``edgeslim.fleet.staged``) runs wherever the page ran (a compress flow, or
``edgeslim page``); these commands talk to it only through the model version's tags in MLflow, so
they work from any machine that reaches the registry, and leave a record of who asked for what.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from edgeslim.errors import FleetError, RegistryError
from edgeslim.fleet.ledger import rollout_tag
from edgeslim.fleet.staged import ABORT, ABORTED, COMPLETED, PAUSE, PAUSED, RESUME, RUNNING

# What a control may be asked in which state: pause a running rollout, resume a paused one, abort either.
ALLOWED = {PAUSE: (RUNNING,), RESUME: (PAUSED,), ABORT: (RUNNING, PAUSED)}
# The tags `status` prints first, in this order (the per-stage ones follow).
HEAD = ("state", "stage", "sequence", "rollout_id", "control", "outcome", "reason", "rolled_back", "not_rolled_back", "manifest")


def rollout_tags(version: ModelVersion, group: str) -> dict[str, str]:
    """``{key: value}`` of the version's ``edgeslim.rollout.<group>.*`` tags."""
    prefix = rollout_tag(group, "")
    return {k.removeprefix(prefix): v for k, v in version.tags.items() if k.startswith(prefix)}


def status_text(version: ModelVersion, group: str) -> str:
    tags = rollout_tags(version, group)
    if "state" not in tags:
        raise FleetError(f"{version.name} version {version.version} has no staged rollout to group {group}")
    lines = [f"{version.name} v{version.version} → group {group}"]
    lines += [f"  {key}: {tags[key]}" for key in HEAD if tags.get(key)]
    lines += [f"  {key}: {value}" for key, value in sorted(tags.items()) if key.startswith("stage.")]
    return "\n".join(lines)


def request(client: MlflowClient, version: ModelVersion, group: str, control: str) -> str:
    """Write ``control`` on the version for the running rollout to obey; refuses where it means nothing."""
    state = rollout_tags(version, group).get("state")
    if state is None:
        raise FleetError(f"{version.name} version {version.version} has no staged rollout to group {group}")
    if state not in ALLOWED[control]:
        done = state in (COMPLETED, ABORTED)
        raise FleetError(
            f"cannot {control} the rollout of {version.name} v{version.version} to {group}: it is {state}" + (" (finished)" if done else "")
        )
    try:
        client.set_model_version_tag(version.name, version.version, rollout_tag(group, "control"), control)
    except MlflowException as exc:
        raise RegistryError(f"writing the rollout control on {version.name} version {version.version} failed: {exc.message}") from None
    return f"{control} requested for the rollout of {version.name} v{version.version} to {group} (it was {state}); the rollout obeys within fleet.rollout.control_poll_s"
