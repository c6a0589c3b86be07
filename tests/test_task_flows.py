"""Issue 28's done-when: a segment, a pose and an obb model each go the whole way, as a user runs it
(``edgeslim demo -S baseline.task=...``): the embedded set for the task, its baseline trained and
registered, compressed and gated on the task's own metric, published, and one device paged.

Why its own MLflow server: the session's server is restored from the champion's seed store when a
module first asks for the champion, which would drop what these runs registered. The runs are small
(the TASK settings below), each its own xdist unit, so the two workers share them.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import SessionServer, run_cli, write_params
from mlflow import MlflowClient

from edgeslim.config import load_params
from edgeslim.lineage import METRIC_TAG, TASK_TAG
from edgeslim.ultra import YOLO

# The tiny settings (conftest.TINY) on half the training images: a task model's loss (masks,
# keypoints, angles) costs more per image than a detector's. The flow is under test here, not how deep
# a cut keeps a 30-epoch model's mAP (a mask mAP near 0.02, whose ratios move by +-20% run to run), so
# the cut is light: with TINY's 40% a segment run once ended at 0.930 of its source and published nothing.
TASK = {
    "dataset": {"splits": {"train": 128, "val": 32, "calib_pool": 16}},
    "calibration": {"num_images": 8},
    "prune": {"target_macs_reduction": 0.25, "finetune": {"epochs": 10, "patience": 10}},
    # The gate still computes real mAPs, at a bar a 30-epoch model's noise clears: an obb run once ended
    # at 0.935 of its source (bootstrap CI 0.78-1.15) where the same code had kept 1.109 the run before.
    "gates": {"min_map_ratio": 0.85},
}
LABELS = {"segment": "mask mAP50-95", "pose": "pose mAP50-95", "obb": "OBB mAP50-95"}
SHOWN = {"segment": "mAP50-95(M)", "pose": "mAP50-95(P)", "obb": "mAP50-95(B)"}  # ultralytics' results.csv names
NAMED = {"segment": "mask_map50_95", "pose": "pose_map50_95"}  # obb's is a box mAP: map50_95 names it


@pytest.fixture(scope="module")
def task_registry(tmp_path_factory: pytest.TempPathFactory):
    server = SessionServer(tmp_path_factory.mktemp("mlflow-tasks"))
    yield server.url
    server.stop()


@pytest.mark.slow
@pytest.mark.own_unit
@pytest.mark.parametrize("task", ("segment", "pose", "obb"))
def test_a_task_model_goes_from_its_data_to_a_device(task: str, task_registry: str, tmp_path: Path):
    model = f"pcb-{task}"
    extra = {**TASK, "model_name": model, "baseline": {"task": task}, "fleet": {"demo": {"enabled": True}}}
    params = write_params(tmp_path / "params.yaml", tmp_path / "ws", extra)
    result = run_cli("demo", "--params", str(params), env_extra={"MLFLOW_TRACKING_URI": task_registry}, ephemeral=True)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())

    # Scored and gated on the task's own metric, named so in the report, the stage table and MLflow.
    assert report["details"]["metric"]["label"] == LABELS[task] and report["details"]["metric"]["task"] == task
    stages = {s["name"]: s for s in report["stages"]}
    assert f"| stage | {LABELS[task]} |" in result.stderr and f"| format | {LABELS[task]} |" in result.stderr  # the report, as logged
    assert f"val {SHOWN[task]} " in result.stderr  # the finetune's line, in ultralytics' name for the metric
    assert all(gate["passed"] for gate in report["gates"].values()), report["gates"]
    for name in ("baseline", "finetuned", "onnx-fp32", "onnx-int8"):
        assert stages[name]["map50_95"] > 0, name  # the figures compared are not zeros
        assert (stages[name]["box_map50_95"] is None) == (task == "obb"), name  # box mAP beside a mask or pose mAP
    published = report["published"]
    assert published["model"] == f"{model}-edge"
    client = MlflowClient(task_registry, task_registry)
    version = client.get_model_version(published["model"], published["version"])
    assert version.tags[TASK_TAG] == task and version.tags[METRIC_TAG] == LABELS[task]
    run = client.get_run(version.tags["edgeslim.run_id"])
    assert run.data.tags[METRIC_TAG] == LABELS[task] and run.data.metrics["onnx-int8.map50_95"] == stages["onnx-int8"]["map50_95"]
    if task in NAMED:  # and under the metric's own name, as a chart in the MLflow UI shows it
        assert run.data.metrics[f"onnx-int8.{NAMED[task]}"] == stages["onnx-int8"]["map50_95"]

    # The demo device took it: its golden set (every output: a segment model's protos too) and smoke test passed.
    rollout = report["details"]["rollout"]
    assert rollout["rollout"]["updated"] == ["demo-device-1"] and not rollout["rollout"]["failed"], rollout
    device_log = (tmp_path / "ws" / "fleet" / "devices" / "demo-device-1.log").read_text()
    assert f"({task}, sequence 1)" in device_log and '"golden_error": ' in device_log

    if task == "segment":  # read back as a user would: ultralytics' own validator on the published file
        uri = client.get_model_version_download_uri(published["model"], published["version"])  # the registry's own record of it
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "published"), tracking_uri=task_registry))
        preferred = version.tags["edgeslim.formats"].split(",")[0]
        onnx = local / "artifacts" / Path(stages[preferred]["artifact"]).name
        p = load_params(params)
        data = report["details"]["dataset"]["data_yaml"]
        size = report["details"]["source"]["imgsz"]
        theirs = YOLO(str(onnx)).val(data=data, imgsz=size, batch=1, conf=p.evaluate.conf, iou=p.evaluate.iou, rect=False, device="cpu",
                                     plots=False, verbose=False, project=str(tmp_path / "val"), workers=0)  # fmt: skip
        assert theirs.seg.map == pytest.approx(stages[preferred]["map50_95"], abs=1e-6)
        assert theirs.box.map == pytest.approx(stages[preferred]["box_map50_95"], abs=1e-6)
