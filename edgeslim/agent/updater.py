"""One update, start to finish: verify → check freshness → download → install → swap → health check.

Every exit path leaves ``current`` on a model that passed its health check (or on nothing, for a
device that never had one), and sends one status saying what happened and why. A failure that a
retry could fix (network, truncated download, expiry of a stale copy) leaves the sequence open so
the manifest is tried again on its next delivery; a permanent one (tampered artifact, failed
health check) consumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeslim.agent.config import AgentConfig
from edgeslim.agent.download import DownloadError, download
from edgeslim.agent.smoke import smoke_test
from edgeslim.agent.state import ModelStore
from edgeslim.agent.status import ACTIVE, DOWNLOADING, FAILED, ONLINE, ROLLED_BACK, VERIFIED, StatusReporter
from edgeslim.errors import ManifestError
from edgeslim.fleet.manifest import Manifest
from edgeslim.fleet.signing import verify

UNCHANGED = "unchanged"
MS_DECIMALS = 3


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, MS_DECIMALS)


class Updater:
    def __init__(
        self, cfg: AgentConfig, store: ModelStore, trusted: dict[str, Ed25519PublicKey], report: StatusReporter, log: Callable[[str], None]
    ) -> None:
        self.cfg, self.store, self.trusted, self.report, self.log = cfg, store, trusted, report, log

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
        artifact = m.pick(list(self.cfg.knobs.formats))
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
            got = download(artifact.uri, self.store.part_path(artifact.sha256), artifact.size, artifact.sha256, self.cfg.knobs, self.log)
        except DownloadError as exc:
            if exc.permanent:
                self.store.consume(m.sequence)
            return self._fail(FAILED, m, str(exc))
        self.report(VERIFIED, m.sequence, m.version, self._active(), resumed_from=got.resumed_from)

        suffix = "." + artifact.name.rsplit(".", 1)[-1] if "." in artifact.name else ""
        entry = self.store.install(got.path, m.model, m.version, m.sequence, artifact.sha256, suffix)
        self.store.switch_to(entry)
        health = smoke_test(self.store.current_path, artifact.io, self.cfg.knobs.smoke_max_latency_ms)
        if not health.ok:
            self.store.roll_back()
            return self._fail(ROLLED_BACK, m, f"health check failed: {health.reason}", latency_ms=_ms(health.latency_ms))
        self.store.commit()
        self.log(f"active: {m.model} v{m.version} (sequence {m.sequence}), smoke test {health.latency_ms:.1f} ms")
        self.report(ACTIVE, m.sequence, m.version, self._active(), latency_ms=_ms(health.latency_ms))
        return ACTIVE
