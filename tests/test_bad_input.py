"""Bad input ends with one clear error line, exit code 2, and leaves the registry as it was."""

from __future__ import annotations

import mlflow
import pytest
from conftest import error_line, run_cli
from mlflow import MlflowClient
from test_e2e import registry_snapshot

from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import free_port


@pytest.mark.parametrize(
    "model, message",
    [
        ("no-such-model@champion", "registered model 'no-such-model' does not exist"),
        ("pcb-detector@gold", "has no alias 'gold' (aliases: champion"),
        ("pcb-detector:999", "has no version 999"),
        ("bad/ref", "is not NAME, NAME@ALIAS or NAME:VERSION"),
    ],
)
def test_unknown_model_alias_or_version(champion, params_file, model, message):
    before = registry_snapshot(MlflowClient(champion, champion))
    result = run_cli("compress", "--model", model, "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": champion})
    assert result.returncode == 2
    assert message in error_line(result)
    assert registry_snapshot(MlflowClient(champion, champion)) == before


def test_unreachable_tracking_server(params_file):
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("compress", "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": url})
    assert result.returncode == 2
    assert f"MLflow tracking server {url} is unreachable" in error_line(result)


def test_corrupt_checkpoint_in_registry(champion, params_file, tmp_path):
    garbage = tmp_path / "broken.pt"
    garbage.write_bytes(b"\x00truncated upload\x00" * 64)
    reg.connect(champion)  # sets MLflow's global tracking *and* registry URIs
    mlflow.set_experiment("bad-input")
    with mlflow.start_run():
        version = mlflow.register_model(reg.log_weights_model(garbage), "broken-detector").version
    result = run_cli(
        "compress", "--model", f"broken-detector:{version}", "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": champion}
    )
    assert result.returncode == 2
    assert "is corrupt or not a PyTorch file" in error_line(result)


def test_class_count_mismatch(champion, params_file):
    result = run_cli(
        "compress",
        "--params",
        str(params_file),
        "-S",
        "dataset.classes=[bolt,nut,washer,screw]",
        env_extra={"MLFLOW_TRACKING_URI": champion},
    )
    assert result.returncode == 2
    assert "predicts 5 classes" in error_line(result) and "the dataset has 4" in error_line(result)


@pytest.mark.parametrize("size", ["100", "256"])  # not a multiple of the stride 32 / larger than the source's 128 px
def test_an_input_size_the_source_cannot_take_is_one_line(champion, params_file, size):
    before = registry_snapshot(MlflowClient(champion, champion))
    knobs = ["-S", f"compress.input_size={size}", "-S", "search.enabled=false"]
    result = run_cli("compress", "--params", str(params_file), *knobs, env_extra={"MLFLOW_TRACKING_URI": champion})
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"compress.input_size {size} must be a multiple of the model's stride 32 and at most the source's 128 px" in error_line(result)
    assert registry_snapshot(MlflowClient(champion, champion)) == before


def test_bad_params_fail_before_any_work(params_file):
    result = run_cli("compress", "--params", str(params_file), "-S", "gates.min_map_ratoi=0.9")
    assert result.returncode == 2
    assert "unknown key 'gates.min_map_ratoi'" in error_line(result)


def test_long_and_multi_line_causes_end_on_one_short_line(mlflow_server, params_file, tmp_path):
    """torch's miniz text (500+ characters) and YAML's caret lines still end on one line under 300."""
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(b"PK\x03\x04" + b"\x00" * 4096)  # a zip header, then nothing: torch's long miniz message
    result = run_cli("compress", "--model", str(truncated), "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": mlflow_server})
    line = error_line(result)
    assert result.returncode == 2 and "is corrupt or not a PyTorch file" in line and len(line) < 300, line
    malformed = tmp_path / "params.yaml"
    malformed.write_text("dataset:\n  seed: 1\n   classes: [a\n")
    result = run_cli("compress", "--params", str(malformed))
    line = error_line(result)
    assert result.returncode == 2 and "line" in line and len(line) < 300 and not line.rstrip().endswith("^"), line


def test_a_broken_openvino_ir_as_source_gets_one_line(mlflow_server, params_file, tmp_path):
    """An IR without its .bin, or with an input that is no image, is named for what is wrong; nothing runs."""
    from fleet_support import tiny_ir, tiny_onnx

    ir = tiny_ir(tiny_onnx(tmp_path / "m" / "model.onnx", 1))
    (ir / "model.bin").unlink()
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    result = run_cli("compress", "--model", str(ir), "--params", str(params_file), env_extra=env)
    assert result.returncode == 2 and "has no weights file model.bin" in error_line(result)

    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    flat = tmp_path / "flat" / "flat.onnx"
    flat.parent.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), flat)
    result = run_cli("compress", "--model", str(tiny_ir(flat)), "--params", str(params_file), env_extra=env)
    assert result.returncode == 2 and "takes input shape [1, 16], not one Nx3xHxW image" in error_line(result)
