"""Page the fleet after a publish: the flow's step around ``edgeslim.fleet.page``.

Runs only for a version this run registered (every gate passed, alias moved); it adds rollout tags
to that version. A page to the whole group moves no alias; a staged rollout moves ``production``
when it completes, and each of its stages becomes a Prefect table artifact (one row per device).
A channel that failed, or a rollout that aborted, does not fail the step itself: the outcome goes
into report.json first, then the flow raises it by name (``raise_for_outcome``).
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect.artifacts import create_table_artifact

from edgeslim.config import Params
from edgeslim.fleet.page import page_version
from edgeslim.fleet.staged import StageReport
from tasks.step import step


def stage_artifact_key(group: str, stage: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"rollout-{group}-{stage}".lower())


@step("page-fleet")
def page_task(tracking_uri: str, p: Params, published: dict, run_dir: Path) -> dict:
    def on_stage(report: StageReport) -> None:
        create_table_artifact(
            key=stage_artifact_key(p.fleet.group, report.name), table=report.rows, description=f"stage {report.name}: {report.summary()}"
        )

    return page_version(tracking_uri, p, published["model"], published["version"], run_dir / "page", on_stage=on_stage)
