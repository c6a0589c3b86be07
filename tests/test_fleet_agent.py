"""The edge agent against a real broker (mosquitto), a real S3 API (moto server) and real agent
processes: two devices take a model, a late joiner gets the retained manifest, and every fault
ends with the device still serving a working model."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fleet_support import REPO, AgentProcess, Publisher, StatusLog, assert_serving, fleet_params, sha256, tiny_onnx

from edgeslim.fleet.manifest import Manifest
from edgeslim.fleet.signing import generate_keypair, load_private_key, sign

SMALL_BALLAST = 64 * 1024
BIG_BALLAST = 2 * 1024 * 1024  # big enough to be killed mid-download under the test's bandwidth cap
RATE_LIMIT_BPS = 256 * 1024


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "v1": tiny_onnx(folder / "v1" / "model.onnx", 1),
        "v2": tiny_onnx(folder / "v2" / "model.onnx", 2, SMALL_BALLAST),
        "v3": tiny_onnx(folder / "v3" / "model.onnx", 3, SMALL_BALLAST),
        "nan": tiny_onnx(folder / "nan" / "model.onnx", 4, nan=True),
        "big": tiny_onnx(folder / "big" / "model.onnx", 5, BIG_BALLAST),
    }


def test_two_agents_take_the_model_and_a_late_joiner_gets_the_retained_manifest(broker, s3, keys, models, tmp_path):
    p, overrides = fleet_params(broker, s3, keys, "pair")
    status = StatusLog(p)
    agents = [AgentProcess(d, tmp_path / d, keys, overrides) for d in ("cam-a", "cam-b")]
    try:
        for agent in agents:
            status.state(agent.device, "online")
        start = time.monotonic()
        Publisher(p).page(models["v1"], 1, "1")
        done = [status.state(a.device, "active", 1) for a in agents]
        both_active_s = max(m["_at"] for m in done) - start
        for agent in agents:
            assert_serving(agent.state_dir, sha256(models["v1"]))
        print(f"publish → both agents active: {both_active_s:.2f}s")

        late = AgentProcess("cam-late", tmp_path / "cam-late", keys, overrides)
        agents.append(late)
        assert status.state("cam-late", "active", 1)["latency_ms"] > 0
        assert_serving(late.state_dir, sha256(models["v1"]))
    finally:
        for agent in agents:
            agent.stop()
        status.close()
    assert status.state("cam-a", "offline")


@pytest.fixture(scope="module")
def device(broker, s3, keys, models, tmp_path_factory: pytest.TempPathFactory):
    """One long-running agent serving v1 (sequence 1) that the fault tests throw bad updates at."""
    p, overrides = fleet_params(broker, s3, keys, "faults")
    status = StatusLog(p)
    agent = AgentProcess("cam-f", tmp_path_factory.mktemp("faults") / "cam-f", keys, overrides)
    pub = Publisher(p)
    first = pub.page(models["v1"], 1, "1")
    status.state("cam-f", "active", 1)
    state = {
        "agent": agent,
        "status": status,
        "pub": pub,
        "p": p,
        "active": sha256(models["v1"]),
        "first": first,
        "seq": itertools.count(2),
    }
    yield state
    agent.stop()
    status.close()
    print(agent.text()[-3000:])


def _fault(device, envelope_sender, expect_state: str, reason: str, sequence: int | None) -> dict:
    status = device["status"]
    mark = len(status.messages)
    envelope_sender()
    msg = status.wait_for(lambda m: m["device"] == "cam-f" and m["state"] in ("failed", "rolled-back", "active"), after=mark)
    assert msg["state"] == expect_state and reason in (msg["reason"] or ""), msg
    assert msg["sequence"] == sequence
    assert msg["active"]["sha256"] == device["active"], "the status must say the old model is still the active one"
    assert_serving(device["agent"].state_dir, device["active"])
    return msg


def test_tampered_artifact_is_refused_by_sha256(device, models):
    pub, seq = device["pub"], next(device["seq"])
    m, envelope = pub.manifest(models["v2"], seq, "2")
    tampered = bytearray(models["v2"].read_bytes())
    tampered[-100] ^= 0xFF  # same size, one byte flipped, after the manifest was signed
    pub.store.s3.put_object(Bucket=pub.p.fleet.s3.bucket, Key=pub.object_key(m.artifacts[0].sha256), Body=bytes(tampered))
    _fault(device, lambda: pub.send(m, envelope), "failed", "sha256 mismatch", seq)


def test_bad_signature_and_unknown_key_are_refused(device, models, tmp_path):
    pub, seq = device["pub"], next(device["seq"])
    m, envelope = pub.manifest(models["v3"], seq, "3")
    forged = json.loads(envelope)
    forged["manifest"]["version"] = "99"  # body changed after signing
    _fault(device, lambda: pub.send(m, json.dumps(forged).encode()), "failed", "bad signature", None)
    generate_keypair(tmp_path / "rogue")
    rogue = sign(m, load_private_key(tmp_path / "rogue" / "edgeslim-signing.key"))
    _fault(device, lambda: pub.send(m, rogue), "failed", "untrusted key", None)


def test_replayed_older_manifest_is_refused(device):
    pub = device["pub"]
    m, envelope = device["first"]  # sequence 1, validly signed, already superseded
    assert device["agent"].proc.poll() is None
    # The device is at a higher sequence after the faults above; v1 is still what it serves.
    newer = next(device["seq"])
    status = device["status"]
    mark = len(status.messages)
    pub.send(*pub.manifest(Path(device["agent"].state_dir / "current").resolve(), newer, "1"))
    status.state("cam-f", "active", newer, after=mark)
    _fault(device, lambda: pub.send(m, envelope), "failed", f"replayed or older manifest (sequence 1, device is at {newer})", 1)


def test_expired_manifest_is_refused(device, models):
    pub, seq = device["pub"], next(device["seq"])
    m, envelope = pub.manifest(models["v3"], seq, "3", ttl_s=60, issued_ago_s=120)
    _fault(device, lambda: pub.send(m, envelope), "failed", "manifest expired", seq)


def test_truncated_download_fails_then_resumes_when_the_object_is_whole(device, models):
    pub, seq = device["pub"], next(device["seq"])
    m, envelope = pub.manifest(models["v3"], seq, "3")
    whole = models["v3"].read_bytes()
    key = pub.object_key(m.artifacts[0].sha256)
    pub.store.s3.put_object(Bucket=pub.p.fleet.s3.bucket, Key=key, Body=whole[: len(whole) // 2])
    msg = _fault(device, lambda: pub.send(m, envelope), "failed", "truncated download", seq)
    assert f"have {len(whole) // 2} of {len(whole)} bytes" in msg["reason"]

    pub.store.s3.put_object(Bucket=pub.p.fleet.s3.bucket, Key=key, Body=whole)  # the store is repaired
    status = device["status"]
    mark = len(status.messages)
    pub.send(m, envelope)  # same manifest again: its sequence was not consumed by a transient failure
    verified = status.state("cam-f", "verified", seq, after=mark)
    assert verified["resumed_from"] == len(whole) // 2
    status.state("cam-f", "active", seq, after=mark)
    device["active"] = sha256(models["v3"])
    assert_serving(device["agent"].state_dir, device["active"])


def test_model_failing_the_smoke_test_is_rolled_back(device, models):
    pub, seq = device["pub"], next(device["seq"])
    m, envelope = pub.manifest(models["nan"], seq, "4")
    msg = _fault(device, lambda: pub.send(m, envelope), "rolled-back", "NaN", seq)
    assert msg["latency_ms"] > 0
    state = json.loads((device["agent"].state_dir / "state.json").read_text())
    assert state["pending"] is None and state["sequence"] == seq, "a rolled-back manifest is never offered again"
    assert (device["agent"].state_dir / "previous").exists(), "the model before the active one is kept"


def test_agent_killed_mid_download_resumes_after_restart(broker, s3, keys, models, tmp_path):
    p, overrides = fleet_params(broker, s3, keys, "kill")
    status = StatusLog(p)
    pub = Publisher(p)
    slow = AgentProcess("cam-k", tmp_path / "cam-k", keys, [*overrides, f"fleet.agent.rate_limit_bps={RATE_LIMIT_BPS}"])
    try:
        pub.page(models["v1"], 1, "1")
        status.state("cam-k", "active", 1)
        pub.page(models["big"], 2, "2")
        status.state("cam-k", "downloading", 2)
        part = tmp_path / "cam-k" / "downloads" / f"{sha256(models['big'])}.part"
        deadline = time.monotonic() + 20
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        slow.kill()  # SIGKILL: no clean shutdown, mid-download
        got = part.stat().st_size
        assert 0 < got < models["big"].stat().st_size
        assert_serving(tmp_path / "cam-k", sha256(models["v1"]))

        mark = len(status.messages)
        restarted = AgentProcess("cam-k", tmp_path / "cam-k", keys, overrides)
        try:
            assert status.state("cam-k", "verified", 2, after=mark)["resumed_from"] >= got
            status.state("cam-k", "active", 2, after=mark)
            assert_serving(tmp_path / "cam-k", sha256(models["big"]))
        finally:
            restarted.stop()
    finally:
        slow.stop()
        status.close()


def test_agent_runtime_loads_no_torch_or_prefect(s3, keys, models, tmp_path, broker):
    """A real --poll-url --once run (download, verify, ONNX Runtime smoke test, swap) in a fresh interpreter."""
    p, overrides = fleet_params(broker, s3, keys, "poll")
    pub = Publisher(p)
    m, envelope = pub.manifest(models["v1"], 1, "1")
    pub.store.put_manifest(pub.model, "poll", 1, envelope)
    url = pub.store.current_manifest_url(pub.model, "poll")
    argv = [
        "agent",
        "--params",
        str(REPO / "params.yaml"),
        *(a for o in overrides for a in ("-S", o)),
        "--device",
        "cam-p",
        "--state",
        str(tmp_path / "cam-p"),
        "--trusted-keys",
        str(keys),
        "--no-mqtt",
        "--poll-url",
        url,
        "--once",
    ]
    code = (
        "import json, sys; from edgeslim.cli import main; rc = main(json.loads(sys.argv[1])); "
        "print(json.dumps({'rc': rc, 'heavy': [m for m in ('torch', 'prefect', 'ultralytics', 'mlflow', 'boto3') if m in sys.modules]}))"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "heavy": []}, out.stderr[-2000:]
    assert_serving(tmp_path / "cam-p", sha256(models["v1"]))
    assert not (tmp_path / "workspace").exists(), "the agent needs no workspace"


def test_agent_installs_an_openvino_ir_and_refuses_one_whose_bin_does_not_match(device, models, tmp_path):
    """An IR travels as a tar with each file's sha256 in the manifest: the device unpacks it, runs it at
    the format's precision, swaps to the folder; a .bin that is not the manifest's is refused before it
    is loaded, and the device keeps its model."""
    from fleet_support import tiny_ir

    pub, status, seq = device["pub"], device["status"], next(device["seq"])
    ir = tiny_ir(tiny_onnx(tmp_path / "ir" / "model.onnx", 7))
    mark = len(status.messages)
    pub.page(ir, seq, "7")
    status.state("cam-f", "active", seq, after=mark)
    device["active"] = sha256(ir)
    current = (device["agent"].state_dir / "current").resolve()
    assert (
        current.is_dir()
        and current.name.endswith("_openvino_model")
        and sorted(p.suffix for p in current.iterdir()) == [".bin", ".xml", ".yaml"]
    )
    assert_serving(device["agent"].state_dir, device["active"])

    broken = tiny_ir(tiny_onnx(tmp_path / "broken" / "model.onnx", 8))
    seq = next(device["seq"])
    m, envelope = pub.manifest(broken, seq, "8")
    other = tiny_ir(tiny_onnx(tmp_path / "other" / "model.onnx", 9))
    (broken / "model.bin").write_bytes((other / "model.bin").read_bytes()[::-1])  # same size, other weights
    m2, _ = pub.manifest(broken, seq, "8")  # signed over the tar that is served: its sha256 matches
    forged = Manifest(**{**m2.to_dict(), "artifacts": (replace(m2.artifacts[0], files=m.artifacts[0].files),)})
    _fault(device, lambda: pub.send(forged, sign(forged, pub.key)), "failed", "IR files do not match the manifest: model.bin", seq)
