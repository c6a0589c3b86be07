"""Crash detection for runs whose worker died with them: Prefect's zombie-flow automation, scoped to edgeslim.

A flow run that dies under a live worker is reported ``Crashed`` by that worker. When the worker dies
too (a lost machine, an evicted pod), nobody reports anything and the run would stay ``Running`` for good,
its compress-many parent waiting on it. Prefect's answer is heartbeats plus an automation: each run of the
deployments sends ``prefect.flow-run.heartbeat`` every ``prefect.heartbeat_s`` (prefect.yaml's job
variables set ``flows.deployments.HEARTBEAT_ENV``; ``edgeslim serve`` sets it for its own runs), and a
proactive trigger marks a run ``Crashed`` when neither a heartbeat nor a final state followed its last
heartbeat within ``prefect.unresponsive_after_s``. Nothing was published for such a run (publishing is
its last step, under the model's lock), so a rerun publishes it once.

The trigger matches only runs tagged like the deployments (``TAGS``): a team's other flows keep Prefect's
default heartbeat (180 s), which this window would take for silence. It needs a Prefect server with
its services on (the triggers and actions services evaluate it), as ``prefect server start`` runs by default.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from edgeslim.config import Params
from flows.deployments import TAGS

NAME = "edgeslim: crash unresponsive runs"
HEARTBEAT = "prefect.flow-run.heartbeat"
FINAL = ("Completed", "Failed", "Cancelled", "Crashed")


def automation(p: Params) -> AutomationCore:
    """The automation as params define it: after a heartbeat, expect another (or a final state) in time."""
    window = p.prefect.unresponsive_after_s
    return AutomationCore(
        name=NAME,
        description=f"Marks an edgeslim flow run Crashed when it sent no heartbeat for {window} s (its worker or machine died).",
        trigger=EventTrigger(
            after={HEARTBEAT},
            expect={HEARTBEAT, *(f"prefect.flow-run.{state}" for state in FINAL)},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": [f"prefect.tag.{t}" for t in TAGS]}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=window),
        ),
        actions=[
            ChangeFlowRunState(
                name=None, state=StateType.CRASHED, message=f"no heartbeat for {window} s: its worker or machine stopped", force=False
            )
        ],
    )


def ensure_crash_detection(p: Params) -> str:
    """Create the automation, or bring the one of that name up to params; ``created``, ``updated`` or ``unchanged``."""
    wanted = automation(p)
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(NAME)
        if not existing:
            client.create_automation(wanted)
            return "created"
        current = existing[0]
        if AutomationCore(**current.model_dump(exclude={"id", "created", "updated"})) == wanted:
            return "unchanged"
        client.update_automation(current.id, wanted)
        return "updated"
