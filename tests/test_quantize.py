"""INT8 on the session's trained tiny baseline: the gate held by itself, the accuracy-aware fallback
recovering a broken quantization, the budget running out, and the flow failing cleanly when it does.

The model is the `champion` fixture's (trained once per session); it is fused, exported and
calibrated exactly as the flow does, and every mAP comes from the flow's validator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import NO_PRUNE, error_line, run_cli
from mlflow import MlflowClient
from test_e2e import registry_snapshot

from edgeslim import workspace
from edgeslim.config import Params, QuantizeParams, load_params
from edgeslim.dag.layout import Layout
from edgeslim.dag.registry import DATASET, through
from edgeslim.dag.run import run_steps
from edgeslim.dag.source import bind_source, source_outcome
from edgeslim.dag.step import SOURCE
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.steps.evaluate import BASELINE, ONNX_FP32, Scorer, stage_map
from edgeslim.data.tasks import scoring
from edgeslim.quantize.fallback import quantize_with_fallback
from edgeslim.quantize.ort_int8 import OrtQuantizer
from edgeslim.quantize.sensitivity import DECODE_SUFFIX
from edgeslim.quantize.tensorrt import unavailable
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.sources import pull
from edgeslim.report import Report

MAX_SIZE_RATIO = 0.30  # the bar: INT8 file at most 30% of the FP32 ONNX file
# Everything ONNX Runtime can quantize, decode included: the failure the head-decode rule prevents.
DECODE_QUANTIZED = ["quantize.op_types=[]", "quantize.keep_float=none"]


@dataclass(frozen=True)
class Trained:
    p: Params
    fp32: Path
    images: list[Path]
    score: Callable[[Path], float]
    target: float  # the flow's gate: min_map_ratio x the baseline's mAP50-95
    fp32_map: float
    work: Path

    def quantize(self, qp: QuantizeParams, name: str, target: float | None = None, ceiling: float | None = None):
        target = self.target if target is None else target
        out = self.work / name / "model-int8.onnx"
        out.parent.mkdir()
        quantizer = OrtQuantizer(self.fp32, self.images, self.p.compress.imgsz, qp, out.parent / "work")
        return quantize_with_fallback(
            quantizer, out, self.fp32.stat().st_size, qp.fallback, self.score, target, self.fp32_map if ceiling is None else ceiling
        )


@pytest.fixture(scope="module")
def trained(champion: str, params_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The registry's steps up to evaluation on the unpruned champion, as the flow runs them."""
    p = load_params(params_file, ["prune.enabled=false"])
    work = tmp_path_factory.mktemp("quantize")
    weights = pull(reg.connect(champion), reg.ModelRef(p.model_name, p.mlflow.source_alias), work / "source").weights
    p, facts = bind_source(p, weights)
    source = {SOURCE: source_outcome(weights, facts, step=SOURCE)}
    outcomes = run_steps((DATASET, *through("evaluate")), p, Layout(work, datasets=workspace.datasets_dir(p)), source)
    scored = outcomes["evaluate"]
    score = Scorer(
        dataset_info(outcomes[DATASET.name]), p.compress.imgsz, p.evaluate, work / "val", scoring(facts["task"], p.gates.metric)
    ).map50_95
    images = calibration_images(outcomes["calibrate"].artifact("manifest"))
    target = p.gates.min_map_ratio * stage_map(scored, BASELINE)
    return Trained(p, outcomes["export"].artifact("fp32"), images, score, target, stage_map(scored, ONNX_FP32), work)


def _quantize_params(params_file: Path, overrides: list[str]) -> QuantizeParams:
    return load_params(params_file, overrides).quantize


def test_int8_meets_the_gate_by_itself_and_is_under_30_percent(trained: Trained):
    report = trained.quantize(trained.p.quantize, "default")
    assert len(report.steps) == 1 and report.steps[0].passed, report.as_dict()
    assert not report.float_nodes and report.outcome.startswith("INT8 meets the target with nothing kept float")
    assert report.size_ratio <= MAX_SIZE_RATIO, f"INT8 file is {report.size_ratio:.3f} of FP32"


def test_fallback_recovers_a_quantized_decode_and_names_the_float_layers(trained: Trained, params_file: Path):
    qp = _quantize_params(params_file, [*DECODE_QUANTIZED, "quantize.fallback.step=1", "quantize.fallback.max_float_layers=3"])
    report = trained.quantize(qp, "decode-quantized")
    first, last = report.steps[0], report.steps[-1]
    assert not first.passed and first.map50_95 < trained.target, "quantizing the decode must break the gate"
    assert last.passed and 1 < len(report.steps) <= 4, report.as_dict()
    assert report.ranking[0].layer.endswith(DECODE_SUFFIX), "the decode is the most damaging layer"
    assert any(layer.endswith(DECODE_SUFFIX) for layer in last.float_layers) and report.float_nodes

    summary = Report("m", "1", details={"quantization": report.as_dict()}).markdown()
    assert f"`{last.float_layers[0]}`" in summary and f"{first.map50_95:.4f} misses" in summary and f"{last.map50_95:.4f} meets" in summary


def test_fallback_stops_when_its_budget_is_spent(trained: Trained, params_file: Path):
    qp = _quantize_params(params_file, [*DECODE_QUANTIZED, "quantize.fallback.step=1", "quantize.fallback.max_float_layers=2"])
    report = trained.quantize(qp, "unreachable", target=1.0, ceiling=1.0)  # a target no INT8 model reaches
    assert [len(s.float_layers) for s in report.steps] == [0, 1, 2] and not any(s.passed for s in report.steps)
    assert report.outcome.startswith("budget spent: 2 layer(s) kept float") and len(report.ranking) == 2


def test_flow_fails_cleanly_and_publishes_nothing_when_the_budget_is_spent(champion: str, params_file: Path):
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    # A target that ships INT8 alone: with FP32 beside it, the failed INT8 would only be left out.
    int8_only = ["target.profiles.x86-avx2=[onnx-int8]"]
    overrides = [a for o in [*DECODE_QUANTIZED, "quantize.fallback.max_float_layers=0", *int8_only] for a in ("-S", o)]
    result = run_cli("compress", "--params", str(params_file), *NO_PRUNE, *overrides, env_extra={"MLFLOW_TRACKING_URI": champion})
    assert result.returncode == 3, result.stderr[-4000:]
    last = error_line(result)
    assert last.startswith("edgeslim: error: gate map_ratio failed") and "Nothing published" in last
    assert registry_snapshot(client) == before

    report_path = Path(last.rsplit("report: ", 1)[1].strip())
    report = json.loads(report_path.read_text())
    assert report["published"] is None and report["details"]["quantization"]["outcome"].startswith("budget spent: 0 layer(s)")
    assert report["details"]["tensorrt"]["skipped"] == unavailable(load_params(params_file).quantize.tensorrt)  # this machine's reason
    assert report["details"]["calibration"]["selected_strata_covered"] == report["details"]["calibration"]["strata_total"]
    layout = Layout(report_path.parent)
    assert layout.calibration_manifest().exists() and layout.calibration_plot().exists()
