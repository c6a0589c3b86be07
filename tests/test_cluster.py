"""Fast checks of the cluster layer: compress-many's pairs and summary, and prefect.yaml as Prefect reads it."""

from __future__ import annotations

import os
import socket
from typing import Any

import boto3
import botocore.exceptions
import pytest
import requests
import yaml
from conftest import REPO
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import flow
from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel, WorkPoolConfig
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL, temporary_settings

from edgeslim.cluster.fanout import OUTCOME_GATE, OUTCOME_PUBLISHED, Job, markdown_table, parse_jobs, result_of, row_from_result
from edgeslim.config import ConfigError, load_params
from edgeslim.dag.outcome import Outcome
from edgeslim.errors import RegistryError
from edgeslim.registry import blobs
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.transient import is_transient
from edgeslim.triggers.start import COMPRESS_FLOW, RETRAIN_FLOW
from flows.deployments import prefect_yaml, specs
from tasks.step import retrying, step

P = load_params(REPO / "params.yaml")


def test_pairs_take_bare_references_and_refuse_unknown_targets_and_repeats():
    run = "runs:/" + "0" * 32 + "/weights/best.pt"
    jobs = parse_jobs(["a@champion", {"model": "b:3", "target": "arm64"}, run], P)
    assert jobs == [Job("a@champion", P.target.name, "a"), Job("b:3", "arm64", "b"), Job(run, P.target.name)]
    assert jobs[1].overrides(["prune.enabled=false"]) == ["prune.enabled=false", "target.name=arm64", "model_name=b"]
    assert jobs[2].overrides([]) == [f"target.name={P.target.name}"], "a run artifact publishes to <model_name>-edge"
    with pytest.raises(ConfigError, match="a local file is not on the workers"):
        parse_jobs([str(REPO / "params.yaml")], P)
    with pytest.raises(RegistryError, match="is not models:/NAME@ALIAS"):
        parse_jobs(["models:/bad"], P)
    with pytest.raises(ConfigError, match="unknown target 'riscv'; known: auto, x86-amx, x86-vnni, x86-avx2"):
        parse_jobs([{"model": "a", "target": "riscv"}], P)
    with pytest.raises(ConfigError, match="the same pair twice: a for arm64"):
        parse_jobs([{"model": "a", "target": "arm64"}, {"model": "a", "target": "arm64"}], P)
    with pytest.raises(ConfigError, match="expected"):
        parse_jobs([{"model": "a", "targets": "arm64"}], P)
    with pytest.raises(ConfigError, match="at least one"):
        parse_jobs([], P)


def _report(published: dict | None, passed: bool) -> dict[str, Any]:
    gate = {"passed": passed, "value": 0.97 if passed else 0.5, "threshold": 0.95, "detail": "onnx-int8 mAP50-95 ..."}
    return {
        "published": published,
        "gates": {"equivalence": {**gate, "passed": True}, "map_ratio": gate},
        "details": {"mlflow_run_url": "http://m/r"},
    }


def test_rows_say_what_each_child_published_or_why_not():
    job = Job("a@champion", "x86-avx2")
    ok = row_from_result(job, "compress a", "id-1", "Completed", result_of(_report({"model": "a-edge", "version": "2"}, True)), "")
    assert (ok.outcome, ok.edge_version, ok.map_ratio, ok.detail) == (OUTCOME_PUBLISHED, "a-edge:2", 0.97, "")
    gate = row_from_result(job, "compress b", "id-2", "Failed", result_of(_report(None, False)), "GateFailed")
    assert gate.outcome == OUTCOME_GATE and gate.edge_version is None and gate.detail.startswith("map_ratio: onnx-int8")
    lost = row_from_result(job, "compress c", "id-3", "Crashed", None, "worker process exited")
    assert lost.outcome == "failed" and lost.detail == "worker process exited"
    table = markdown_table([ok, gate, lost])
    assert table.startswith("# compress-many: 1 of 3 published") and "| [compress a](http://m/r) |" in table and "| Crashed |" in table


def _keys(model: type, data: dict[str, Any]) -> set[str]:
    """Keys of ``data`` that ``model`` (a Prefect pydantic model with extra="ignore") would drop silently."""
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    return set(data) - known


def test_prefect_yaml_is_what_prefect_reads_and_its_entrypoints_load():
    text = (REPO / "prefect.yaml").read_text()
    assert text == prefect_yaml(P), "run `edgeslim prefect-yaml --write`"
    doc = yaml.safe_load(text)
    PrefectYamlModel.model_validate(doc)
    assert _keys(PrefectYamlModel, doc) == set()  # Prefect ignores unknown keys: a typo would be lost without a word
    names = []
    for deployment in doc["deployments"]:
        assert _keys(DeploymentConfig, deployment) == set() and _keys(WorkPoolConfig, deployment["work_pool"]) == set()
        names.append(load_flow_from_entrypoint(str(REPO / deployment["entrypoint"])).name)
    assert names == [COMPRESS_FLOW, RETRAIN_FLOW, "edgeslim-compress-many", "edgeslim-step"]
    pools = [d["work_pool"]["name"] for d in doc["deployments"]]
    assert pools == [P.prefect.cpu_pool] * 3 + [P.prefect.gpu_pool] and doc["deployments"][3]["name"] == P.prefect.gpu_pool
    assert [d["name"] for d in doc["deployments"]] == [s.name for s in specs(P)]
    retrain = doc["deployments"][1]
    assert retrain["schedules"] == [{"cron": P.triggers.retrain.cron, "timezone": P.triggers.retrain.timezone}]
    # the pull step is templated from the worker's environment when a run starts, not at deploy time
    assert doc["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $EDGESLIM_CODE_DIR }}"}}]


def test_blobs_round_trip_through_the_mlflow_server_and_a_changed_file_is_refused(mlflow_server, tmp_path):
    client = reg.connect(mlflow_server)
    run = blobs.transfer_run(client, "cluster-test", "flow-run-1")
    assert blobs.transfer_run(client, "cluster-test", "flow-run-1") == run, "a rerun finds its transfer run again"
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights" * 1000)
    blob = blobs.put(client, run, model)
    assert blob.uri == f"runs:/{run}/blobs/{blob.sha256}/model.pt"
    arrived = blobs.get(blob, tmp_path / "arrived")
    assert arrived.read_bytes() == model.read_bytes() and arrived != model
    outcome = Outcome("prune", artifacts={"pruned": model}, metrics={"macs": 1.0})
    wire = outcome.to_dict(lambda path: blobs.put(client, run, path).as_dict())
    back = Outcome.from_dict(wire, lambda ref: blobs.get(blobs.Blob(**ref), tmp_path / "back"))
    assert back.metrics == outcome.metrics and back.artifact("pruned").read_bytes() == model.read_bytes()
    forged = blobs.Blob(blob.uri, "0" * 64, blob.name)  # what a truncated or swapped upload looks like on arrival
    with pytest.raises(blobs.TransferError, match="refusing a different file"):
        blobs.get(forged, tmp_path / "forged")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_transient_means_a_server_that_does_not_answer_not_a_request_it_refuses(mlflow_server: str):
    """Real clients' own errors: MLflow after its HTTP retries and boto3, each against a closed port,
    are worth a retry; a registered model that does not exist on a live server is not."""
    closed = f"http://127.0.0.1:{_free_port()}"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # read per request: no backoff wait in this test
    try:
        with pytest.raises(MlflowException) as down:
            MlflowClient(closed, closed).get_registered_model("m")
    finally:
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    assert is_transient(down.value)
    s3 = boto3.client("s3", endpoint_url=closed, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    with pytest.raises(botocore.exceptions.EndpointConnectionError) as unreachable:
        s3.meta.config.retries = {"max_attempts": 1}
        s3.list_buckets()
    assert is_transient(unreachable.value)
    with pytest.raises(MlflowException) as missing:
        MlflowClient(mlflow_server, mlflow_server).get_registered_model("no-such-model")
    assert not is_transient(missing.value)
    wrapped = RegistryError("registry lookup failed")
    wrapped.__cause__ = down.value
    assert is_transient(wrapped), "a registry error raised from a transport failure is one too"


def test_a_registry_task_retries_a_transient_failure_and_not_a_bad_reference(prefect_api: str):
    """Prefect's own retries (prefect.task_retries), with edgeslim's retry condition."""
    calls: list[str] = []

    @step("flaky-registry-read")
    def read(fail_with: list[Exception]) -> int:
        calls.append("try")
        if fail_with:
            raise fail_with.pop(0)
        return len(calls)

    p = P.model_copy(update={"prefect": P.prefect.model_copy(update={"task_retries": 2, "task_retry_delay_s": 0})})

    @flow
    def reads(fail_with: list[Exception]) -> int:
        return retrying(read, p)(fail_with)

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        assert reads([requests.exceptions.ConnectionError("connection reset")]) == 2
        calls.clear()
        with pytest.raises(RegistryError, match="no alias"):
            reads([RegistryError("registered model 'm' has no alias 'gold'")])
        assert calls == ["try"], "a bad reference fails at once"
        calls.clear()
        with pytest.raises(requests.exceptions.ConnectionError):
            reads([requests.exceptions.ConnectionError("down")] * 3)
        assert len(calls) == 3, "one try and prefect.task_retries more"
