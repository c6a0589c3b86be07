"""Page the fleet after a publish: the flow's step around ``edgeslim.fleet.page``.

Runs only for a version this run registered (every gate passed, alias moved); it adds rollout tags
to that version and never touches aliases. A channel that failed does not fail the step itself:
the outcome goes into report.json first, then the flow raises it by name (``raise_for_channels``).
"""

from __future__ import annotations

from pathlib import Path

from edgeslim.config import Params
from edgeslim.fleet.page import page_version
from tasks.step import step


@step("page-fleet")
def page_task(tracking_uri: str, p: Params, published: dict, run_dir: Path) -> dict:
    return page_version(tracking_uri, p, published["model"], published["version"], run_dir / "page")
