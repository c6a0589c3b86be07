"""The demo run (``published``: the session's one flow through every stage) on this machine's profile:
OpenVINO formats built, gated at their own precision, shipped fastest first; ultralytics reads the
published IR and scores what the report shows; the demo device runs the preferred format."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from edgeslim.runtime.cpu import has_bf16, machine_profile


@pytest.fixture(scope="module")
def target(published) -> dict:
    return published[1]["details"]["target"]


def test_the_demo_ships_this_machines_profile_with_its_openvino_formats_fastest_first(published, target):
    report = published[1]
    shipped = [s["format"] for s in target["shipped"]]
    assert target["profile"] == machine_profile() and "openvino-fp32" in shipped, target
    if has_bf16():  # gated like INT8: shipped, or left out on its own gate's figures
        assert "openvino-bf16" in shipped or "failed its gate" in target["left_out"]["openvino-bf16"]
    else:
        assert "openvino-bf16" not in shipped
    assert target["order"].startswith("measured here") and target["preferred"] == shipped[0]
    ratios = [s["ratio_to_profile_first"] for s in target["shipped"]]
    assert ratios == sorted(ratios)
    gates = report["gates"]
    assert gates["openvino_equivalence"]["passed"] and gates["map_ratio_openvino_fp32"]["passed"]
    fp32_rel_l2 = report["details"]["openvino"]["openvino_equivalence"]["rel_l2"]
    assert fp32_rel_l2 < 1e-4


def test_yolo_reads_the_published_ir_and_its_validator_gives_the_reported_map(published, target, champion, tmp_path):
    """The edge version holds ultralytics' IR layout: ``YOLO(dir).val()`` reads it (at FP32, the format's precision)."""
    from edgeslim.config import load_params
    from edgeslim.evaluate.accuracy import evaluate_map
    from edgeslim.registry import mlflow_registry as reg
    from edgeslim.runtime.formats import FORMATS

    report = published[1]
    pub = report["published"]
    reg.connect(champion)  # models:/ URIs resolve through MLflow's global registry URI
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{pub['model']}/{pub['version']}", dst_path=str(tmp_path)))
    ir = local / "artifacts" / "model-fp32_openvino_model"
    assert sorted(p.name for p in ir.iterdir()) == ["metadata.yaml", "model-fp32.bin", "model-fp32.xml"]
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    data = Path(report["details"]["dataset"]["data_yaml"])
    size = report["details"]["input"]["input_size"]  # the size the shipped model runs at (the source's unless searched smaller)
    got = evaluate_map(ir, data, size, p.evaluate, tmp_path / "val", fmt=FORMATS["openvino-fp32"])
    reported = next(s["map50_95"] for s in report["stages"] if s["name"] == "openvino-fp32")
    assert got.map50_95 == pytest.approx(reported, abs=1e-6)


def test_the_demo_device_runs_the_preferred_format_and_reports_its_golden_error(published, target, workspace):
    rollout = published[1]["details"]["rollout"]
    assert rollout["sha256"] == rollout["artifacts"][target["preferred"]]
    device = workspace / "fleet" / "devices" / "demo-device-1"
    state = json.loads((device / "state.json").read_text())
    assert state["active"]["sha256"] == rollout["sha256"]
    assert (device / "current").resolve().name.endswith("_openvino_model") == target["preferred"].startswith("openvino")
    statuses = [json.loads(line) for line in (device.parent / "demo-device-1.log").read_text().splitlines() if line.startswith("{")]
    active = [s for s in statuses if s["state"] == "active" and s["sequence"] == rollout["sequence"]]
    assert active and active[-1]["golden_error"] is not None and active[-1]["golden_error"] <= 0.01


def test_the_pyfunc_predicts_with_the_preferred_format_at_its_precision(published, target, champion):
    """Any MLflow client loads the version: its weights are the preferred format (an IR runs at its gated precision)."""
    import pandas as pd

    from edgeslim.registry import mlflow_registry as reg
    from edgeslim.registry.pyfunc_model import IR_PRECISION

    report = published[1]
    pub = report["published"]
    reg.connect(champion)
    model = mlflow.pyfunc.load_model(f"models:/{pub['model']}/{pub['version']}")
    assert model.unwrap_python_model()._precision == IR_PRECISION.get(target["preferred"])
    images = sorted((Path(report["details"]["dataset"]["root"]) / "images").rglob("*.*"))[:2]
    out = model.predict(pd.DataFrame({"image": [str(p) for p in images]}))
    assert list(out.columns)[:3] == ["image", "class", "conf"] and len(out) > 0
