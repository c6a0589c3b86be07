"""Pieces of the INT8 step that need no trained model: layer grouping, the detection error, the budget,
and the TensorRT variant of the Q/DQ model (built here on the CPU; the engine itself needs a GPU)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import REPO

from edgeslim.config import load_params
from edgeslim.export.onnx_export import export_onnx
from edgeslim.quantize.fallback import budget
from edgeslim.quantize.head import decode_nodes
from edgeslim.quantize.ort_int8 import OrtQuantizer
from edgeslim.quantize.sensitivity import DECODE_SUFFIX, detection_error, layers, rank_layers
from edgeslim.quantize.tensorrt import TENSORRT_QDQ_OPTIONS, tensorrt_params, unavailable
from tasks.fan import dask_fan

IMGSZ = 128


@pytest.fixture(scope="module")
def fp32(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(
        tiny_checkpoint, IMGSZ, load_params(REPO / "params.yaml").export.opset, tmp_path_factory.mktemp("quantize-units") / "fp32.onnx"
    )


@pytest.fixture(scope="module")
def calib(tiny_checkpoint: Path) -> list[Path]:
    return sorted((tiny_checkpoint.parent / "data" / "images" / "calib_pool").glob("*.jpg"))


@pytest.fixture(scope="module")
def quantizer(fp32: Path, calib: list[Path]) -> OrtQuantizer:
    """Everything quantizable, decode included (``op_types: []``, ``keep_float: none``)."""
    p = load_params(REPO / "params.yaml", ["quantize.op_types=[]", "quantize.keep_float=none"])
    return OrtQuantizer(fp32, calib, IMGSZ, p.quantize, fp32.parent / "work")


def test_layers_split_the_head_into_branches_and_decode(quantizer: OrtQuantizer):
    groups = layers(quantizer.graph, quantizer.candidates())
    decode = [k for k in groups if k.endswith(DECODE_SUFFIX)]
    assert len(decode) == 1 and set(groups[decode[0]]) <= set(decode_nodes(quantizer.graph))
    head = decode[0].removesuffix(DECODE_SUFFIX)
    assert {f"{head}cv2.0/", f"{head}cv3.0/"} <= set(groups), "each learned head branch is a layer of its own"
    assert "/model.0/" in groups and sum(len(v) for v in groups.values()) == len(quantizer.candidates())


def test_the_sensitivity_sweep_on_dask_ranks_as_the_sequential_sweep_does(quantizer: OrtQuantizer, calib: list[Path], tmp_path: Path):
    """Each layer's probe as a Prefect task on a Dask LocalCluster (two worker processes): same layers,
    same errors, same order as one after another in this process."""
    quantizer.quantize(tmp_path / "all.onnx")  # the fallback's first attempt: caches the calibration ranges
    images = calib[:2]
    dp = load_params(REPO / "params.yaml").prefect.dask.model_copy(update={"enabled": True, "min_items": 2})
    sequential = rank_layers(quantizer, tmp_path / "sequential", images, conf=0.0)
    on_dask = rank_layers(quantizer, tmp_path / "dask", images, conf=0.0, fan=dask_fan(dp))
    assert [e.layer for e in on_dask] == [e.layer for e in sequential] and len(sequential) > dp.min_items
    assert [e.error for e in on_dask] == pytest.approx([e.error for e in sequential], rel=1e-6)
    assert len({e.error for e in sequential}) > 1, "the probes must tell the layers apart, or the order proves nothing"
    assert not list((tmp_path / "dask").iterdir()), "each probe removes its scratch model"


def test_detection_error_sees_box_shifts_and_score_changes():
    rng = np.random.default_rng(0)
    reference = np.concatenate([rng.uniform(20, 60, (2, 4, 50)), rng.uniform(0, 1, (2, 3, 50))], axis=1).astype(np.float32)
    assert detection_error(reference, reference.copy(), conf=0.25) == pytest.approx(0.0, abs=1e-6)
    shifted = reference.copy()
    shifted[:, 0] += 2.0  # every box 2 px to the right
    rescored = reference.copy()
    rescored[:, 4:] *= 0.5
    assert 0.02 < detection_error(reference, shifted, 0.25) < 0.2  # 1 - IoU of a 2 px shift on 20-60 px boxes
    assert detection_error(reference, rescored, 0.25) > 0.1
    assert detection_error(np.zeros_like(reference), np.zeros_like(reference), 0.25) == 0.0, "nothing detected: nothing to compare"


def test_budget_steps_up_to_the_budget_and_the_layers_there_are():
    assert budget(1, 3, 10) == [1, 2, 3]
    assert budget(2, 5, 10) == [2, 4, 5]
    assert budget(2, 8, 3) == [2, 3]
    assert budget(1, 0, 10) == []


def test_tensorrt_step_says_why_it_cannot_run(monkeypatch: pytest.MonkeyPatch):
    """Each reason in turn: disabled, no tensorrt package, no CUDA GPU; and none where both are there."""
    tp = load_params(REPO / "params.yaml").quantize.tensorrt.model_copy(update={"enabled": True})
    assert unavailable(tp.model_copy(update={"enabled": False})).startswith("disabled")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    assert unavailable(tp).startswith("the tensorrt package is not installed")
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert unavailable(tp).startswith("no CUDA GPU is visible")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert unavailable(tp) is None


def test_tensorrt_variant_is_symmetric_with_float_bias_and_conv_inputs_only(fp32: Path, calib: list[Path], tmp_path: Path):
    qp = load_params(REPO / "params.yaml").quantize

    quantizer = OrtQuantizer(fp32, calib, IMGSZ, qp, tmp_path / "work")
    model = onnx.load(str(quantizer.quantize(tmp_path / "trt.onnx", qp=tensorrt_params(qp), extra_options=TENSORRT_QDQ_OPTIONS).path))
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    quantize_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize_nodes and all(constants[n.input[2]].dtype == np.int8 and not constants[n.input[2]].any() for n in quantize_nodes)
    assert not any(t.dtype == np.int32 for t in constants.values()), "bias stays float"
    produced_by = {out: n for n in model.graph.node for out in n.output}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    convs = [
        n
        for n in model.graph.node
        if n.op_type == "Conv" and n.input[0] in produced_by and produced_by[n.input[0]].op_type == "DequantizeLinear"
    ]
    assert convs and not any("QuantizeLinear" in consumers.get(n.output[0], []) for n in convs), "no Q/DQ on conv outputs"
