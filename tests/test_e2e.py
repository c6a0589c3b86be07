"""End to end through the real CLI: real `mlflow server` (sqlite), Prefect ephemeral server, real
training, fusion, ONNX Runtime INT8, ultralytics validation. Tiny settings keep it to minutes."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from conftest import NO_PRUNE, TINY, error_line, run_cli
from mlflow import MlflowClient

from edgeslim.config import load_params
from edgeslim.data.images import preprocess
from edgeslim.evaluate.accuracy import evaluate_map
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.pyfunc_model import OUTPUT_COLUMNS

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


def test_demo_reuses_baseline_and_publishes_candidate(champion: str, published, params_file: Path, tmp_path: Path):
    client = MlflowClient(champion, champion)
    result, report = published
    assert "reusing" in result.stderr, "an unchanged dataset+params must reuse the registered champion"
    champion_before = report["aliases_after"][MODEL]["champion"]
    assert champion_before == "1", "reusing must not register a second baseline"
    history = report["details"]["source"]["convergence"]  # read from the results.csv ultralytics' trainer keeps in best.pt
    assert history["epochs"] == TINY["baseline"]["epochs"] and 0 < history["best"] <= 1, history

    names = [s["name"] for s in report["stages"]]
    # then the OpenVINO candidates of the demo's target (tests/conftest.py OPENVINO_TARGET; tests/test_openvino.py)
    assert names[:6] == ["baseline", "fused", "pruned", "finetuned", "onnx-fp32", "onnx-int8"]
    assert all(name.startswith("openvino-") for name in names[6:]), names
    for stage in report["stages"]:
        assert stage["size_bytes"] > 0 and stage["latency_ms"] > 0 and stage["macs"] > 0 and stage["params"] > 0
    baseline, fused, pruned, finetuned, fp32, int8 = report["stages"][:6]
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

    # The registered version holds every format the target ships, in the order of edgeslim.formats; the first,
    # the preferred, is the one its pyfunc loads (the `weights` artifact), the others are named by format.
    reg.connect(champion)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{EDGE}/{mv.version}", dst_path=str(tmp_path)))
    artifacts = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    formats = mv.tags["edgeslim.formats"].split(",")
    files = {name: local / entry["path"] for name, entry in artifacts.items()}
    files = {formats[0]: files.pop("weights"), **files}
    assert sorted(files) == sorted(formats) and "onnx-int8" in formats, (formats, sorted(artifacts))
    stages = {s["name"]: s for s in report["stages"]}
    for fmt, file in files.items():  # each is the very file its stage scored
        assert _size(file) == stages[fmt]["size_bytes"] == _size(Path(stages[fmt]["artifact"])), fmt
    val_image = sorted((Path(report["details"]["dataset"]["data_yaml"]).parent / "images" / "val").glob("*.jpg"))[0]
    detections = mlflow.pyfunc.load_model(f"models:/{EDGE}/{mv.version}").predict(pd.DataFrame({"image": [str(val_image)]}))
    assert list(detections.columns) == [name for name, _ in OUTPUT_COLUMNS] and set(detections["image"]) <= {str(val_image)}

    # The INT8 model, by name: its convolutions are quantized, it runs in ONNX Runtime on a real val image, and
    # scored from the registry it gives the onnx-int8 stage's mAP50-95.
    int8_file = files["onnx-int8"]
    graph = onnx.load(str(int8_file)).graph
    produced_by = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    quantized = [node for node in convs if produced_by.get(node.input[1]) == "DequantizeLinear"]
    assert len(quantized) > len(convs) / 2, f"{len(quantized)} of {len(convs)} convs have INT8 weights"
    session = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    imgsz = session.get_inputs()[0].shape[-1]  # static: the size the run scored at
    out = session.run(None, {session.get_inputs()[0].name: preprocess(val_image, imgsz)})[0]
    assert np.isfinite(out).all() and out.shape[0] == 1
    evaluate = load_params(params_file).evaluate
    scored = evaluate_map(int8_file, Path(report["details"]["dataset"]["data_yaml"]), imgsz, evaluate, tmp_path / "val")
    assert scored.map50_95 == pytest.approx(int8["map50_95"], abs=1e-6), (scored, int8["map50_95"])
    run = client.get_run(mv.tags["edgeslim.run_id"])
    assert run.data.metrics["onnx-int8.map50_95"] == int8["map50_95"]


def _size(path: Path) -> int:
    """Bytes of a file, or of the files in a folder (an OpenVINO IR), as the evaluate step counts them."""
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) if path.is_dir() else path.stat().st_size


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
