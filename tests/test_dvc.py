"""`dvc repro` from a fresh clone (tiny params), a no-op second repro, `dvc exp run -S`, and the S3
remote against a real moto server: push, drop the local cache and outputs, pull them back."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import boto3
import pytest
import yaml
from dvc_support import dvc_env, fresh_clone, run

from edgeslim.dag.registry import PIPELINE

STAGES = [s.name for s in PIPELINE]
# A key only one step reads, and the last: an experiment on it reruns that stage alone (one CLI start,
# where a calibration knob reran six).
KNOB, KNOB_VALUE, KNOB_STAGE = "target.measure", "true", "gates"  # whether the gated formats are timed: the gates step's alone
SECTION, KEY = KNOB.split(".")
BUCKET = "edgeslim-dvc"  # the bucket of .dvc/config's remote URL


def downstream(stage: str) -> list[str]:
    """``stage`` and every stage that reads it, directly or through others, in pipeline order."""
    reached = {stage}
    for step in PIPELINE:
        if reached & set(step.needs):
            reached.add(step.name)
    return [s for s in STAGES if s in reached]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    clone = fresh_clone(tmp_path_factory.mktemp("clone"))
    start = time.monotonic()
    result = run(["dvc", "repro"], clone, dvc_env())
    elapsed = time.monotonic() - start
    for stage in STAGES:
        assert f"Running stage '{stage}'" in result.stdout, stage
    print(f"dvc repro from a fresh clone: {elapsed:.1f}s")
    return clone, elapsed


@pytest.mark.slow
def test_repro_from_a_fresh_clone_then_noop_then_experiment(reproduced: tuple[Path, float]):
    clone, first_s = reproduced
    env = dvc_env()
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], clone, env).stdout)
    files = next(iter(metrics.values()))["data"]
    evaluate = files["workspace/dvc/metrics/evaluate.json"]["data"]
    int8 = files["workspace/dvc/metrics/evaluate-int8.json"]["data"]
    assert {"baseline.map50_95", "fused.map50_95", "onnx-fp32.map50_95"} <= set(evaluate) and "onnx-int8.map50_95" in int8
    assert int8["onnx-int8.size_bytes"] < evaluate["onnx-fp32.size_bytes"]
    assert "gate.map_ratio.passed" in files["workspace/dvc/metrics/gates.json"]["data"]
    assert files["workspace/dvc/metrics/fuse.json"]["data"]["gate.equivalence.passed"] is True
    rows = json.loads((clone / "workspace/dvc/plots/stages.json").read_text())
    assert [r["name"] for r in rows] == ["baseline", "fused", "onnx-fp32", "onnx-int8"]
    # Each stage's mAP as a share of the baseline's; none at all when the baseline scored 0 (one epoch may).
    base = rows[0]["map50_95"]
    assert [r["map_ratio"] for r in rows] == [r["map50_95"] / base if base > 0 else None for r in rows], rows
    assert (clone / "workspace/dvc/plots/pareto.png").stat().st_size > 0
    assert (clone / "dvc.lock").exists()

    start = time.monotonic()
    again = run(["dvc", "repro"], clone, env)
    noop_s = time.monotonic() - start
    print(f"second dvc repro: {noop_s:.1f}s")
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date." in again.stdout

    # A knob only one step reads: `dvc status` names that stage alone; an experiment reruns it and its downstream.
    params = clone / "params.yaml"
    original = params.read_text()
    edited = yaml.safe_load(original)
    edited[SECTION][KEY] = yaml.safe_load(KNOB_VALUE)
    params.write_text(yaml.safe_dump(edited, sort_keys=False))
    status = run(["dvc", "status", "--json"], clone, env).stdout
    assert list(json.loads(status)) == [KNOB_STAGE] and f'"{SECTION}": "modified"' in status, status
    params.write_text(original)
    exp = run(["dvc", "exp", "run", "-S", f"{KNOB}={KNOB_VALUE}"], clone, env)
    ran = [s for s in STAGES if f"Running stage '{s}'" in exp.stdout]
    assert ran == downstream(KNOB_STAGE) == [KNOB_STAGE], exp.stdout[-2000:]
    assert f'"{KEY}": {KNOB_VALUE}' in run(["dvc", "exp", "show", "--json"], clone, env).stdout  # the experiment's params


@pytest.mark.slow
def test_s3_remote_push_and_pull_against_moto(reproduced: tuple[Path, float], s3):
    clone, _ = reproduced
    env = dvc_env()
    boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    run(["dvc", "remote", "modify", "--local", "storage", "endpointurl", s3.url], clone, env)
    run(["dvc", "push"], clone, env)
    weights = clone / "workspace/dvc/baseline/baseline.pt"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    listed = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    assert listed["KeyCount"] > 0

    shutil.rmtree(clone / ".dvc" / "cache")
    shutil.rmtree(clone / "workspace" / "dvc" / "baseline")
    run(["dvc", "pull"], clone, env)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest
    assert "up to date" in run(["dvc", "status"], clone, env).stdout
