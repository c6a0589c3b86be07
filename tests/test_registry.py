"""MLflow as the system of record, against a real `mlflow server` (sqlite): nested runs, lineage,
idempotent and concurrent publishing, the publish lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
from conftest import NO_PRUNE, REPO, run_cli
from mlflow import MlflowClient

from edgeslim.dag.registry import COMPRESS, DATASET
from edgeslim.errors import RegistryError
from edgeslim.lineage import PUBLISH_KEY_TAG, RUN_ID_TAG
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.lock import LOCK_SUFFIX, registry_lock

EDGE = "pcb-detector-edge"
STEPS = {s.name for s in (DATASET, *COMPRESS)}  # one nested run per registry step that ran


def _edge_versions(client: MlflowClient) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{EDGE}'"))


def test_parent_and_nested_runs_carry_params_metrics_timings_artifacts(champion, published):
    _, report = published
    client = MlflowClient(champion, champion)
    mv = client.get_model_version(EDGE, report["published"]["version"])
    parent = client.get_run(mv.tags[RUN_ID_TAG])
    assert parent.info.status == "FINISHED"
    int8 = next(s for s in report["stages"] if s["name"] == "onnx-int8")
    assert parent.data.metrics["onnx-int8.map50_95"] == int8["map50_95"]
    assert parent.data.params["gates.min_map_ratio"] == "0.95"
    assert len(parent.data.tags["prefect.flow_run_id"]) == 36
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"pareto.png", "report.json", "report.md"}
    # MLflow 3's UI opens these as model training (runs table), not as a GenAI experiment.
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert report["details"]["mlflow_run_url"].endswith(f"/runs/{parent.info.run_id}?workflowType=machine_learning")

    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_name = {c.info.run_name: c for c in children}
    skipped = set(report["details"].get("skipped_steps", {}))
    assert "control" in skipped and set(by_name) == STEPS - skipped  # a step the params switch off records no run
    for child in children:
        assert child.data.metrics["duration_s"] >= 0 and child.info.status == "FINISHED"
    assert by_name["quantize"].data.params["quantize.per_channel"] == "True"
    assert by_name["quantize"].data.metrics["quantized_tensors"] > 0
    assert by_name["fuse"].data.metrics["rel_l2"] == report["details"]["equivalence"]["rel_l2"]
    assert [a.path for a in client.list_artifacts(by_name["quantize"].info.run_id)] == ["model-int8.onnx"]
    assert [a.path for a in client.list_artifacts(by_name["calibrate"].info.run_id)] == [
        "calibration_coverage.png",
        "calibration_manifest.json",
    ]
    assert by_name["calibrate"].data.metrics["selected_strata_covered"] == by_name["calibrate"].data.metrics["strata_total"]
    assert by_name["prune"].data.params["prune.importance"] == "bn_scale"
    assert by_name["prune"].data.metrics["macs_reduction"] >= 0.4
    assert sorted(a.path for a in client.list_artifacts(by_name["prune"].info.run_id)) == ["channels.png", "pruned.pt"]
    assert sorted(a.path for a in client.list_artifacts(by_name["finetune"].info.run_id)) == ["finetuned.pt", "fused.pt"]
    assert by_name["finetune"].data.params["prune.finetune.epochs"] == "12" and "prune.importance" not in by_name["finetune"].data.params


def test_edge_version_lineage_signature_and_input_example(champion, published):
    _, report = published
    client = MlflowClient(champion, champion)
    mv = client.get_model_version(EDGE, report["published"]["version"])
    for key in ("source_model", "source_version", "source_run_id", "git_sha", "params_hash", "dataset_sha256", "calibration_sha256"):
        assert mv.tags[f"edgeslim.{key}"], key
    assert mv.tags["edgeslim.source_run_id"] == client.get_model_version("pcb-detector", "1").run_id
    for gate, figures in report["gates"].items():
        assert float(mv.tags[f"edgeslim.gate.{gate}.value"]) == pytest.approx(figures["value"], rel=1e-5)
        assert mv.tags[f"edgeslim.gate.{gate}.threshold"] == str(figures["threshold"])
    assert len(mv.tags[PUBLISH_KEY_TAG]) == 24
    reg.connect(champion)
    info = mlflow.models.get_model_info(f"models:/{EDGE}/{mv.version}")
    assert [c.name for c in info.signature.inputs.inputs] == ["image"]
    assert info.saved_input_example_info is not None


def test_concurrent_identical_runs_publish_once_a_rerun_reuses_it_and_force_publishes_again(champion, published, params_file):
    """Two flow runs for one model at once: both compute, the lock serializes publishing, one version
    results. The same run again reports that version and recomputes nothing; ``--force`` publishes anew."""
    client = MlflowClient(champion, champion)
    before = _edge_versions(client)
    env = {"MLFLOW_TRACKING_URI": champion}
    knobs = ("--params", str(params_file), "-S", "calibration.seed=7", *NO_PRUNE)
    cmd = [sys.executable, "-m", "edgeslim.cli", "compress", *knobs]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    after = _edge_versions(client)
    assert after == before + [max(before) + 1], "identical concurrent runs must not duplicate a version"
    versions = {json.loads(Path(o[0].strip().splitlines()[-1]).read_text())["published"]["version"] for o in outs}
    assert versions == {str(max(after))}
    assert client.get_model_version_by_alias(EDGE, "candidate").version == str(max(after))
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_registered_model(f"{EDGE}{LOCK_SUFFIX}")

    again = run_cli("compress", *knobs, env_extra=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already published" in again.stderr
    reused = json.loads(Path(again.stdout.strip().splitlines()[-1]).read_text())
    assert reused["published"]["reused"] and reused["published"]["version"] == str(max(after))
    assert _edge_versions(client) == after

    forced = run_cli("compress", "--force", *knobs, env_extra=env)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert _edge_versions(client) == after + [max(after) + 1]
    assert client.get_model_version_by_alias(EDGE, "candidate").version == str(max(after) + 1)
    keys = {client.get_model_version(EDGE, str(v)).tags[PUBLISH_KEY_TAG] for v in (max(after), max(after) + 1)}
    assert len(keys) == 1, "forced: the same source, params and data, published again"


def test_publish_lock_excludes_then_breaks_when_stale(mlflow_server):
    client = MlflowClient(mlflow_server, mlflow_server)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with registry_lock(client, "lock-test", "holder-a", ttl_s=60, timeout_s=5, poll_s=0.1):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    with pytest.raises(RegistryError, match="still held"):
        with registry_lock(client, "lock-test", "holder-b", ttl_s=60, timeout_s=0.5, poll_s=0.1):
            pass
    release.set()
    holder.join()
    with registry_lock(client, "lock-test", "holder-b", ttl_s=60, timeout_s=1, poll_s=0.1):
        pass  # free again after release

    # A crashed holder leaves its lock behind; past the TTL the next run breaks it.
    client.create_registered_model(f"lock-test{LOCK_SUFFIX}", tags={"edgeslim.lock_since": f"{time.time() - 120:.3f}"})
    with registry_lock(client, "lock-test", "holder-c", ttl_s=60, timeout_s=1, poll_s=0.1):
        held = client.get_registered_model(f"lock-test{LOCK_SUFFIX}")
        assert held.tags["edgeslim.lock_holder"] == "holder-c"


# One waiter of test_publish_lock_holds_under_contention: takes and releases the lock ``rounds`` times;
# inside it, a file only one process can create (an overlap) and a print of any error.
_CONTENDER = """
import os, sys, time
from mlflow import MlflowClient
from edgeslim.registry.lock import registry_lock
uri, holder, marker, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = MlflowClient(uri, uri)
for _ in range(rounds):
    try:
        with registry_lock(client, "contended", holder, ttl_s=60, timeout_s=120, poll_s=0.02):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                print("overlap", flush=True)
            time.sleep(0.01)
            os.remove(marker) if os.path.exists(marker) else None
    except Exception as exc:
        print("error", type(exc).__name__, exc, flush=True)
"""


def test_publish_lock_holds_under_contention(mlflow_server, tmp_path: Path):
    """Three processes taking and releasing one lock as fast as they can: never two inside at once, and
    none fails. The server creates a registered model before it tags it, and its create can race a
    release; a lock caught untagged is not stale, and a create that lost that race waits like any other."""
    script = tmp_path / "contend.py"
    script.write_text(_CONTENDER)
    marker = tmp_path / "held"
    procs = [
        subprocess.Popen([sys.executable, str(script), mlflow_server, f"holder-{i}", str(marker), "25"], stdout=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    said = [line for p in procs for line in p.communicate(timeout=300)[0].splitlines()]
    assert all(p.returncode == 0 for p in procs) and not said, said[:5]
