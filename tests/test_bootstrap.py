"""A gate that knows its own noise (issue 27, item 6): each mAP ratio gets a paired bootstrap interval
over the val images, in the gate line, report.json and the stage table; ``gates.confidence: lower``
passes a candidate only when the interval's low end clears the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from ultralytics.utils.metrics import ap_per_class

from edgeslim.config import load_params
from edgeslim.dag.layout import Layout
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.registry import COMPRESS
from edgeslim.dag.run import run_step
from edgeslim.evaluate.bootstrap import KEYS, PerImage, ratio_intervals
from edgeslim.gates import gate_line
from edgeslim.report import Report, StageResult

N_IMAGES = 24


def _matches(seed: int, hit_rate: float) -> PerImage:
    """Validator-shaped matches: per image, predictions with confidences and per-IoU hits, and labels."""
    rng = np.random.default_rng(0)  # the same images and predictions for every model ...
    stats: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    flips = np.random.default_rng(seed)  # ... which differ only in how many of them hit
    for _ in range(N_IMAGES):
        n, m = int(rng.integers(1, 40)), int(rng.integers(1, 8))
        hit = rng.random(n)
        stats["conf"].append(rng.random(n).round(2))  # ties, as real confidences have
        stats["pred_cls"].append(rng.integers(0, 3, n).astype(float))
        stats["target_cls"].append(rng.integers(0, 3, m).astype(float))
        thresholds = np.linspace(0.5, 0.95, 10)
        kept = (hit < hit_rate) & (flips.random(n) < 0.97 if seed else True)
        stats["tp"].append(kept[:, None] & (rng.random(n)[:, None] > thresholds - 0.5))
    return PerImage([f"{i:03d}.jpg" for i in range(N_IMAGES)], stats)


def test_the_full_sample_is_ultralytics_own_map_and_files_round_trip(tmp_path: Path):
    matches = _matches(0, 0.5)
    joined = {k: np.concatenate(matches.stats[k], 0) for k in KEYS}
    expected = ap_per_class(joined["tp"], joined["conf"], joined["pred_cls"], joined["target_cls"])[5].mean()
    assert matches.scorer().map50_95() == pytest.approx(expected, abs=1e-12)
    again = PerImage.load(matches.save(tmp_path / "m.npz"))
    assert again.names == matches.names and again.scorer().map50_95() == pytest.approx(expected, abs=1e-12)


def test_an_identical_model_has_a_point_interval_and_a_worse_one_an_interval_around_its_ratio():
    p = load_params(REPO / "params.yaml", ["gates.bootstrap.samples=200"])
    ref, worse = _matches(0, 0.5), _matches(1, 0.5)
    found = ratio_intervals({"same": ref, "worse": worse}, ref, p.gates.bootstrap)
    assert found["same"].low == found["same"].high == pytest.approx(1.0)
    ratio = worse.scorer().map50_95() / ref.scorer().map50_95()
    assert found["worse"].low < ratio < found["worse"].high and found["worse"].samples == 200 and found["worse"].images == N_IMAGES
    with pytest.raises(ValueError, match="other val images"):
        ratio_intervals({"other": PerImage(ref.names[:-1], {k: v[:-1] for k, v in ref.stats.items()})}, ref, p.gates.bootstrap)


def _gates(tmp_path: Path, overrides: list[str]) -> Outcome:
    """The gates step on a baseline and an INT8 candidate, both with recorded per-image matches."""
    p = load_params(REPO / "params.yaml", ["target.name=x86-avx2", "target.profiles.x86-avx2=[onnx-int8]", *overrides])
    ref, cand = _matches(0, 0.5), _matches(1, 0.5)
    rows = tuple(
        StageResult(name, str(tmp_path / f"{name}.onnx"), map50_95=m.scorer().map50_95(), per_image=str(m.save(tmp_path / f"{name}.npz")))
        for name, m in (("baseline", ref), ("onnx-int8", cand))
    )
    outcomes = {name: Outcome(name) for name in ("dataset", "evaluate-int8", "tensorrt", "openvino")}
    outcomes["evaluate"] = Outcome("evaluate", stages=rows)
    return run_step(next(s for s in COMPRESS if s.name == "gates"), p, Layout(tmp_path), outcomes)


def test_confidence_lower_fails_a_ratio_whose_interval_reaches_below_the_threshold(tmp_path: Path):
    point = _gates(tmp_path / "point", ["gates.min_map_ratio=0.95", "gates.bootstrap.samples=100"])
    gate = point.gates[0]
    interval = point.details["map_ratio_intervals"]["onnx-int8"]
    assert interval["low"] < 0.95 < gate.value < interval["high"], (gate.value, interval)
    assert gate.passed and gate.interval == interval and "100 paired resamples" in gate_line(gate)
    lower = _gates(tmp_path / "lower", ["gates.min_map_ratio=0.95", "gates.bootstrap.samples=100", "gates.confidence=lower"])
    assert not lower.gates[0].passed and f"low end {interval['low']:.3f} needs >= 0.95" in lower.gates[0].detail
    stages = [StageResult(**s) for s in json.loads(Path(lower.artifacts["stages_json"]).read_text())]  # the stage table's rows
    assert next(s for s in stages if s.name == "onnx-int8").map_ratio_ci == [interval["low"], interval["high"]]
    table = Report("m", "1", stages=stages, gates={g.name: g for g in lower.gates}).markdown()
    assert f"95% CI {interval['low']:.3f}–{interval['high']:.3f}, 100 paired resamples of 24 val images" in table  # the gate line
    assert f"({100 * interval['low']:.1f}–{100 * interval['high']:.1f})" in table


def test_the_demo_run_reports_each_ratio_with_its_interval(published):
    """On a real run: the validator's own mAP is the bootstrap's full sample, and every gate carries an interval."""
    _, report = published
    baseline = report["stages"][0]
    assert PerImage.load(Path(baseline["per_image"])).scorer().map50_95() == pytest.approx(baseline["map50_95"], abs=1e-9)
    gated = [g for name, g in report["gates"].items() if name.startswith("map_ratio")]
    assert gated and all(g["interval"]["low"] <= g["value"] <= g["interval"]["high"] for g in gated), gated
