"""The runtime layer (edgeslim.runtime): every backend behind one session interface, the precision a
format names set explicitly, the formats this machine can run, paired timing, the IR on the wire."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fleet_support import tiny_ir, tiny_onnx

from edgeslim.agent import ir_archive
from edgeslim.errors import CheckpointError
from edgeslim.runtime.cpu import has_bf16, profile_for
from edgeslim.runtime.session import golden_outputs, open_session, unavailable
from edgeslim.runtime.timing import paired_medians

X = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    onnx = tiny_onnx(tmp_path_factory.mktemp("rt") / "model.onnx", 3)
    return onnx, tiny_ir(onnx)


def test_onnx_runtime_and_openvino_compute_the_same_at_fp32(models):
    onnx, ir = models
    ort_session, ov_session = open_session(onnx, "onnx-fp32", 1), open_session(ir, "openvino-fp32", 1)
    for s in (ort_session, ov_session):
        assert [(i.name, list(i.shape)) for i in s.get_inputs()] == [("images", [1, 3, 32, 32])]
    a, b = ort_session.run(None, {"images": X})[0], ov_session.run(None, {"images": X})[0]
    assert a.shape == b.shape == (1, 4, 32, 32) and np.linalg.norm(b - a) / np.linalg.norm(a) < 1e-5
    assert str(ov_session.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"  # never the CPU's default
    golden = golden_outputs(ov_session, [{"images": X}, {"images": X * 0.5}])
    assert golden["output0"].shape == (2, 1, 4, 32, 32)


def test_bf16_runs_only_where_the_cpu_has_it_and_is_a_precision_change(models):
    _, ir = models
    if not has_bf16():
        assert "AMX" in (unavailable("openvino-bf16") or "")
        with pytest.raises(RuntimeError, match="neither AMX nor AVX512-BF16"):
            open_session(ir, "openvino-bf16")
        return
    assert unavailable("openvino-bf16") is None
    s = open_session(ir, "openvino-bf16", 1)
    assert str(s.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"
    fp32 = open_session(ir, "openvino-fp32", 1).run(None, {"images": X})[0]
    diff = np.linalg.norm(s.run(None, {"images": X})[0] - fp32) / np.linalg.norm(fp32)
    assert 0 < diff < 0.05, diff  # it computes otherwise: that is why each precision is gated


def test_formats_this_machine_cannot_run_say_why():
    assert unavailable("onnx-fp32") is None and unavailable("openvino-fp32") is None
    reason = unavailable("tensorrt")
    assert reason is None or "tensorrt" in reason or "CUDA" in reason
    assert profile_for(frozenset({"avx2", "avx512_bf16"}), "x86_64") == "x86-amx"
    assert profile_for(frozenset({"avx2", "avx_vnni"}), "x86_64") == "x86-vnni"
    assert profile_for(frozenset({"avx2"}), "x86_64") == "x86-avx2" and profile_for(frozenset(), "aarch64") == "arm64"


def test_an_ir_without_its_bin_is_named(models, tmp_path):
    _, ir = models
    broken = tmp_path / "broken_openvino_model"
    broken.mkdir()
    (broken / "model.xml").write_bytes((ir / "model.xml").read_bytes())
    with pytest.raises(CheckpointError, match="has no weights file model.bin"):
        open_session(broken, "openvino-fp32")


def test_paired_rounds_rotate_the_order_and_time_every_model():
    calls: list[str] = []
    timed = paired_medians([lambda: calls.append("a"), lambda: calls.append("b"), lambda: calls.append("c")], calls=2, blocks=1, warmup=0)
    assert "".join(calls) == "abc" + "bac"  # call 0: a b c; call 1: rotated the other way, b first
    assert len(timed.medians_ms) == 3 and timed.ratios_to(0)[0] == pytest.approx(1.0)


def test_the_ir_tar_is_deterministic_and_checked_per_file(models, tmp_path):
    _, ir = models
    one, two = ir_archive.pack(ir, tmp_path / "1.tar"), ir_archive.pack(ir, tmp_path / "2.tar")
    assert one.read_bytes() == two.read_bytes()
    files = ir_archive.files_of(ir)
    out = ir_archive.unpack(one, tmp_path / "x_openvino_model", files)
    assert ir_archive.files_of(out) == files
    with pytest.raises(ir_archive.ArchiveError, match="do not match the manifest: model.bin"):
        ir_archive.unpack(one, tmp_path / "y_openvino_model", {**files, "model.bin": "0" * 64})
    assert not (tmp_path / "y_openvino_model").exists() and not list(tmp_path.glob(".y_openvino_model*"))
