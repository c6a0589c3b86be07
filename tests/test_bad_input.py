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


def test_bad_params_fail_before_any_work(params_file):
    result = run_cli("compress", "--params", str(params_file), "-S", "gates.min_map_ratoi=0.9")
    assert result.returncode == 2
    assert "unknown key 'gates.min_map_ratoi'" in error_line(result)
