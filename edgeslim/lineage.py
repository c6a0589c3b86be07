"""Lineage facts recorded on every registered version: code, params and data identity."""

from __future__ import annotations

import os
import subprocess

from edgeslim.gates import Gate

TAG_PREFIX = "edgeslim."
RUN_ID_TAG = f"{TAG_PREFIX}run_id"  # on an edge version: the compress run that published it
PUBLISH_KEY_TAG = f"{TAG_PREFIX}publish_key"  # same key = same source version, params and data
TASK_TAG = f"{TAG_PREFIX}task"  # the model's ultralytics task (detect, segment, pose, obb)
METRIC_TAG = f"{TAG_PREFIX}metric"  # which mAP the run's figures and gates are (``mask mAP50-95``)


def git_sha() -> str:
    """Commit of the code that ran (``GITHUB_SHA`` in Actions; ``unknown`` outside a checkout)."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def tags(**facts: object) -> dict[str, str]:
    return {f"{TAG_PREFIX}{k}": str(v) for k, v in facts.items() if v is not None}


def gate_tags(gates: dict[str, Gate]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, g in gates.items():
        out.update(tags(**{f"gate.{name}.passed": g.passed, f"gate.{name}.value": f"{g.value:.6g}", f"gate.{name}.threshold": g.threshold}))
    return out
