"""One update, start to finish: verify → check freshness → download → install → swap → health check.

A manifest that points at the model kept as ``previous`` (a fleet rollback does) is installed from
that local file, not downloaded again: rolling back needs no network beyond the manifest itself.

Every exit path leaves ``current`` on a model that passed its health check (or on nothing, for a
device that never had one), and sends one status saying what happened and why. A failure that a
retry could fix (network, truncated download, expiry of a stale copy) leaves the sequence open so
the manifest is tried again on its next delivery; a permanent one (tampered artifact, failed
health check) consumes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeslim.agent.config import AgentConfig
from edgeslim.agent.download import Downloaded, DownloadError, download
from edgeslim.agent.golden import GoldenSet
from edgeslim.agent.ir_archive import ArchiveError, pack
from edgeslim.agent.smoke import Runtime, SmokeResult, device_session, smoke_test
from edgeslim.agent.state import ModelStore
from edgeslim.agent.status import ACTIVE, DOWNLOADING, FAILED, ONLINE, ROLLED_BACK, VERIFIED, StatusReporter
from edgeslim.errors import ManifestError
from edgeslim.fleet.manifest import Artifact, Manifest
from edgeslim.fleet.signing import verify
from edgeslim.runtime.session import unavailable

UNCHANGED = "unchanged"
MS_DECIMALS = 3


def runnable(formats: Sequence[str]) -> list[str]:
    """The device's formats that this machine can run (openvino-bf16 needs AMX or AVX512-BF16)."""
    return [f for f in formats if unavailable(f) is None]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, MS_DECIMALS)


class Updater:
    def __init__(
        self,
        cfg: AgentConfig,
        store: ModelStore,
        trusted: dict[str, Ed25519PublicKey],
        report: StatusReporter,
        log: Callable[[str], None],
        runtime: Runtime = device_session,
    ) -> None:
        self.cfg, self.store, self.trusted, self.report, self.log, self.runtime = cfg, store, trusted, report, log, runtime

    def _active(self) -> dict | None:
        return self.store.active.brief() if self.store.active else None

    def announce(self) -> None:
        """The device's standing: on start and on every (re)connect, so the tracker's roster is fresh."""
        active = self.store.active
        self.report(ACTIVE if active else ONLINE, active.sequence if active else None, active.version if active else None, self._active())

    def _fail(self, state: str, m: Manifest | None, reason: str, **extra: object) -> str:
        self.log(f"{state}: {reason}")
        self.report(state, m.sequence if m else None, m.version if m else None, self._active(), reason, **extra)
        return state

    def offer(self, envelope: bytes) -> str:
        """Handle one delivered envelope; returns the resulting state."""
        try:
            m = verify(envelope, self.trusted)
        except ManifestError as exc:
            return self._fail(FAILED, None, f"refused: {exc}")
        if m.group != self.cfg.group:
            return self._fail(FAILED, m, f"refused: manifest is for group {m.group}, this device is in {self.cfg.group}")
        if m.sequence == self.store.sequence:
            return UNCHANGED  # the retained copy of what was already handled
        if m.sequence < self.store.sequence:
            return self._fail(FAILED, m, f"refused: replayed or older manifest (sequence {m.sequence}, device is at {self.store.sequence})")
        if m.expired(datetime.now(UTC)):
            return self._fail(FAILED, m, f"refused: manifest expired at {m.expires_at}")
        artifact = m.pick(runnable(self.cfg.knobs.formats))
        if artifact is None:
            self.store.consume(m.sequence)
            offered = ", ".join(a.format for a in m.artifacts)
            return self._fail(FAILED, m, f"no artifact this device runs (offered {offered}; runs {', '.join(self.cfg.knobs.formats)})")
        if self.store.active and self.store.active.sha256 == artifact.sha256:
            self.store.consume(m.sequence)
            self.report(ACTIVE, m.sequence, m.version, self._active(), "already running this model")
            return ACTIVE

        self.report(DOWNLOADING, m.sequence, m.version, self._active(), size=artifact.size)
        try:
            got = self._fetch(artifact)
            golden = self._golden(artifact)
        except DownloadError as exc:
            if exc.permanent:
                self.store.consume(m.sequence)
            return self._fail(FAILED, m, str(exc))
        self.report(VERIFIED, m.sequence, m.version, self._active(), resumed_from=got.resumed_from)

        suffix = "." + artifact.name.rsplit(".", 1)[-1] if "." in artifact.name else ""
        try:
            entry = self.store.install(got.path, m.model, m.version, m.sequence, artifact.sha256, suffix, artifact.files)
        except ArchiveError as exc:  # an IR whose files are not the manifest's: refused before it is ever loaded
            self.store.consume(m.sequence)
            return self._fail(FAILED, m, f"refused: {exc}")
        self.store.switch_to(entry)
        health = self._health(artifact, golden)
        latency, error = _ms(health.latency_ms), health.golden_error
        if not health.ok:
            self.store.roll_back()
            return self._fail(ROLLED_BACK, m, f"health check failed: {health.reason}", latency_ms=latency, golden_error=error)
        self.store.commit()
        self.log(f"active: {m.model} v{m.version} ({m.task}, sequence {m.sequence}), smoke test {health.latency_ms:.1f} ms")
        self.report(ACTIVE, m.sequence, m.version, self._active(), latency_ms=latency, golden_error=error, task=m.task)
        return ACTIVE

    def _fetch(self, artifact: Artifact) -> Downloaded:
        """The artifact in ``downloads/``: linked from the kept previous model when it is that file."""
        part = self.store.part_path(artifact.sha256)
        kept = self.store.previous
        if kept and kept.sha256 == artifact.sha256 and self.store.model_path(kept).exists() and not part.exists():
            if self.store.model_path(kept).is_dir():  # an IR: its deterministic tar is the same bytes again
                pack(self.store.model_path(kept), part)
            else:
                os.link(self.store.model_path(kept), part)  # the same bytes, already verified when they came
            self.log(f"installing v{kept.version} from the kept previous model (no download)")
        return download(artifact.uri, part, artifact.size, artifact.sha256, self.cfg.knobs, self.log)

    def _golden(self, artifact: Artifact) -> GoldenSet | None:
        """The artifact's golden set, downloaded and checked like the artifact, read, and deleted."""
        ref = artifact.golden
        if not ref:
            return None
        got = download(ref["uri"], self.store.part_path(ref["sha256"]), ref["size"], ref["sha256"], self.cfg.knobs, self.log)
        try:
            return GoldenSet.load(got.path)
        except (OSError, ValueError) as exc:
            raise DownloadError(f"golden set unreadable: {exc}", permanent=True) from None
        finally:
            Path(got.path).unlink(missing_ok=True)

    def _health(self, artifact: Artifact, golden: GoldenSet | None) -> SmokeResult:
        tolerance = artifact.golden.get("tolerance") if golden else None
        return smoke_test(
            self.store.current_path, artifact.format, artifact.io, self.cfg.knobs.smoke_max_latency_ms, golden, tolerance, self.runtime
        )
