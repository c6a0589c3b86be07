"""A staged rollout: canary, then waves, each judged before the next; an abort rolls the fleet back.

How it goes (README "Rolling out to a fleet"):

1. The roster is what the group's retained statuses say (plus ``fleet.rollout.devices``), and each
   device's ``active`` model right now is remembered: that is what a rollback returns it to.
2. One sequence is claimed for the new version. Held devices and devices pinned to another version
   are left out, the rest are split over the stages by a hash (``edgeslim.fleet.plan``).
3. Per stage: each device gets the signed manifest on its own retained topic, at most
   ``rate_per_min`` a minute. Then the stage is watched until every device settled or
   ``report_timeout_s`` passed. It aborts early once ``min_reports`` devices reported and the failed
   share reached ``abort``. At its end, silent devices count as failed, and fewer active than
   ``success`` also aborts. A passed stage soaks for ``soak_s`` (failures still abort) before the
   next one, unless nothing is left to update.
4. Abort: every device that was told gets a rollback manifest (a new, higher sequence, so replay
   protection still holds) pointing at the version it ran before; a device that never took the new
   version finds it already runs that model. Only a completed rollout moves ``production``.

``edgeslim rollout pause|resume|abort`` writes a control tag on the version; the rollout reads it
every ``control_poll_s`` (between two devices told, and while it waits). Every transition is written
as ``edgeslim.rollout.<group>.*`` tags on the version, and each stage's table goes to ``on_stage``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeslim.config import FleetMqttParams, Params, RolloutStage
from edgeslim.errors import EdgeslimError, RegistryError
from edgeslim.fleet import ledger
from edgeslim.fleet import mqtt as mq
from edgeslim.fleet.plan import assign
from edgeslim.fleet.prepare import Prepared
from edgeslim.fleet.rollout import FAILED, UPDATED, StatusWatch, Tally, tally
from edgeslim.fleet.signing import sign
from edgeslim.fleet.store import FleetStore
from edgeslim.fleet.topics import device_manifest_topic, manifest_topic

RUNNING, PAUSED, COMPLETED, ABORTED = "running", "paused", "completed", "aborted"
PAUSE, RESUME, ABORT = "pause", "resume", "abort"
CONTROLS = (PAUSE, RESUME, ABORT)
DECIMALS = 3


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class StagedContext:
    p: Params
    client: MlflowClient
    store: FleetStore
    key: Ed25519PrivateKey
    log: Callable[[str], None]


@dataclass
class StageReport:
    name: str
    percent: float
    devices: list[str]
    told_s: float = 0.0  # since the rollout started: the last device of the stage told
    settled_s: float = 0.0  # since the rollout started: the stage judged
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)
    verdict: str = "skipped"  # passed, aborted, skipped (no device in it)
    golden_error_max: float | None = None
    latency_ms_median: float | None = None
    rows: list[dict] = field(default_factory=list)  # per device, for the Prefect table

    def summary(self) -> str:
        figures = []
        if self.golden_error_max is not None:
            figures.append(f"golden error ≤ {self.golden_error_max:.3g}")
        if self.latency_ms_median is not None:
            figures.append(f"median latency {self.latency_ms_median:.1f} ms")
        counts = f"{len(self.devices)} told, {len(self.updated)} active, {len(self.failed)} failed, {len(self.silent)} silent"
        return f"{self.verdict}: {counts}" + (f" ({', '.join(figures)})" if figures else "")


@dataclass
class StagedResult:
    state: str
    reason: str
    sequence: int
    rollout_id: str
    stages: list[StageReport]
    held: list[str]
    pinned: dict[str, str]
    rollback_sequences: dict[str, int] = field(default_factory=dict)  # previous version → its rollback sequence
    rolled_back: list[str] = field(default_factory=list)
    not_rolled_back: dict[str, str] = field(default_factory=dict)
    # complete_s: claim of the sequence → the end (rolled back, for an abort); first_failure_s: since that start;
    # abort_s and rollback_s: from the first failed report to the abort, and to the last report on a rollback manifest.
    timings: dict[str, float | None] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        for stage in data["stages"]:
            stage.pop("rows")
        return data


class _Abort(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeviceSender:
    """One MQTT connection that puts a manifest on each device's retained topic (QoS as params say)."""

    def __init__(self, cfg: FleetMqttParams, group: str) -> None:
        self.cfg, self.group = cfg, group
        self.client = mq.make_client("edgeslim-rollout-sender")
        mq.connect(self.client, cfg.host, cfg.port, cfg.keepalive_s, cfg.timeout_s)
        self.sent = 0
        self._pending: list = []

    def send(self, device: str, envelope: bytes) -> None:
        info = self.client.publish(
            device_manifest_topic(self.cfg.topic_prefix, self.group, device), envelope, qos=self.cfg.qos, retain=True
        )
        self._pending.append(info)
        self.sent += 1

    def clear_group_manifest(self) -> None:
        """An empty retained message deletes the group's retained manifest (MQTT 3.1.1, 3.3.1.3)."""
        mq.publish(self.client, manifest_topic(self.cfg.topic_prefix, self.group), b"", self.cfg.qos, True, self.cfg.timeout_s)

    def flush(self) -> None:
        for info in self._pending:
            info.wait_for_publish(self.cfg.timeout_s)
            if not info.is_published():
                raise OSError(f"broker did not acknowledge a device manifest within {self.cfg.timeout_s:g}s")
        self._pending.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class StagedRollout:
    def __init__(
        self,
        ctx: StagedContext,
        forward: Prepared,
        previous: Callable[[str], Prepared],
        watch: StatusWatch,
        sender: DeviceSender,
        on_stage: Callable[[StageReport], None] | None,
    ) -> None:
        self.ctx, self.forward, self.previous, self.watch, self.sender = ctx, forward, previous, watch, sender
        self.on_stage = on_stage or (lambda _report: None)
        self.plan = ctx.p.fleet.rollout
        self.group = ctx.p.fleet.group
        self.t0 = _now()
        self._last_control = 0.0
        self.told: dict[str, float] = {}
        self.sequence = 0

    # -- registry ------------------------------------------------------------------------------
    def _tag(self, **facts: str) -> None:
        ledger.record(self.ctx.client, self.forward.model, self.forward.version, self.group, facts)

    def _control(self) -> str:
        try:
            tags = self.ctx.client.get_model_version(self.forward.model, self.forward.version).tags
        except MlflowException:
            return RESUME  # a registry hiccup must not stop a rollout; the next look reads it again
        return tags.get(ledger.rollout_tag(self.group, "control"), RESUME)

    def _obey(self) -> float:
        """Read the control tag (at most every ``control_poll_s``); wait out a pause. Seconds paused."""
        if _now() - self._last_control < self.plan.control_poll_s:
            return 0.0
        self._last_control = _now()
        control, paused_at = self._control(), None
        while control == PAUSE:
            if paused_at is None:
                paused_at = _now()
                self._tag(state=PAUSED)
                self.ctx.log(f"rollout paused ({self.group}); `edgeslim rollout resume` goes on")
            time.sleep(self.plan.control_poll_s)
            control = self._control()
        if control == ABORT:
            raise _Abort("aborted by an operator (edgeslim rollout abort)")
        if paused_at is None:
            return 0.0
        self._tag(state=RUNNING)
        self.ctx.log(f"rollout resumed ({self.group})")
        return _now() - paused_at

    def _since(self, moment: float) -> float:
        return round(moment - self.t0, DECIMALS)

    # -- stages --------------------------------------------------------------------------------
    def _tell(self, devices: tuple[str, ...], envelope: bytes) -> None:
        interval = 60.0 / self.plan.rate_per_min
        start = _now()
        for index, device in enumerate(devices):
            start += self._obey()
            delay = start + index * interval - _now()
            if delay > 0:
                time.sleep(delay)
            self.sender.send(device, envelope)
            self.told[device] = _now()
        self.sender.flush()

    def _judge(self, stage: RolloutStage, report: StageReport) -> None:
        """Watch the stage until it settled or timed out; abort early on the failed share."""
        devices = tuple(report.devices)
        deadline = max(self.told[d] for d in devices) + self.plan.report_timeout_s
        seen = -1
        while True:
            deadline += self._obey()
            count = tally(self.watch.snapshot(), devices, self.sequence)
            if count.reported >= stage.min_reports and count.failed and len(count.failed) / count.reported >= stage.abort:
                self._close(report, count, silent=[])
                raise _Abort(
                    f"stage {stage.name}: {len(count.failed)} of {count.reported} devices that reported failed "
                    f"(abort at {stage.abort:.0%}); first: {next(iter(count.failed.items()))}"
                )
            left = deadline - _now()
            if not count.pending or left <= 0:
                break
            seen = self.watch.wait_change(seen, min(self.plan.control_poll_s, left))
        self._close(report, count, silent=count.pending)
        bad = len(count.failed) + len(count.pending)
        if bad and bad / len(devices) >= stage.abort:
            raise _Abort(
                f"stage {stage.name}: {len(count.failed)} failed and {len(count.pending)} silent of {len(devices)} (abort at {stage.abort:.0%})"
            )
        if len(count.updated) / len(devices) < stage.success:
            raise _Abort(f"stage {stage.name}: {len(count.updated)} of {len(devices)} active, under the success share {stage.success:.0%}")
        report.verdict = "passed"

    def _close(self, report: StageReport, count: Tally, silent: list[str]) -> None:
        statuses = self.watch.snapshot()
        report.settled_s = self._since(_now())
        report.updated, report.failed, report.silent = count.updated, count.failed, silent
        report.verdict = ABORTED
        # Every device that reported on this sequence, failed ones included: a canary aborted on golden errors shows them.
        reported = [*count.updated, *count.failed]
        errors = [s["golden_error"] for d in reported if isinstance((s := statuses[d]).get("golden_error"), (int, float))]
        latencies = [s["latency_ms"] for d in count.updated if isinstance((s := statuses[d]).get("latency_ms"), (int, float))]
        report.golden_error_max = max(errors) if errors else None
        report.latency_ms_median = round(statistics.median(latencies), DECIMALS) if latencies else None
        report.rows = [
            {
                "device": d,
                "state": statuses.get(d, {}).get("state") if d not in silent else "silent",
                "golden_error": statuses.get(d, {}).get("golden_error"),
                "latency_ms": statuses.get(d, {}).get("latency_ms"),
                "reason": count.failed.get(d, ""),
            }
            for d in report.devices
        ]

    def _soak(self, stage: RolloutStage) -> None:
        """Keep watching every device told so far for ``soak_s``; a failed share over ``abort`` aborts."""
        end, seen = _now() + stage.soak_s, -1
        devices = tuple(self.told)
        while (left := end - _now()) > 0:
            end += self._obey()
            count = tally(self.watch.snapshot(), devices, self.sequence)
            if count.failed and len(count.failed) / len(devices) >= stage.abort:
                raise _Abort(
                    f"soak after stage {stage.name}: {len(count.failed)} of {len(devices)} devices failed (abort at {stage.abort:.0%})"
                )
            seen = self.watch.wait_change(seen, min(self.plan.control_poll_s, left))

    # -- the rollout ---------------------------------------------------------------------------
    def run(self) -> StagedResult:
        p, fwd = self.ctx.p, self.forward
        statuses = self.watch.snapshot()
        roster = set(statuses) | set(self.plan.devices)
        before = {d: statuses.get(d, {}).get("active") for d in roster}
        received_before = len(self.watch.history)
        self.sequence = ledger.claim_sequence(self.ctx.client, fwd.model, self.group, f"rollout-{fwd.version}", p.mlflow)
        rollout_id = f"{fwd.model}/{fwd.version}/{self.group}/{self.sequence}"
        assignment = assign(roster, p.fleet, fwd.version, rollout_id)
        envelope = sign(fwd.manifest(p, self.sequence), self.ctx.key)
        manifest_uri = self.ctx.store.put_manifest(fwd.model, self.group, self.sequence, envelope, current=False)
        try:
            self.ctx.client.delete_model_version_tag(fwd.model, fwd.version, ledger.rollout_tag(self.group, "control"))
        except MlflowException:
            pass  # no control tag left from an earlier rollout of this version
        self._tag(state=RUNNING, sequence=str(self.sequence), manifest=manifest_uri, rollout_id=rollout_id, outcome="", reason="")
        self.sender.clear_group_manifest()  # a device that restarts is not offered the group's older manifest
        sizes = ", ".join(f"{s.name} {len(d)}" for s, d in assignment.stages)
        self.ctx.log(
            f"staged rollout of {fwd.model} v{fwd.version} to {self.group} (sequence {self.sequence}): {len(assignment.devices)} devices "
            f"({sizes}), {len(assignment.held)} held, {len(assignment.pinned)} pinned"
        )
        result = StagedResult(RUNNING, "", self.sequence, rollout_id, [], list(assignment.held), dict(assignment.pinned))
        first_failure = None
        try:
            for index, (stage, devices) in enumerate(assignment.stages):
                report = StageReport(stage.name, stage.percent, list(devices))
                result.stages.append(report)
                if not devices:
                    continue
                self._tag(stage=stage.name)
                self._tell(devices, envelope)
                report.told_s = self._since(_now())
                try:
                    self._judge(stage, report)
                finally:
                    self._tag(**{f"stage.{stage.name}": report.summary()})
                    self.on_stage(report)
                    self.ctx.log(f"stage {stage.name}: {report.summary()}")
                if any(later for _, later in assignment.stages[index + 1 :]):
                    self._soak(stage)
            self._complete(result)
        except _Abort as abort:
            aborted_at = _now()
            first_failure = next(
                (t for t, s in self.watch.history if s.get("sequence") == self.sequence and s.get("state") in FAILED), None
            )
            self.ctx.log(f"rollout aborted: {abort.reason}; rolling back {len(self.told)} devices")
            self._roll_back(result, abort.reason, before)
            done = [
                t for t, s in self.watch.history if s.get("sequence") in result.rollback_sequences.values() and s.get("state") == UPDATED
            ]
            since = first_failure or aborted_at  # an operator's abort, or silent devices: no failed report
            result.timings["abort_s"] = round(aborted_at - since, DECIMALS)
            result.timings["rollback_s"] = round(max(done) - since, DECIMALS) if done else None
        result.timings["complete_s"] = self._since(_now())
        result.timings["first_failure_s"] = self._since(first_failure) if first_failure else None
        result.messages = {"sent": self.sender.sent, "received": len(self.watch.history) - received_before}
        return result

    def _complete(self, result: StagedResult) -> None:
        fwd, alias = self.forward, self.ctx.p.mlflow.production_alias
        try:
            self.ctx.client.set_registered_model_alias(fwd.model, alias, fwd.version)
        except MlflowException as exc:
            raise RegistryError(f"the rollout completed, but moving {fwd.model}@{alias} failed: {exc.message}") from None
        result.state, result.reason = COMPLETED, f"every stage passed; {fwd.model}@{alias} is version {fwd.version}"
        self._tag(state=COMPLETED, outcome=COMPLETED, reason=result.reason, stage="")
        self.ctx.log(f"rollout completed: {result.reason}")

    def _roll_back(self, result: StagedResult, reason: str, before: dict[str, dict | None]) -> None:
        """A new sequence per previous version, sent to every device told; wait for their reports."""
        result.state, result.reason = ABORTED, reason
        self._tag(state=ABORTED, outcome=ABORTED, reason=reason)
        by_version: dict[str, list[str]] = {}
        for device in self.told:
            was = before.get(device)
            if not was:
                result.not_rolled_back[device] = "no previous model to return to"
            elif str(was.get("version")) != self.forward.version:
                by_version.setdefault(str(was["version"]), []).append(device)
        waits: list[tuple[int, list[str]]] = []
        for version, devices in sorted(by_version.items()):
            try:
                prepared = self.previous(version)
                sequence = ledger.claim_sequence(self.ctx.client, prepared.model, self.group, f"rollback-{version}", self.ctx.p.mlflow)
                envelope = sign(prepared.manifest(self.ctx.p, sequence), self.ctx.key)
                self.ctx.store.put_manifest(prepared.model, self.group, sequence, envelope, current=False)
            except EdgeslimError as exc:
                result.not_rolled_back.update(dict.fromkeys(devices, f"rollback to v{version} not possible: {exc}"))
                continue
            result.rollback_sequences[version] = sequence
            for device in devices:
                self.sender.send(device, envelope)
            waits.append((sequence, devices))
        self.sender.flush()
        deadline, seen = _now() + self.plan.report_timeout_s, -1
        while True:
            counts = [(seq, tally(self.watch.snapshot(), devices, seq)) for seq, devices in waits]
            if all(not c.pending for _, c in counts) or _now() >= deadline:
                break
            seen = self.watch.wait_change(seen, min(self.plan.control_poll_s, deadline - _now()))
        for _, count in counts:
            result.rolled_back += count.updated
            result.not_rolled_back.update(count.failed)
            result.not_rolled_back.update(
                dict.fromkeys(count.pending, "no report on the rollback manifest (it stays retained for the device)")
            )
        sequences = ", ".join(f"v{v} as sequence {s}" for v, s in result.rollback_sequences.items())
        self._tag(
            rolled_back=f"{len(result.rolled_back)} devices back on {sequences or 'nothing'}",
            not_rolled_back=str(len(result.not_rolled_back)),
        )
        self.ctx.log(f"rollback: {len(result.rolled_back)} devices back ({sequences}), {len(result.not_rolled_back)} not confirmed")


def staged_page(
    ctx: StagedContext, forward: Prepared, previous: Callable[[str], Prepared], on_stage: Callable[[StageReport], None] | None
) -> StagedResult:
    """Run a staged rollout of ``forward`` to ``fleet.group`` (the watch starts before any device is told)."""
    fleet = ctx.p.fleet
    with StatusWatch(fleet.mqtt, fleet.group) as watch:
        sender = DeviceSender(fleet.mqtt, fleet.group)
        try:
            return StagedRollout(ctx, forward, previous, watch, sender, on_stage).run()
        finally:
            sender.close()
