"""Tiny ONNX models for the fleet tests and the rollout benchmark: a 3x3 conv, optionally padded or poisoned.

Paging, agents and rollouts need real ONNX files that ONNX Runtime runs, but not a trained detector:
the size of the file (``ballast_bytes``) is what downloads feel, and a NaN tail is what a broken
model looks like to the smoke test.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import onnx
from mlflow import MlflowClient
from onnx import TensorProto, helper, numpy_helper

from edgeslim.registry import mlflow_registry as reg

IMG = 32
OPSET, IR_VERSION = 17, 9


def tiny_onnx(path: Path, seed: int, ballast_bytes: int = 0, nan: bool = False) -> Path:
    """``images [1,3,32,32] → output0 [1,4,32,32]``; ``ballast_bytes`` pads the file, ``nan`` poisons it."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")]
    nodes = [helper.make_node("Conv", ["images", "w"], ["y0"], pads=[1, 1, 1, 1])]
    last = "y0"
    if ballast_bytes:
        inits += [
            numpy_helper.from_array(rng.normal(size=ballast_bytes // 4).astype(np.float32), "ballast"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
        nodes += [
            helper.make_node("ReduceSum", ["ballast"], ["bsum"], keepdims=0),
            helper.make_node("Mul", ["bsum", "zero"], ["bz"]),
            helper.make_node("Add", [last, "bz"], ["y1"]),
        ]
        last = "y1"
    if nan:  # (y - y) / (y - y) = 0 / 0: same shapes, NaN everywhere
        nodes += [helper.make_node("Sub", [last, last], ["d"]), helper.make_node("Div", ["d", "d"], ["y2"])]
        last = "y2"
    nodes.append(helper.make_node("Identity", [last], ["output0"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IMG, IMG])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4, IMG, IMG])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_ir(onnx_path: Path, fmt: str = "openvino-fp32") -> Path:
    """An OpenVINO IR of a tiny ONNX model, laid out and labelled as the openvino step writes it."""
    import yaml

    from edgeslim.fleet.onnx_info import FORMAT_KEY, IR_METADATA
    from edgeslim.runtime import openvino_backend as ovb

    folder = ovb.save_ir(
        ovb.ov.convert_model(str(onnx_path)), ovb.ir_dir(onnx_path.stem, onnx_path.parent), onnx_path.stem, {"names": {0: "a"}}
    )
    meta = folder / IR_METADATA
    meta.write_text(yaml.safe_dump({**yaml.safe_load(meta.read_text()), FORMAT_KEY: fmt}))
    return folder


def register_tiny_versions(
    client: MlflowClient, name: str, seeds: dict[str, int], folder: Path, ballast_bytes: int = 0, ir_versions: tuple[str, ...] = ()
) -> dict[str, Path]:
    """One registered version of ``name`` per ``{version: seed}`` (in that order), each moving ``candidate``,
    logged in the active experiment; their files by version (an OpenVINO IR folder for ``ir_versions``)."""
    files = {}
    for version, seed in seeds.items():
        path = tiny_onnx(folder / version / "model-int8.onnx", seed, ballast_bytes=ballast_bytes)
        path = tiny_ir(path) if version in ir_versions else path
        with mlflow.start_run():
            uri = reg.log_weights_model(path)
        reg.register(client, uri, name, {"edgeslim.source_model": "tiny", "edgeslim.source_version": version}, "candidate")
        files[version] = path
    return files
