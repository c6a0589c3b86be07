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

from dvc_support import dvc_env, fresh_clone, run
from fleet_support import s3  # noqa: F401 (fixture)

STAGES = ["dataset", "baseline", "fuse", "prune", "finetune", "calibrate", "quantize", "evaluate"]
BUCKET = "edgeslim-dvc"  # the bucket of .dvc/config's remote URL


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
    assert {"baseline.map50_95", "fused.map50_95", "onnx-fp32.map50_95", "onnx-int8.map50_95", "gate.passed"} <= set(evaluate)
    assert evaluate["onnx-int8.size_bytes"] < evaluate["onnx-fp32.size_bytes"]
    assert files["workspace/dvc/metrics/fuse.json"]["data"]["passed"] is True
    rows = json.loads((clone / "workspace/dvc/plots/stages.json").read_text())
    assert [r["stage"] for r in rows] == ["baseline", "fused", "onnx-fp32", "onnx-int8"]
    assert (clone / "workspace/dvc/plots/pareto.png").stat().st_size > 0
    assert (clone / "dvc.lock").exists()

    start = time.monotonic()
    again = run(["dvc", "repro"], clone, env)
    noop_s = time.monotonic() - start
    print(f"second dvc repro: {noop_s:.1f}s")
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date." in again.stdout

    exp = run(["dvc", "exp", "run", "-S", "evaluate.latency_runs=3"], clone, env)
    ran = [s for s in STAGES if f"Running stage '{s}'" in exp.stdout]
    assert ran == ["evaluate"], exp.stdout[-2000:]
    assert '"latency_runs": 3' in run(["dvc", "exp", "show", "--json"], clone, env).stdout  # the experiment's params


@pytest.mark.slow
def test_s3_remote_push_and_pull_against_moto(reproduced: tuple[Path, float], s3):  # noqa: F811
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
