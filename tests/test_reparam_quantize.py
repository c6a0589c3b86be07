"""Fusion, ONNX export and INT8 quantization on a tiny untrained model (no registry, no Prefect)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import REPO

from edgeslim.config import load_params
from edgeslim.data.images import preprocess
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from edgeslim.quantize.head import decode_nodes, head_nodes
from edgeslim.quantize.ort_int8 import quantize_int8
from edgeslim.reparam.equivalence import compare_models
from edgeslim.reparam.fuse import fuse_model

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


def output_quantized(model: onnx.ModelProto) -> set[str]:
    """The nodes whose output ONNX Runtime quantized (it feeds a QuantizeLinear)."""
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    return {n.name for n in model.graph.node if n.op_type != "DequantizeLinear" and quantized & set(n.output)}


def test_int8_quantizes_head_convs_and_keeps_the_decode_float(tiny):
    weights, data, tmp = tiny
    p = load_params(REPO / "params.yaml")
    _, model = load_checkpoint(weights)
    fused, _ = fuse_model(model)
    fp32 = export_onnx(save_checkpoint(fused, {"train_args": {"imgsz": IMGSZ}}, tmp / "fused.pt"), IMGSZ, p.export.opset, tmp / "fp32.onnx")
    int8 = tmp / "int8.onnx"
    calib = sorted((data / "images" / "calib_pool").glob("*.jpg"))
    report = quantize_int8(fp32, calib, IMGSZ, p.quantize, int8)
    assert report.quantized_tensors > 0

    q, source = onnx.load(str(int8)), onnx.load(str(fp32))
    head, decode = set(head_nodes(source)), set(decode_nodes(source))
    assert decode and decode < head and decode == set(report.float_nodes)
    assert any("/dfl/" in n for n in decode), "the DFL integral is decode, not a learned conv"
    produced_by = {out: n for n in q.graph.node for out in n.output}

    def weight_quantized(node: onnx.NodeProto) -> bool:
        source = produced_by.get(node.input[1])
        return source is not None and source.op_type == "DequantizeLinear"

    head_convs = [n for n in q.graph.node if n.name in head and n.op_type == "Conv"]
    assert all(weight_quantized(n) == (n.name not in decode) for n in head_convs)
    assert any(weight_quantized(n) for n in head_convs), "the head's learned convs are INT8"
    assert not output_quantized(q) & decode, "no decode node's output is quantized"
    # With every op type ONNX Runtime can quantize selected (op_types: []), the decode's Sigmoid/Mul/Add/Concat
    # are candidates too: keep_float still holds them float, while such ops elsewhere are quantized.
    every = onnx.load(str(quantize_int8(fp32, calib, IMGSZ, p.quantize.model_copy(update={"op_types": []}), tmp / "int8-every.onnx").path))
    quantized = output_quantized(every)
    assert {n.op_type for n in every.graph.node if n.name in quantized} - {"Conv"}, "op_types [] must quantize more than convs"
    assert not quantized & decode, f"decode nodes quantized: {sorted(quantized & decode)}"
    assert {m.key for m in q.metadata_props} >= {"names", "stride", "imgsz"}
    assert not q.graph.value_info, "shape hints are stripped (compact)"

    x = preprocess(calib[0], IMGSZ)
    outs = [ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0] for f in (fp32, int8)]
    assert outs[0].shape == outs[1].shape and np.isfinite(outs[1]).all()
    assert int8.stat().st_size < 0.31 * fp32.stat().st_size


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
