"""The pure parts of staged rollouts: stage assignment, the plan's validation, the golden-set error,
the manifest's golden field, and the stage tally."""

from __future__ import annotations

import numpy as np
import pytest
from fleet_support import REPO

from edgeslim.agent.golden import output_error
from edgeslim.config import ConfigError, load_params
from edgeslim.errors import ManifestError
from edgeslim.fleet.manifest import Artifact
from edgeslim.fleet.plan import assign
from edgeslim.fleet.rollout import tally

PLAN = (
    "fleet.rollout.stages=[{name: canary, percent: 5, min_devices: 2, soak_s: 0, success: 0.9, abort: 0.2, min_reports: 2},"
    " {name: wave, percent: 25, min_devices: 1, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 5},"
    " {name: all, percent: 100, min_devices: 1, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 5}]"
)
ROSTER = {f"cam-{i:03d}" for i in range(100)}


def _fleet(*extra: str):
    return load_params(REPO / "params.yaml", [PLAN, *extra]).fleet


def test_assignment_is_deterministic_covers_everyone_once_and_reshuffles_per_rollout():
    fleet = _fleet("fleet.hold=[cam-001]", "fleet.pin={cam-002: '7', cam-003: '9'}")
    first = assign(ROSTER, fleet, "9", "m/9/line/4")
    assert first == assign(set(sorted(ROSTER, reverse=True)), fleet, "9", "m/9/line/4")  # roster order does not matter
    sizes = [len(devices) for _, devices in first.stages]
    assert sizes == [5, 20, 73], sizes  # of 98 eligible: ceil(4.9), ceil(24.5) − 5, the rest
    assert first.held == ("cam-001",) and first.pinned == {"cam-002": "7"}  # pinned to this version: eligible
    assert "cam-003" in first.devices and sorted(first.devices) == sorted(ROSTER - {"cam-001", "cam-002"})
    other = assign(ROSTER, fleet, "9", "m/9/line/5")
    assert other.stages[0][1] != first.stages[0][1], "a new rollout id must pick another canary"


def test_a_small_fleet_still_gets_a_canary_of_min_devices_and_empty_later_stages():
    stages = assign({"a", "b"}, _fleet(), "1", "r").stages
    assert [len(d) for _, d in stages] == [2, 0, 0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fleet.rollout.stages=[{name: a, percent: 50, min_devices: 1, soak_s: 0, success: 1, abort: 0.1, min_reports: 1}]", "percent 100"),
        (
            "fleet.rollout.stages=[{name: a, percent: 50, min_devices: 1, soak_s: 0, success: 1, abort: 0.1, min_reports: 1},"
            " {name: b, percent: 20, min_devices: 1, soak_s: 0, success: 1, abort: 0.1, min_reports: 1}]",
            "growing percent",
        ),
        ("fleet.rollout.stages=[{name: a, percent: 100, min_devices: 1, soak_s: 0, success: 1, abort: 0.1}]", "min_reports"),
    ],
)
def test_bad_plans_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_params(REPO / "params.yaml", [override])


def test_a_staged_plan_needs_the_mqtt_channel_alone():
    with pytest.raises(ConfigError, match="only the mqtt channel"):
        _fleet("fleet.channels=[mqtt, webhook]", "fleet.webhook.urls=[http://x]")


def test_golden_error_is_relative_to_the_outputs_own_scale():
    ref = np.array([[100.0, -50.0, 0.5]], np.float32)
    assert output_error(ref.copy(), ref) == 0.0
    assert output_error(ref + 1.0, ref) == pytest.approx(0.01)
    assert output_error(ref[:, :2], ref) == float("inf")
    assert np.isnan(output_error(np.full((2,), np.nan), np.zeros(2)))  # NaN: the health check fails it (not error <= tolerance)


def test_manifest_refuses_a_malformed_golden_set():
    art = {"name": "m.onnx", "format": "onnx-int8", "uri": "http://s3/m", "size": 10, "sha256": "a" * 64}
    good = {"uri": "http://s3/g", "size": 5, "sha256": "b" * 64, "tolerance": 0.01}
    assert Artifact.from_dict({**art, "golden": good}).golden == good
    for bad, message in (({**good, "tolerance": 0}, "tolerance"), ({**good, "uri": "file:///g"}, "uri"), ({"uri": "http://x"}, "exactly")):
        with pytest.raises(ManifestError, match=message):
            Artifact.from_dict({**art, "golden": bad})


def test_tally_counts_only_reports_on_the_rollouts_sequence():
    statuses = {
        "a": {"state": "active", "sequence": 4},
        "b": {"state": "rolled-back", "sequence": 4, "reason": "health check failed"},
        "c": {"state": "active", "sequence": 3},  # still on the last rollout
        "d": {"state": "offline", "sequence": None},
    }
    count = tally(statuses, ["a", "b", "c", "d", "e"], 4)
    assert count.updated == ["a"] and list(count.failed) == ["b"] and count.pending == ["c", "d", "e"] and count.reported == 2
