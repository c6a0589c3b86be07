"""`mlflow server --artifacts-destination s3://...` against a real S3 API (moto server on loopback):
publish a model through the server's artifact proxy and load it back."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import mlflow
import pandas as pd
import pytest
import requests

from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import free_port, start_server
from edgeslim.registry.sources import pull

BUCKET = "edgeslim-artifacts"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def moto_s3(tmp_path: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


def test_model_round_trip_through_s3_artifact_store(moto_s3, tmp_path, monkeypatch, tiny_checkpoint):
    for key, value in {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": moto_s3}.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=moto_s3)
    s3.create_bucket(Bucket=BUCKET)
    server = start_server(tmp_path / "mlflow", "127.0.0.1", 0, timeout_s=120, detach=True, artifacts_destination=f"s3://{BUCKET}/mlflow")
    try:
        client = reg.connect(server.url)
        mlflow.set_experiment("s3-store")
        with mlflow.start_run():
            uri = reg.log_weights_model(tiny_checkpoint)
        mv = reg.register(client, uri, "s3-detector", {"edgeslim.kind": "test"}, "champion")

        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/").get("Contents", [])]
        assert any(k.endswith(f"artifacts/{tiny_checkpoint.name}") for k in keys), keys

        pulled = pull(client, reg.ModelRef.parse("s3-detector@champion", "champion"), tmp_path / "pulled")
        assert pulled.version == str(mv.version)
        assert hashlib.sha256(pulled.weights.read_bytes()).digest() == hashlib.sha256(tiny_checkpoint.read_bytes()).digest()

        model = mlflow.pyfunc.load_model("models:/s3-detector@champion")
        image = next((tiny_checkpoint.parent / "data" / "images" / "val").glob("*.jpg"))
        out = model.predict(pd.DataFrame({"image": [str(image)]}))
        assert list(out.columns) == ["image", "class", "conf", "x0", "y0", "x1", "y1"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
