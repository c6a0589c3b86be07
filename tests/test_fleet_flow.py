"""The real compress flow pages the fleet after publishing, and `edgeslim demo` shows a device taking
the model. Reuses the session's trained champion (conftest) instead of training again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import NO_PRUNE, run_cli
from fleet_support import AgentProcess, fleet_params
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.settings import PREFECT_API_URL, temporary_settings

EDGE = "pcb-detector-edge"


def _set(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("-S", o)]


STAGED = (
    "fleet.rollout.stages=[{name: canary, percent: 50, min_devices: 1, soak_s: 0, success: 1, abort: 0.5, min_reports: 1},"
    " {name: all, percent: 100, min_devices: 1, soak_s: 0, success: 1, abort: 0.5, min_reports: 1}]"
)


@pytest.mark.slow
def test_compress_flow_rolls_out_in_stages_after_publishing(champion, params_file, prefect_api, broker, s3, keys, tmp_path):
    """The flow's page step with a staged plan: the real detector's golden set checked on the device, a
    Prefect table artifact per stage, and @production moved when the rollout completed. (The demo run
    covers the flow's page to the whole group at once.)"""
    p, overrides = fleet_params(broker, s3, keys, "flow", "fleet.rollout.devices=[cam-flow]", "fleet.rollout.report_timeout_s=60", STAGED)
    agent = AgentProcess("cam-flow", tmp_path / "cam-flow", keys, overrides)
    try:
        # pruning is covered by the session's demo run; this run is about paging
        result = run_cli(
            "compress", "--force", "--params", str(params_file), *NO_PRUNE, *_set(overrides), env_extra={"MLFLOW_TRACKING_URI": champion}
        )
        assert result.returncode == 0, result.stderr[-4000:]
        report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
        rollout = report["details"]["rollout"]
        staged = rollout["staged"]
        assert staged["state"] == "completed", staged
        assert [(s["name"], s["devices"], s["verdict"]) for s in staged["stages"]] == [
            ("canary", ["cam-flow"], "passed"),
            ("all", [], "skipped"),
        ]
        assert rollout["version"] == report["published"]["version"] and "page" in report["timings_s"]
        # The manifest lists the target's gated formats preferred first (measured where the CPU matches x86-avx2,
        # else the profile's order); the agent takes the first it runs (both, by fleet.agent.formats).
        shipped = [s["format"] for s in report["details"]["target"]["shipped"]]
        assert list(rollout["artifacts"]) == shipped and set(shipped) == {"onnx-fp32", "onnx-int8"}
        assert_serving_registered(tmp_path / "cam-flow", rollout["artifacts"][shipped[0]])
        assert staged["stages"][0]["golden_error_max"] <= p.fleet.golden.tolerance  # the same runtime: the pipeline's outputs
        client = MlflowClient(champion, champion)
        mv = client.get_model_version(EDGE, report["published"]["version"])
        assert mv.tags["edgeslim.rollout.flow.outcome"] == "completed" and mv.tags["edgeslim.rollout.flow.stage.canary"].startswith(
            "passed"
        )
        assert client.get_model_version_by_alias(EDGE, "candidate").version == mv.version
        assert client.get_model_version_by_alias(EDGE, "production").version == mv.version
        with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as prefect:  # settings are read once
            tables = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["rollout-flow-canary"])))
        rows = json.loads(tables[0].data) if isinstance(tables[0].data, str) else tables[0].data
        assert [(r["device"], r["state"]) for r in rows] == [("cam-flow", "active")], rows
    finally:
        agent.stop()


def assert_serving_registered(state_dir: Path, sha: str) -> None:
    """The device runs the registered model ``sha`` (the real detector's shapes, not the tiny test ones)."""
    current = state_dir / "current"
    assert hashlib.sha256(current.read_bytes()).hexdigest() == sha
    session = ort.InferenceSession(str(current), providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    assert np.isfinite(session.run(None, {session.get_inputs()[0].name: np.zeros(shape, np.float32)})[0]).all()


def test_demo_starts_a_broker_and_an_agent_that_takes_the_candidate(published):
    result, report = published  # the session's demo run, with its local fleet on (conftest)
    assert report["published"]["version"], report
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("fleet: ") and "paged to group" in ln)
    assert "updated ['demo-device-1']" in line, result.stderr[-3000:]
