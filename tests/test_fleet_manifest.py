"""Manifest signing and validation, without servers: what a device accepts and what it refuses."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeslim.config import ConfigError, load_params
from edgeslim.errors import FleetError, ManifestError
from edgeslim.fleet.manifest import Artifact, Manifest, utc_iso
from edgeslim.fleet.signing import PRIVATE_KEY_FILE, generate_keypair, key_id, load_private_key, load_public_keys, sign, verify

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def _manifest(**changes: object) -> Manifest:
    now = datetime.now(UTC)
    m = Manifest(
        model="m-edge",
        version="3",
        group="line-1",
        sequence=7,
        issued_at=utc_iso(now),
        expires_at=utc_iso(now + timedelta(hours=1)),
        key_id="",
        artifacts=(Artifact("model.onnx", "onnx-int8", "https://s3.example/m.onnx?sig=1", 1234, SHA),),
        lineage={"source_model": "m", "source_version": "2"},
    )
    return replace(m, **changes)


@pytest.fixture
def keypair(tmp_path: Path):
    generate_keypair(tmp_path)
    return load_private_key(tmp_path / PRIVATE_KEY_FILE), load_public_keys(tmp_path)


def test_signed_manifest_round_trips_and_names_its_key(keypair):
    private, trusted = keypair
    envelope = sign(_manifest(), private)
    m = verify(envelope, trusted)
    assert m.key_id == key_id(private.public_key()) and m.sequence == 7 and m.artifacts[0].sha256 == SHA
    assert m.pick(["onnx-fp32", "onnx-int8"]).name == "model.onnx" and m.pick(["tensorrt"]) is None


def test_any_change_to_the_signed_body_is_a_bad_signature(keypair):
    private, trusted = keypair
    data = json.loads(sign(_manifest(), private))
    for field, value in (("sequence", 99), ("expires_at", "2999-01-01T00:00:00Z")):
        forged = {**data, "manifest": {**data["manifest"], field: value}}
        with pytest.raises(ManifestError, match="bad signature"):
            verify(json.dumps(forged).encode(), trusted)
    forged = json.loads(json.dumps(data))
    forged["manifest"]["artifacts"][0]["sha256"] = "cd" * 32
    with pytest.raises(ManifestError, match="bad signature"):
        verify(json.dumps(forged).encode(), trusted)


def test_untrusted_key_and_garbage_are_refused(keypair, tmp_path: Path):
    _, trusted = keypair
    other = tmp_path / "other"
    generate_keypair(other)
    with pytest.raises(ManifestError, match="untrusted key"):
        verify(sign(_manifest(), load_private_key(other / PRIVATE_KEY_FILE)), trusted)
    for junk in (b"", b"{}", b"not json", b'{"manifest": {}, "signature": "%%%"}'):
        with pytest.raises(ManifestError):
            verify(junk, trusted)


def test_expiry_and_malformed_fields():
    m = _manifest()
    assert not m.expired(datetime.now(UTC)) and m.expired(datetime.now(UTC) + timedelta(hours=2))
    body = m.to_dict()
    for field, value, message in (
        ("sequence", 0, "sequence"),
        ("artifacts", [], "no artifact"),
        ("expires_at", body["issued_at"], "expires before"),
        ("schema", 2, "schema"),
        ("expires_at", "tomorrow", "ISO 8601"),
        ("task", "classify", "task 'classify'"),
    ):
        with pytest.raises(ManifestError, match=message):
            Manifest.from_dict({**body, field: value})
    engine = {**body["artifacts"][0], "format": "tensorrt"}
    with pytest.raises(ManifestError, match="compute_capability"):
        Manifest.from_dict({**body, "artifacts": [{**engine, "requirements": {"tensorrt": "10.3"}}]})
    ok = Manifest.from_dict({**body, "artifacts": [{**engine, "requirements": {"tensorrt": "10.3", "compute_capability": "8.7"}}]})
    assert ok.artifacts[0].requirements["compute_capability"] == "8.7"
    with pytest.raises(ManifestError, match="uri"):
        Manifest.from_dict({**body, "artifacts": [{**body["artifacts"][0], "uri": "file:///etc/passwd"}]})
    assert Manifest.from_dict({**body, "task": "segment"}).task == "segment"  # what the outputs are, for the app on the device
    assert Manifest.from_dict({k: v for k, v in body.items() if k != "task"}).task == "detect"  # a manifest from before tasks


def test_signing_key_comes_from_params_or_env_and_errors_never_show_it(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("EDGESLIM_SIGNING_KEY", raising=False)
    with pytest.raises(FleetError, match="no signing key"):
        load_private_key(None)
    (from_params, params_pub), (from_env, env_pub) = generate_keypair(tmp_path / "params"), generate_keypair(tmp_path / "env")
    ids = {name: next(iter(load_public_keys(pub))) for name, pub in (("params", params_pub), ("env", env_pub))}
    configured = load_params(REPO / "params.yaml", [f"fleet.signing_key={from_params}"]).fleet.signing_key
    assert configured == from_params and key_id(load_private_key(configured).public_key()) == ids["params"]
    monkeypatch.setenv("EDGESLIM_SIGNING_KEY", str(from_env))
    assert key_id(load_private_key(None).public_key()) == ids["env"], "fleet.signing_key null: the key at $EDGESLIM_SIGNING_KEY"
    assert key_id(load_private_key(configured).public_key()) == ids["params"], "fleet.signing_key wins over the environment"
    secret_path = tmp_path / "secret-name.key"
    secret_path.write_text("not a key")
    monkeypatch.setenv("EDGESLIM_SIGNING_KEY", str(secret_path))
    with pytest.raises(FleetError) as err:
        load_private_key(None)
    assert "secret-name" not in str(err.value)


def test_fleet_params_are_validated():
    p = load_params(REPO / "params.yaml")
    assert p.fleet.enabled is False, "paging is opt-in: the default flow must not need a broker"
    with pytest.raises(ConfigError, match="webhook.urls"):
        load_params(REPO / "params.yaml", ["fleet.channels=[mqtt, webhook]"])
    with pytest.raises(ConfigError, match="fleet.channels"):
        load_params(REPO / "params.yaml", ["fleet.channels=[pigeon]"])
    with pytest.raises(ConfigError, match="presign_ttl_s"):
        load_params(REPO / "params.yaml", ["fleet.s3.presign_ttl_s=999999999"])
