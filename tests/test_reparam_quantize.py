"""Fusion, ONNX export and INT8 quantization on a tiny untrained model (no registry, no Prefect)."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeslim.config import load_params
from edgeslim.data.images import preprocess
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from edgeslim.quantize.ort_int8 import head_nodes, quantize_int8
from edgeslim.reparam.equivalence import compare_models
from edgeslim.reparam.fuse import fuse_model

from conftest import REPO

IMGSZ = 128


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return tiny_checkpoint, tiny_checkpoint.parent / "data", tiny_checkpoint.parent


def test_fused_model_matches_and_has_no_batchnorm(tiny):
    weights, data, _ = tiny
    _, model = load_checkpoint(weights)
    fused, report = fuse_model(model)
    assert report.bn_before > 0 and report.bn_after == 0
    assert report.fused and not report.not_fused
    assert hasattr(model.model[0], "bn"), "fusion must work on a copy, not mutate the source model"
    images = np.concatenate([preprocess(p, IMGSZ) for p in sorted((data / "images" / "val").glob("*.jpg"))])
    eq = compare_models(model, fused, images)
    assert eq.rel_l2 < 1e-5 and eq.n_images == len(images)


def test_int8_keeps_detect_head_float(tiny):
    weights, data, tmp = tiny
    p = load_params(REPO / "params.yaml")
    _, model = load_checkpoint(weights)
    fused, _ = fuse_model(model)
    fp32 = export_onnx(save_checkpoint(fused, {"train_args": {"imgsz": IMGSZ}}, tmp / "fused.pt"), IMGSZ, p.export.opset, tmp / "fp32.onnx")
    int8 = tmp / "int8.onnx"
    calib = sorted((data / "images" / "calib_pool").glob("*.jpg"))
    report = quantize_int8(fp32, calib, IMGSZ, p.quantize, int8)
    assert report.quantized_nodes > 0 and report.calibration_images == len(calib)

    q = onnx.load(str(int8))
    head = set(head_nodes(q))
    assert head and head == set(report.excluded_nodes)
    produced_by = {out: n for n in q.graph.node for out in n.output}
    for node in q.graph.node:
        if node.name in head and node.op_type == "Conv":
            weight_src = produced_by.get(node.input[1])
            assert weight_src is None or weight_src.op_type != "DequantizeLinear", f"head conv {node.name} was quantized"
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)
    assert {m.key for m in q.metadata_props} >= {"names", "stride", "imgsz"}

    x = preprocess(calib[0], IMGSZ)
    outs = [ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0] for f in (fp32, int8)]
    assert outs[0].shape == outs[1].shape and np.isfinite(outs[1]).all()
    assert int8.stat().st_size < fp32.stat().st_size


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
