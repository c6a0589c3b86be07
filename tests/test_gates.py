import numpy as np
import pytest

from edgeslim.config import FuseParams
from edgeslim.gates import equivalence_gate, map_gate
from edgeslim.reparam.equivalence import compare_arrays


def test_map_gate_threshold_is_inclusive():
    assert map_gate(0.95, 1.0, 0.95).passed
    assert not map_gate(0.9499, 1.0, 0.95).passed


def test_map_gate_fails_on_zero_baseline():
    gate = map_gate(0.3, 0.0, 0.95)
    assert not gate.passed and gate.value == 0.0


def test_compare_arrays_relative_measures():
    ref = np.array([[100.0, 200.0], [300.0, 400.0]])
    eq = compare_arrays(ref, ref + np.array([[0.0, 0.0], [0.0, 4.0]]), n_images=1)
    assert eq.max_abs == pytest.approx(4.0)
    assert eq.rel_max_abs == pytest.approx(4.0 / 400.0)
    assert eq.rel_l2 == pytest.approx(4.0 / np.linalg.norm(ref))


def test_compare_arrays_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        compare_arrays(np.zeros((2, 3)), np.zeros((3, 2)), n_images=1)


def test_equivalence_gate_uses_both_tolerances():
    fp = FuseParams(equivalence_images=1, max_rel_l2=1e-4, max_rel_abs=1e-3, onnx_max_rel_l2=1e-4, onnx_max_rel_abs=1e-3)
    ref = np.linspace(1, 100, 10_000)  # many values: one spike moves the L2 norm little, the max a lot
    assert equivalence_gate(compare_arrays(ref, ref * (1 + 1e-6), 1), fp).passed

    spike = ref.copy()
    spike[0] += 0.5  # 0.5 / 100 = 5e-3 of the max (> 1e-3) but 0.5 / ||ref|| ~ 8e-5 in L2 (< 1e-4)
    eq = compare_arrays(ref, spike, 1)
    assert eq.rel_l2 < fp.max_rel_l2 < fp.max_rel_abs < eq.rel_max_abs
    gate = equivalence_gate(eq, fp)
    assert not gate.passed and gate.value < gate.threshold, "failed on the max-relative bound alone"

    spread = ref * (1 + 5e-4)  # every value off by 5e-4 of itself: under the max bound (1e-3), over the L2 bound (1e-4)
    eq = compare_arrays(ref, spread, 1)
    assert eq.rel_max_abs < fp.max_rel_abs and eq.rel_l2 > fp.max_rel_l2
    gate = equivalence_gate(eq, fp)
    assert not gate.passed and gate.value > gate.threshold, "failed on the L2 bound alone"


def _gated(tmp_path, overrides: list[str], stages: dict[str, float]):
    """The ``gates`` step on scored stages (name → mAP50-95), as the evaluate steps would hand them over."""
    from pathlib import Path

    from edgeslim.config import load_params
    from edgeslim.dag.layout import Layout
    from edgeslim.dag.outcome import Outcome
    from edgeslim.dag.registry import COMPRESS
    from edgeslim.dag.run import run_step
    from edgeslim.report import StageResult

    repo = Path(__file__).resolve().parents[1]
    p = load_params(repo / "params.yaml", overrides)
    rows = tuple(StageResult(name, str(tmp_path / f"{name}.onnx"), map50_95=m) for name, m in stages.items())
    outcomes = {
        "dataset": Outcome("dataset"),
        "evaluate": Outcome("evaluate", stages=rows),
        "evaluate-int8": Outcome("evaluate-int8"),
        "tensorrt": Outcome("tensorrt"),
        "openvino": Outcome("openvino"),
    }
    step = next(s for s in COMPRESS if s.name == "gates")
    return run_step(step, p, Layout(tmp_path), outcomes)


@pytest.fixture
def elsewhere(monkeypatch):
    """This machine is of no target's class: the profile's order stands (no timing)."""
    monkeypatch.setattr("edgeslim.dag.steps.gates.machine_profile", lambda: "arm64")


def test_target_profile_decides_the_shipped_formats_and_gates_each(tmp_path, elsewhere):
    scored = {"baseline": 0.40, "control": 0.44, "onnx-fp32": 0.41, "onnx-int8": 0.39}
    onnx_only = "target.profiles.x86-avx2=[onnx-fp32,onnx-int8]"
    avx2 = _gated(tmp_path, [onnx_only, "target.name=x86-avx2"], scored)
    target = avx2.details["target"]
    assert [s["format"] for s in target["shipped"]] == ["onnx-fp32", "onnx-int8"]  # x86-avx2: FP32 first
    assert {g.name for g in avx2.gates} == {"map_ratio_fp32", "map_ratio"} and all(g.passed for g in avx2.gates)
    vnni = _gated(tmp_path / "vnni", ["target.name=x86-vnni"], scored).details["target"]
    assert [s["format"] for s in vnni["shipped"]] == ["onnx-int8", "onnx-fp32"]
    gpu = _gated(tmp_path / "gpu", ["target.name=nvidia-gpu"], scored).details["target"]
    assert [s["format"] for s in gpu["shipped"]] == ["onnx-int8", "onnx-fp32"] and "tensorrt" in gpu["left_out"]  # no engine here
    # Each format on its own mAP: an INT8 model that lost too much is left out, with its gate's figures, while FP32 ships.
    lossy = _gated(tmp_path / "lossy", [onnx_only, "target.name=x86-avx2"], {**scored, "onnx-int8": 0.30})
    assert {g.name: g.passed for g in lossy.gates} == {"map_ratio_fp32": True}
    left = lossy.details["target"]["left_out"]
    assert [s["format"] for s in lossy.details["target"]["shipped"]] == ["onnx-fp32"] and "0.750 x baseline" in left["onnx-int8"]
    # Nothing left to ship: the run fails on every candidate's own gate.
    none = _gated(tmp_path / "none", [onnx_only, "target.name=x86-avx2"], {**scored, "onnx-int8": 0.30, "onnx-fp32": 0.2})
    assert {g.name: g.passed for g in none.gates} == {"map_ratio_fp32": False, "map_ratio": False}
    # An OpenVINO candidate is gated like the rest; one this run did not build is left out with the reason.
    amx = _gated(tmp_path / "amx", ["target.name=x86-amx"], {**scored, "openvino-fp32": 0.41, "openvino-bf16": 0.405})
    assert [s["format"] for s in amx.details["target"]["shipped"]] == ["openvino-bf16", "openvino-fp32", "onnx-int8", "onnx-fp32"]
    assert amx.details["target"]["order"].startswith("profile order: this machine is arm64")
    assert "scored no openvino-int8" in amx.details["target"]["left_out"]["openvino-int8"]
    assert {"map_ratio_openvino_fp32", "map_ratio_openvino_bf16"} <= {g.name for g in amx.gates if g.passed}


def test_gated_formats_ship_fastest_first_where_the_machine_matches_the_target(tmp_path, monkeypatch):
    """Measured order (fixed latencies stand in for the paired rounds): fastest first, figures in the report."""
    from edgeslim.runtime.timing import Paired

    monkeypatch.setattr("edgeslim.dag.steps.gates.machine_profile", lambda: "x86-amx")
    latency = {"openvino-bf16": 3.0, "openvino-fp32": 2.0, "onnx-int8": 4.0, "onnx-fp32": 5.0}
    monkeypatch.setattr(
        "edgeslim.dag.steps.gates.time_formats",
        lambda inp, p, shipped: Paired([latency[s["format"]] for s in shipped], [[latency[s["format"]] for s in shipped]]),
    )
    scored = {"baseline": 0.40, "onnx-fp32": 0.41, "onnx-int8": 0.39, "openvino-fp32": 0.41, "openvino-bf16": 0.40}
    target = _gated(tmp_path, ["target.name=x86-amx"], scored).details["target"]
    assert [s["format"] for s in target["shipped"]] == ["openvino-fp32", "openvino-bf16", "onnx-int8", "onnx-fp32"]
    assert target["preferred"] == "openvino-fp32" and target["order"].startswith("measured here")
    assert target["shipped"][0]["ratio_to_profile_first"] == pytest.approx(2.0 / 3.0)


def test_gate_reference_control_states_every_ratio_against_the_control(tmp_path, elsewhere):
    scored = {"baseline": 0.40, "control": 0.44, "onnx-fp32": 0.41, "onnx-int8": 0.41}
    vs_baseline = _gated(tmp_path, ["evaluate.control=true"], scored)
    assert all(g.passed for g in vs_baseline.gates) and vs_baseline.details["map_ratios"]["onnx-int8"] == pytest.approx(0.41 / 0.40)
    assert vs_baseline.details["map_ratios_vs"]["control"]["onnx-int8"] == pytest.approx(0.41 / 0.44)
    vs_control = _gated(tmp_path / "c", ["evaluate.control=true", "gates.reference=control"], scored)
    int8 = next(g for g in vs_control.gates if g.name == "map_ratio")
    assert not int8.passed and int8.value == pytest.approx(0.41 / 0.44) and "x control 0.4400" in int8.detail
    assert vs_control.details["reference"]["stage"] == "control"


def test_control_reference_needs_the_control_trained():
    from pathlib import Path

    from edgeslim.config import ConfigError, load_params

    with pytest.raises(ConfigError, match="evaluate.control is false"):
        load_params(Path(__file__).resolve().parents[1] / "params.yaml", ["gates.reference=control"])
