"""The device's model store: installed files, the ``current``/``previous`` links and ``state.json``.

Layout under the state folder::

    models/<sequence>-<sha12>.onnx   complete, verified files only (renamed in from downloads/)
    models/<sequence>-<sha12>_openvino_model/   an IR, unpacked from its verified tar and renamed in whole
    downloads/<sha256>.part          a download in progress; survives a restart, so it resumes
    current  -> models/...           what the serving process loads; replaced atomically
    previous -> models/...           the model before it, kept for rollback
    state.json                       sequence, active, previous, pending (written atomically)

Why links and os.replace: a reader following ``current`` sees the old file or the new one, never a
half-written one, even if power fails mid-swap. ``state.json`` records the swap's intent
(``pending``) before ``current`` moves, so a crash between swap and health check is rolled back at
the next start.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeslim.agent import ir_archive
from edgeslim.runtime.formats import IR_SUFFIX

STATE_FILE = "state.json"
CURRENT = "current"
PREVIOUS = "previous"
MODELS = "models"
DOWNLOADS = "downloads"
SHA_PREFIX = 12


@dataclass(frozen=True)
class Installed:
    """A model file in ``models/`` and the manifest facts it came with."""

    model: str
    version: str
    sequence: int
    sha256: str
    file: str  # name inside models/

    def brief(self) -> dict:
        return {"version": self.version, "sequence": self.sequence, "sha256": self.sha256}


def _installed(data: dict | None) -> Installed | None:
    return Installed(**data) if data else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    """All writes are write-temp-then-rename; ``sequence`` only grows (replays are refused on it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in (MODELS, DOWNLOADS):
            (root / sub).mkdir(parents=True, exist_ok=True)
        data = json.loads((root / STATE_FILE).read_text()) if (root / STATE_FILE).exists() else {}
        self.sequence: int = data.get("sequence", 0)
        self.active = _installed(data.get("active"))
        self.previous = _installed(data.get("previous"))
        self.pending = _installed(data.get("pending"))

    # -- files ---------------------------------------------------------------------------------
    def part_path(self, sha256: str) -> Path:
        return self.root / DOWNLOADS / f"{sha256}.part"

    def model_path(self, entry: Installed) -> Path:
        return self.root / MODELS / entry.file

    @property
    def current_path(self) -> Path:
        return self.root / CURRENT

    def install(self, part: Path, model: str, version: str, sequence: int, sha256: str, suffix: str, files: dict[str, str]) -> Installed:
        """Move a verified download into ``models/`` (same filesystem: an atomic rename); an IR tar
        is unpacked into its folder (checked against ``files``), then the tar is deleted."""
        name = f"{sequence}-{sha256[:SHA_PREFIX]}"
        if suffix == ir_archive.SUFFIX:
            entry = Installed(model, version, sequence, sha256, f"{name}{IR_SUFFIX}")
            try:
                ir_archive.unpack(part, self.model_path(entry), files)
            finally:
                part.unlink(missing_ok=True)
        else:
            entry = Installed(model, version, sequence, sha256, f"{name}{suffix}")
            with part.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(part, self.model_path(entry))
        _fsync_dir(self.root / MODELS)
        return entry

    def _point(self, link: str, entry: Installed | None) -> None:
        path = self.root / link
        if entry is None:
            path.unlink(missing_ok=True)
            return
        tmp = self.root / f".{link}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(f"{MODELS}/{entry.file}", tmp)
        os.replace(tmp, path)
        _fsync_dir(self.root)

    def _save(self) -> None:
        data = {
            "sequence": self.sequence,
            **{k: asdict(v) if v else None for k, v in (("active", self.active), ("previous", self.previous), ("pending", self.pending))},
        }
        tmp = self.root / f".{STATE_FILE}.tmp"
        with tmp.open("w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / STATE_FILE)
        _fsync_dir(self.root)

    def _prune(self) -> None:
        """Delete model files nothing points at any more (keeps active, previous, pending)."""
        keep = {e.file for e in (self.active, self.previous, self.pending) if e}
        for path in (self.root / MODELS).iterdir():
            if path.name not in keep:
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    # -- transitions ---------------------------------------------------------------------------
    def switch_to(self, entry: Installed) -> None:
        """Point ``current`` at ``entry`` (intent recorded first); ``active`` stays until commit."""
        self.pending = entry
        self._save()
        self._point(CURRENT, entry)

    def commit(self) -> None:
        """The pending model passed its health check: it is active, the old one becomes previous."""
        if self.pending is None:
            return
        if self.active and self.active.file != self.pending.file:
            self.previous = self.active
            self._point(PREVIOUS, self.previous)
        self.active, self.pending = self.pending, None
        self.sequence = max(self.sequence, self.active.sequence)
        self._save()
        self._prune()

    def roll_back(self) -> None:
        """The pending model failed its health check: ``current`` returns to the active model."""
        if self.pending is None:
            return
        self._point(CURRENT, self.active)
        self.sequence = max(self.sequence, self.pending.sequence)  # never offered again
        self.pending = None
        self._save()
        self._prune()

    def recover(self) -> bool:
        """At start: undo a swap a crash left unconfirmed (its manifest will be offered again)."""
        if self.pending is None:
            return False
        self._point(CURRENT, self.active)
        self.pending = None
        self._save()
        self._prune()
        return True

    def consume(self, sequence: int) -> None:
        """Mark ``sequence`` as handled without installing it (same model already active)."""
        self.sequence = max(self.sequence, sequence)
        self._save()
