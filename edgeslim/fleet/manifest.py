"""The update manifest: what a device may install, from where, until when, in which order.

Why a manifest and not "download model X": a device must be able to decide on its own, offline,
whether an update is authentic (signature), fresh (expiry), newer than what it runs (sequence,
monotonic per model and device group, so replays and downgrades are refused) and intact (size and
sha256 per artifact) before it touches its active model. The signed bytes are a canonical JSON
encoding, so publisher and device agree on them without sharing code versions.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from edgeslim.data.tasks import TASKS
from edgeslim.errors import ManifestError
from edgeslim.runtime.formats import FORMATS, OPENVINO

SCHEMA = 1
# A TensorRT engine runs only where it was built: the manifest says for which TensorRT and GPU.
TENSORRT_REQUIREMENTS = ("tensorrt", "compute_capability")
GOLDEN_KEYS = ("uri", "size", "sha256", "tolerance")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def canonical_json(data: dict[str, Any]) -> bytes:
    """The one byte encoding that is signed and verified (sorted keys, no whitespace, ASCII)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ManifestError(f"manifest {name} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ManifestError(f"manifest {name} {text!r} has no time zone")
    return moment


@dataclass(frozen=True)
class Artifact:
    """One file a device may install: where to get it and how to know it arrived intact."""

    name: str
    format: str
    uri: str
    size: int
    sha256: str
    io: dict[str, dict[str, list[int | None]]] = field(default_factory=dict)  # inputs/outputs → shape
    requirements: dict[str, str] = field(default_factory=dict)
    # The on-device equivalence check: {uri, size, sha256} of an .npz of input images and the outputs
    # the pipeline's ONNX Runtime computed for this file, and the tolerance the device must meet.
    golden: dict[str, Any] = field(default_factory=dict)
    # An OpenVINO IR travels as one tar (edgeslim.agent.ir_archive): name → sha256 of each file in it.
    files: dict[str, str] = field(default_factory=dict)
    # Why this artifact is where it is in the list: {"latency_ms": ..., "by": "measured" | "profile"}.
    rank: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> "Artifact":
        if not isinstance(data, dict):
            raise ManifestError("manifest artifact is not an object")
        try:
            art = cls(**data)
        except TypeError as exc:
            raise ManifestError(f"manifest artifact has wrong fields: {exc}") from None
        if art.format not in FORMATS:
            raise ManifestError(f"artifact {art.name}: unknown format {art.format!r} (known: {', '.join(FORMATS)})")
        if not isinstance(art.size, int) or art.size <= 0:
            raise ManifestError(f"artifact {art.name}: size must be a positive integer")
        if not isinstance(art.sha256, str) or not _SHA256.match(art.sha256):
            raise ManifestError(f"artifact {art.name}: sha256 must be 64 lowercase hex digits")
        if not isinstance(art.uri, str) or not art.uri.startswith(("https://", "http://")):
            raise ManifestError(f"artifact {art.name}: uri must be an http(s) URL")
        missing = [k for k in TENSORRT_REQUIREMENTS if k not in art.requirements] if art.format == "tensorrt" else []
        if missing:
            raise ManifestError(f"artifact {art.name}: a tensorrt engine needs requirements {', '.join(missing)}")
        if art.golden:
            _check_golden(art.name, art.golden)
        if FORMATS[art.format].runtime == OPENVINO and not art.files:
            raise ManifestError(f"artifact {art.name}: an OpenVINO IR needs its files (name → sha256)")
        if not all(isinstance(v, str) and _SHA256.match(v) for v in art.files.values()):
            raise ManifestError(f"artifact {art.name}: every file sha256 must be 64 lowercase hex digits")
        return art


def _check_golden(name: str, golden: Any) -> None:
    if not isinstance(golden, dict) or set(golden) != set(GOLDEN_KEYS):
        raise ManifestError(f"artifact {name}: golden must have exactly {', '.join(GOLDEN_KEYS)}")
    if not isinstance(golden["uri"], str) or not golden["uri"].startswith(("https://", "http://")):
        raise ManifestError(f"artifact {name}: golden uri must be an http(s) URL")
    if not isinstance(golden["size"], int) or golden["size"] <= 0:
        raise ManifestError(f"artifact {name}: golden size must be a positive integer")
    if not isinstance(golden["sha256"], str) or not _SHA256.match(golden["sha256"]):
        raise ManifestError(f"artifact {name}: golden sha256 must be 64 lowercase hex digits")
    if not isinstance(golden["tolerance"], (int, float)) or golden["tolerance"] <= 0:
        raise ManifestError(f"artifact {name}: golden tolerance must be a positive number")


@dataclass(frozen=True)
class Manifest:
    """A signed promise: version ``version`` of ``model`` is what group ``group`` should run now."""

    model: str
    version: str
    group: str
    sequence: int
    issued_at: str
    expires_at: str
    key_id: str
    artifacts: tuple[Artifact, ...]
    lineage: dict[str, str] = field(default_factory=dict)
    task: str = "detect"  # what the outputs are (detect, segment, pose, obb): an app reads masks or keypoints by it
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["artifacts"] = [asdict(a) for a in self.artifacts]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ManifestError(f"manifest schema {data.get('schema')!r} is not {SCHEMA}")
        fields = dict(data)
        fields["artifacts"] = tuple(Artifact.from_dict(a) for a in fields.get("artifacts") or [])
        try:
            manifest = cls(**fields)
        except TypeError as exc:
            raise ManifestError(f"manifest has wrong fields: {exc}") from None
        if not isinstance(manifest.sequence, int) or manifest.sequence <= 0:
            raise ManifestError("manifest sequence must be a positive integer")
        if not manifest.artifacts:
            raise ManifestError("manifest lists no artifact")
        if manifest.task not in TASKS:
            raise ManifestError(f"manifest task {manifest.task!r} is none of {', '.join(TASKS)}")
        if parse_time(manifest.expires_at, "expires_at") <= parse_time(manifest.issued_at, "issued_at"):
            raise ManifestError("manifest expires before it was issued")
        return manifest

    def expired(self, now: datetime) -> bool:
        return now >= parse_time(self.expires_at, "expires_at")

    def pick(self, formats: list[str]) -> Artifact | None:
        """The first artifact, in the manifest's order (preferred first: the fastest measured on the
        target's CPU class, or the profile's order), whose format this device runs."""
        return next((art for art in self.artifacts if art.format in formats), None)
