"""End to end through the real CLI: real `mlflow server` (sqlite), Prefect ephemeral server, real
training, fusion, ONNX Runtime INT8, ultralytics validation. Tiny settings keep it to minutes."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
from conftest import NO_PRUNE, error_line, run_cli
from mlflow import MlflowClient

from edgeslim.registry import mlflow_registry as reg

MODEL = "pcb-detector"
EDGE = "pcb-detector-edge"


def registry_snapshot(client: MlflowClient) -> dict:
    """Every version and alias of the source and edge models (what a failed run must not change)."""
    snap = {}
    for name in (MODEL, EDGE):
        try:
            rm = client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            snap[name] = None
            continue
        versions = sorted((v.version, v.run_id) for v in client.search_model_versions(f"name = '{name}'"))
        snap[name] = {"aliases": dict(rm.aliases), "versions": versions}
    return snap


def _cli(server: str, params: Path, *args: str):
    return run_cli(*args, "--params", str(params), env_extra={"MLFLOW_TRACKING_URI": server})


def test_demo_reuses_baseline_and_publishes_candidate(champion: str, published, tmp_path: Path):
    client = MlflowClient(champion, champion)
    result, report = published
    assert "reusing" in result.stderr, "an unchanged dataset+params must reuse the registered champion"
    champion_before = report["aliases_after"][MODEL]["champion"]
    assert champion_before == "1", "reusing must not register a second baseline"

    names = [s["name"] for s in report["stages"]]
    assert names == ["baseline", "fused", "pruned", "finetuned", "onnx-fp32", "onnx-int8"]
    for stage in report["stages"]:
        assert stage["size_bytes"] > 0 and stage["latency_ms"] > 0 and stage["macs"] > 0 and stage["params"] > 0
    baseline, fused, pruned, finetuned, fp32, int8 = report["stages"]
    assert abs(fused["map50_95"] - baseline["map50_95"]) < 0.01, "fusion must not change accuracy"
    # Pruning: ≥ 40% fewer MACs, kept through finetuning, export and quantization; finetuning recovers mAP.
    assert finetuned["macs"] <= 0.6 * baseline["macs"] and finetuned["params"] < baseline["params"]
    assert finetuned["macs"] == fp32["macs"] == int8["macs"]
    assert 0 <= pruned["macs"] - finetuned["macs"] < 0.01 * pruned["macs"], "only the folded BatchNorms may differ"
    assert report["details"]["pruning"]["macs_reduction"] >= 0.4
    assert finetuned["map50_95"] > pruned["map50_95"]
    assert abs(fp32["map50_95"] - finetuned["map50_95"]) < 0.01, "ONNX FP32 must match the model it was exported from"
    for gate in ("equivalence", "equivalence_pruned", "map_ratio"):
        assert report["gates"][gate]["passed"], gate
    assert report["gates"]["map_ratio"]["value"] == int8["map50_95"] / baseline["map50_95"]
    assert int8["size_bytes"] < fp32["size_bytes"]

    published = report["published"]
    assert published["model"] == EDGE and published["alias"] == "candidate"
    assert report["aliases_after"][EDGE]["candidate"] == published["version"]
    mv = client.get_model_version(EDGE, published["version"])
    assert mv.tags["edgeslim.source_model"] == MODEL and mv.tags["edgeslim.source_version"] == champion_before
    assert mv.tags["edgeslim.gate.map_ratio.passed"] == "True"
    assert len(mv.tags["edgeslim.dataset_sha256"]) == 64 and len(mv.tags["edgeslim.calibration_sha256"]) == 64

    # The registered artifact is the INT8 model and runs in ONNX Runtime straight from the registry.
    reg.connect(champion)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{EDGE}/{mv.version}", dst_path=str(tmp_path)))
    onnx_file = next((local / "artifacts").glob("*.onnx"))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    out = session.run(None, {session.get_inputs()[0].name: np.zeros(shape, np.float32)})[0]
    assert np.isfinite(out).all()
    run = client.get_run(mv.tags["edgeslim.run_id"])
    assert run.data.metrics["onnx-int8.map50_95"] == int8["map50_95"]


def test_failed_map_gate_publishes_nothing(champion: str, params_file: Path):
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    result = _cli(champion, params_file, "compress", "-S", "gates.min_map_ratio=10", *NO_PRUNE)
    assert result.returncode == 3, result.stderr[-4000:]
    last = error_line(result)
    # x86-avx2 ships FP32 and INT8: each is gated on its own mAP, and the error names both
    assert last.startswith("edgeslim: error: gate map_ratio_fp32 failed") and "gate map_ratio failed" in last and "needs >= 10" in last
    assert registry_snapshot(client) == before


def test_pruning_too_aggressive_to_recover_fails_the_gate_cleanly(champion: str, params_file: Path):
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    result = _cli(
        champion,
        params_file,
        "compress",
        "-S",
        "prune.target_macs_reduction=0.9",
        "-S",
        "prune.ratio_shallow=0.9",
        "-S",
        "prune.ratio_deep=0.95",
        "-S",
        "prune.round_to=1",
        "-S",
        "prune.finetune.epochs=1",
    )
    assert result.returncode == 3, result.stderr[-4000:]
    last = error_line(result)
    assert last.startswith("edgeslim: error: gate map_ratio") and "gate map_ratio failed" in last, last
    report = json.loads(Path(last.rsplit("report: ", 1)[1].strip()).read_text())
    assert report["details"]["pruning"]["macs_reduction"] >= 0.9 and report["published"] is None
    assert registry_snapshot(client) == before


def test_failed_equivalence_gate_stops_before_quantization(champion: str, params_file: Path):
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    result = _cli(champion, params_file, "compress", "-S", "fuse.max_rel_l2=0")
    assert result.returncode == 3
    last = error_line(result)
    assert "gate equivalence failed" in last
    report_path = last.rsplit("report: ", 1)[1].strip()
    report = json.loads(Path(report_path).read_text())
    assert report["stages"] == [] and report["published"] is None
    assert report["gates"]["equivalence"]["value"] > 0
    assert not (Path(report_path).parent / "quantize").exists(), "nothing after the failed gate ran"
    assert registry_snapshot(client) == before
