"""Which device gets a staged rollout in which stage: a pure function of the roster, the plan and the rollout id.

Why a hash of (rollout id, device id) and not the roster's order: the assignment must come out the
same when the rollout is resumed by another process or audited later, must not always put the same
devices in the canary (a new rollout id reshuffles them), and must not depend on the order in
which devices happened to report.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from edgeslim.config import ALL_PERCENT, FleetParams, RolloutStage


@dataclass(frozen=True)
class Assignment:
    stages: tuple[tuple[RolloutStage, tuple[str, ...]], ...]
    held: tuple[str, ...] = ()
    pinned: dict[str, str] = field(default_factory=dict)  # device → the version it is pinned to (not this one)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(d for _, devices in self.stages for d in devices)


def rank(rollout_id: str, device: str) -> str:
    return hashlib.sha256(f"{rollout_id}/{device}".encode()).hexdigest()


def assign(roster: set[str], fleet: FleetParams, version: str, rollout_id: str) -> Assignment:
    """Split the eligible devices of ``roster`` over ``fleet.rollout.stages`` (cumulative percents).

    Held devices and devices pinned to another version are left out. A stage holds at least its
    ``min_devices`` (while any are left), so a later stage can be empty: it is kept, and skipped.
    """
    held = tuple(sorted(roster & set(fleet.hold)))
    pinned = {d: v for d, v in sorted(fleet.pin.items()) if d in roster and d not in held and v != version}
    order = sorted(roster - set(held) - set(pinned), key=lambda d: rank(rollout_id, d))
    stages, taken = [], 0
    for stage in fleet.rollout.stages:
        upto = len(order) if stage.percent >= ALL_PERCENT else math.ceil(len(order) * stage.percent / ALL_PERCENT)
        upto = min(len(order), max(upto, taken + stage.min_devices))
        stages.append((stage, tuple(order[taken:upto])))
        taken = upto
    return Assignment(tuple(stages), held, pinned)
