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
