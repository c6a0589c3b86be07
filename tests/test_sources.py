"""Bring your own model: the ways an ultralytics detector reaches MLflow, each resolved to a checkpoint,
tested against what the real clients write (ultralytics' own `yolo detect train` with its MLflow
callback on, `mlflow.pytorch.log_model`), and bad input as one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from conftest import NO_PRUNE, REPO, error_line, run_cli, ultralytics_style_data_yaml
from mlflow import MlflowClient
from test_e2e import registry_snapshot

from edgeslim.config import load_params
from edgeslim.dag.source import bind_source, check_input_size, image_size, run_size
from edgeslim.errors import CheckpointError, RegistryError
from edgeslim.models.checkpoint import class_names, load_checkpoint
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.references import parse_source
from edgeslim.registry.sources import EXPORTED, checkpoint_in, pull

RUN = "0123456789abcdef0123456789abcdef"
USER_IMGSZ = 96  # the user's own training size: neither the tests' 128 nor params.yaml's 160


@pytest.mark.parametrize(
    "text, expected",
    [
        ("det", {"registered": reg.ModelRef("det", "champion")}),
        ("det@prod", {"registered": reg.ModelRef("det", "prod")}),
        ("det:3", {"registered": reg.ModelRef("det", None, "3")}),
        ("models:/det@prod", {"registered": reg.ModelRef("det", "prod")}),
        ("models:/det/3", {"registered": reg.ModelRef("det", None, "3")}),
        (f"runs:/{RUN}/weights/best.pt", {"run_id": RUN, "artifact_path": "weights/best.pt"}),
        (f"runs:/{RUN}/weights/", {"run_id": RUN, "artifact_path": "weights"}),
    ],
)
def test_source_references(text: str, expected: dict):
    source = parse_source(text, "champion")
    assert {k: getattr(source, k) for k in expected} == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("runs:/abc/weights", "is not runs:/<32-hex run id>/<artifact path>"),
        ("models:/det", "is not models:/NAME@ALIAS or models:/NAME/VERSION"),
        ("bad/ref", "is not NAME, NAME@ALIAS or NAME:VERSION"),
        ("missing/best.pt", "does not exist"),
    ],
)
def test_bad_source_references(text: str, message: str):
    with pytest.raises((RegistryError, CheckpointError), match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_source(text, "champion")


def test_a_folder_of_checkpoints_prefers_best_then_last_and_names_the_candidates(tiny_checkpoint: Path, tmp_path: Path):
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("last.pt", "best.pt", "epoch3.pt"):
        (folder / name).write_bytes(tiny_checkpoint.read_bytes())
    assert checkpoint_in(folder, "run x", tmp_path).name == "best.pt"
    (folder / "best.pt").unlink()
    assert checkpoint_in(folder, "run x", tmp_path).name == "last.pt"
    (folder / "last.pt").unlink()
    (folder / "epoch7.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"several checkpoints and none is best.pt or last.pt: epoch3.pt, epoch7.pt"):
        checkpoint_in(folder, "run x", tmp_path)


def test_pt2_program_is_a_clear_error_that_says_how_to_log_the_model(tmp_path: Path):
    (tmp_path / "m" / EXPORTED).parent.mkdir(parents=True)
    (tmp_path / "m" / EXPORTED).write_bytes(b"pt2")
    (tmp_path / "m" / "MLmodel").write_text("flavors: {pytorch: {model_data: data}}\n")
    with pytest.raises(CheckpointError, match=r"pt2 \(torch.export\) program.*serialization_format='pickle'.*edgeslim register"):
        checkpoint_in(tmp_path / "m", "det version 1", tmp_path)


def test_mlflow_pytorch_pickle_is_re_saved_as_an_ultralytics_checkpoint(tiny_checkpoint: Path, tmp_path: Path):
    import mlflow.pytorch

    _, model = load_checkpoint(tiny_checkpoint)
    mlflow.pytorch.save_model(model, str(tmp_path / "logged"), serialization_format="pickle")
    weights = checkpoint_in(tmp_path / "logged", "det version 1", tmp_path)
    _, back = load_checkpoint(weights)
    assert class_names(back) == class_names(model)
    x = torch.zeros(1, 3, 64, 64)
    assert torch.equal(back(x)[0], model(x)[0])


def _bad_model(kind: str, tiny_checkpoint: Path, folder: Path) -> tuple[Path, str]:
    """A file that is not a compressible detector, and what the error must say about it."""
    from ultralytics.nn.tasks import ClassificationModel, PoseModel, SegmentationModel

    path = folder / f"{kind}.pt"
    ckpt, model = load_checkpoint(tiny_checkpoint)
    if kind == "state_dict":
        torch.save(model.state_dict(), path)
        return path, "holds a state dict"
    if kind == "plain_module":
        torch.save({"model": torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))}, path)
        return path, "holds a Sequential module, not an ultralytics detection model"
    if kind == "segment":  # the model is fine; the data has no polygons for it (data_checks below)
        torch.save({"model": SegmentationModel("yolov8n-seg.yaml", nc=5, verbose=False)}, path)
        return path, "is a segment model, but the dataset's labels are boxes"
    if kind == "pose":  # ultralytics' default 17 keypoints, on data labelled with the embedded set's 4 corners
        torch.save({"model": PoseModel("yolov8n-pose.yaml", nc=5, verbose=False)}, path)
        return path, "predicts keypoints of shape [17, 3], but the dataset's kpt_shape is [4, 3]"
    if kind == "classify":
        torch.save({"model": ClassificationModel("yolov8n-cls.yaml", nc=5, verbose=False)}, path)
        return path, "is a classify model (one label per image, no boxes)"
    if kind == "truncated":
        path.write_bytes(tiny_checkpoint.read_bytes()[:2000])
        return path, "is corrupt or not a PyTorch file"
    if kind == "onnx_without_metadata":
        path = path.with_suffix(".onnx")
        import onnx
        from onnx import TensorProto, helper

        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
        y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 64, 64])
        onnx.save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g", [x], [y])), path)
        return path, "records no stride or class names (ultralytics' export metadata)"
    raise AssertionError(kind)


BAD_KINDS = ["state_dict", "plain_module", "classify", "truncated", "onnx_without_metadata", "stride"]


def _bad_source(kind: str, tiny_checkpoint: Path, tmp_path: Path) -> tuple[Path, str, int | None]:
    """A model file that is not a compressible detector, the reason the CLI must give, and compress.imgsz."""
    if kind == "stride":  # a real detector, asked for a size its stride 32 does not divide
        return tiny_checkpoint, "image size 100 is not a multiple of the model's stride 32", 100
    size = 64 if kind in ("segment", "pose") else None  # an untrained model records no size of its own
    return (*_bad_model(kind, tiny_checkpoint, tmp_path), size)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_what_is_not_a_compressible_detector_is_refused_before_any_flow(kind: str, tiny_checkpoint: Path, tmp_path: Path):
    """The checks `edgeslim compress` runs on a local model before MLflow, Prefect or a download."""
    from edgeslim.dag.source import source_facts
    from edgeslim.errors import EdgeslimError

    path, message, imgsz = _bad_source(kind, tiny_checkpoint, tmp_path)
    source = parse_source(str(path), "champion")
    with pytest.raises(EdgeslimError, match=message.replace("(", r"\(").replace(")", r"\)")):
        source_facts(source.file, imgsz)


@pytest.mark.parametrize("kind", ["segment", "pose", "classify", "stride"])
def test_the_cli_says_so_in_one_line_and_changes_nothing(
    kind: str, champion: str, params_file: Path, tiny_checkpoint: Path, tmp_path: Path
):
    """Through the real CLI (a segment model on box labels; a pose model whose keypoints are not the pose
    data's; a classifier; a size the model's stride refuses): one ``edgeslim: error:`` line, exit 2, the
    registry as it was."""
    path, message, imgsz = _bad_source(kind, tiny_checkpoint, tmp_path)
    knobs = (("-S", f"compress.imgsz={imgsz}") if imgsz else ()) + (("-S", "baseline.task=pose") if kind == "pose" else ())
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    result = run_cli("compress", "--model", str(path), "--params", str(params_file), *knobs, env_extra={"MLFLOW_TRACKING_URI": champion})
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in error_line(result)
    assert registry_snapshot(client) == before


def test_an_ambiguous_run_folder_names_its_candidates_before_anything_downloads(champion: str, params_file: Path, tmp_path: Path):
    client = MlflowClient(champion, champion)
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    for name in ("epoch3.pt", "epoch7.pt"):
        (tmp_path / name).write_bytes(b"not read: the listing decides")
        client.log_artifact(run.info.run_id, str(tmp_path / name), "ckpts")
    before = registry_snapshot(client)
    result = run_cli(
        "compress", "--model", f"runs:/{run.info.run_id}/ckpts", "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": champion}
    )
    assert result.returncode == 2, result.stderr[-2000:]
    line = error_line(result)
    assert "holds several checkpoints and none is best.pt or last.pt: epoch3.pt, epoch7.pt" in line and "runs:/<run_id>/<path>" in line
    assert registry_snapshot(client) == before


def _yolo_env(tmp: Path, tracking_uri: str, experiment: str) -> dict[str, str]:
    """ultralytics' CLI with its MLflow callback on, against the test's server, settings in a temp dir.

    The callback stays silent under pytest (it checks PYTEST_CURRENT_TEST), as a user's run is not.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(
        YOLO_CONFIG_DIR=str(tmp / "yolo-config"), MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_EXPERIMENT_NAME=experiment, YOLO_OFFLINE="1"
    )
    return env


@pytest.fixture(scope="module")
def ultralytics_run(champion: str, params_file: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`yolo detect train` (a subprocess, ultralytics' own CLI and MLflow integration) finetunes the
    champion one epoch at USER_IMGSZ; returns the MLflow run id it logged weights/best.pt under."""
    from edgeslim import workspace

    tmp = tmp_path_factory.mktemp("yolo-cli")
    p = load_params(params_file)
    data = workspace.dataset(p, progress=False)
    start = pull(reg.connect(champion), reg.ModelRef(p.model_name, "champion"), tmp / "champion").weights
    yolo = str(Path(sys.executable).with_name("yolo"))
    env = _yolo_env(tmp, champion, "ultralytics-users")
    subprocess.run([yolo, "settings", "mlflow=True", "sync=False", f"runs_dir={tmp / 'runs'}"], env=env, check=True, capture_output=True)
    train = [yolo, "detect", "train", f"model={start}", f"data={data.data_yaml}", f"imgsz={USER_IMGSZ}", "epochs=1", "batch=16",
             "workers=0", "device=cpu", "plots=False", f"project={tmp / 'runs'}", "name=user", "exist_ok=True", "amp=False"]  # fmt: skip
    result = subprocess.run(train, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(champion)
    exp = client.get_experiment_by_name("ultralytics-users")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].data.params["imgsz"] == str(USER_IMGSZ)
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "weights")} >= {"weights/best.pt", "weights/last.pt"}
    return runs[0].info.run_id


@pytest.mark.slow
def test_ultralytics_cli_run_compresses_at_its_own_image_size(champion: str, params_file: Path, ultralytics_run: str):
    result = run_cli(
        "compress", "--model", f"runs:/{ultralytics_run}/weights/best.pt", "--params", str(params_file), *NO_PRUNE,
        env_extra={"MLFLOW_TRACKING_URI": champion},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert report["published"]["model"] == "pcb-detector-edge" and report["gates"]["map_ratio"]["passed"]
    assert report["details"]["source"]["imgsz"] == USER_IMGSZ and report["details"]["source"]["imgsz_from"] == "checkpoint"
    import onnxruntime as ort

    int8 = next(s for s in report["stages"] if s["name"] == "onnx-int8")["artifact"]
    assert ort.InferenceSession(int8, providers=["CPUExecutionProvider"]).get_inputs()[0].shape[-2:] == [USER_IMGSZ, USER_IMGSZ]


@pytest.mark.slow
def test_register_a_run_artifact_then_compress_it_by_alias(champion: str, params_file: Path, ultralytics_run: str):
    result = run_cli(
        "register", f"runs:/{ultralytics_run}/weights", "--name", "user-detector", "--alias", "champion", "--params", str(params_file),
        env_extra={"MLFLOW_TRACKING_URI": champion},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(champion, champion)
    mv = client.get_model_version_by_alias("user-detector", "champion")
    assert mv.tags["edgeslim.training_run_id"] == ultralytics_run and mv.tags["edgeslim.registered_from"].endswith("/weights")
    reg.connect(champion)  # models:/ URIs resolve against the registry URI
    local = Path(mlflow.artifacts.download_artifacts(f"models:/user-detector/{mv.version}/MLmodel"))
    assert "signature" in yaml.safe_load(local.read_text())


def test_a_missing_run_artifact_is_one_line_and_changes_nothing(champion: str, params_file: Path):
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    result = run_cli(
        "compress", "--model", f"runs:/{RUN}/weights/best.pt", "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": champion}
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"run {RUN} has no artifact 'weights/best.pt'" in error_line(result)
    assert registry_snapshot(client) == before


def test_image_size_comes_from_the_checkpoint_unless_set_and_must_fit_the_stride(tiny_checkpoint: Path):
    p = load_params(REPO / "params.yaml")
    bound, facts = bind_source(p, tiny_checkpoint)
    assert bound.compress.imgsz == 128 and facts["imgsz_from"] == "checkpoint" and facts["stride"] == 32
    assert p.compress.imgsz is None, "binding returns new params"
    bound, facts = bind_source(load_params(REPO / "params.yaml", ["compress.imgsz=64"]), tiny_checkpoint)
    assert bound.compress.imgsz == 64 and facts["imgsz_from"] == "params"
    with pytest.raises(CheckpointError, match="image size 100 is not a multiple of the model's stride 32"):
        bind_source(load_params(REPO / "params.yaml", ["compress.imgsz=100"]), tiny_checkpoint)
    bound, _ = bind_source(load_params(REPO / "params.yaml", ["compress.input_size=96"]), tiny_checkpoint)
    assert (bound.compress.imgsz, run_size(bound), image_size(bound)) == (128, 96, 128)  # the source still scored at its own
    onnx_source = {"format": "onnx", "imgsz": 128, "stride": 32}
    check_input_size(128, onnx_source)
    with pytest.raises(CheckpointError, match="an ONNX source runs at its own 128 px"):
        check_input_size(96, onnx_source)


def test_published_edge_model_is_usable_without_edgeslim(champion: str, published, params_file: Path, tmp_path: Path):
    """The INT8 ONNX through ultralytics alone (val within 0.002 of the report, the dataset's names), and
    the registered version through mlflow.pyfunc in a process where edgeslim cannot be imported."""
    _, report = published
    p = load_params(params_file)
    data, version = report["details"]["dataset"], report["published"]
    int8 = next(s for s in report["stages"] if s["name"] == "onnx-int8")
    image = sorted((Path(data["root"]) / "images" / "val").glob("*.jpg"))[0]
    code = f"""
import sys
sys.modules["edgeslim"] = None  # a consumer without edgeslim
import mlflow, mlflow.pyfunc, pandas as pd
from ultralytics import YOLO
model = YOLO({int8["artifact"]!r}, task="detect")
metrics = model.val(data={data["data_yaml"]!r}, imgsz={report["details"]["input"]["input_size"]}, batch=1, rect=False, conf={p.evaluate.conf},
                    iou={p.evaluate.iou}, workers=0, plots=False, verbose=False, project={str(tmp_path)!r})
names = model.predict({str(image)!r}, verbose=False)[0].names
pyfunc = mlflow.pyfunc.load_model("models:/{version["model"]}/{version["version"]}")
rows = pyfunc.predict(pd.DataFrame({{"image": [{str(image)!r}]}}))
import json
print(json.dumps({{"map50_95": float(metrics.box.map), "names": [names[i] for i in sorted(names)], "classes": sorted(set(rows["class"]))}}))
"""
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion, "YOLO_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = eval(result.stdout.strip().splitlines()[-1])
    assert abs(out["map50_95"] - int8["map50_95"]) <= 0.002, out
    assert out["names"] == data["names"] and set(out["classes"]) <= set(data["names"])
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"models:/{version['model']}/{version['version']}/requirements.txt", tracking_uri=champion)
    )
    assert "edgeslim" not in requirements.read_text() and "ultralytics==" in requirements.read_text()


@pytest.mark.slow
def test_an_onnx_model_runs_only_the_onnx_steps_and_publishes(champion: str, published, params_file: Path):
    """The demo's FP32 ONNX as a user's ONNX source: calibration, INT8, evaluation and the gates run;
    the torch steps are skipped, each with its reason in the report."""
    _, demo = published
    fp32 = next(s for s in demo["stages"] if s["name"] == "onnx-fp32")
    result = run_cli("compress", "--model", fp32["artifact"], "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": champion})
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert report["details"]["source"]["format"] == "onnx" and report["details"]["source"]["imgsz"] == demo["details"]["source"]["imgsz"]
    skipped = report["details"]["skipped_steps"]
    assert all("ONNX model" in skipped[name] for name in ("fuse", "prune", "finetune", "export")), skipped
    assert [s["name"] for s in report["stages"]] == ["baseline", "onnx-int8"]
    assert abs(report["stages"][0]["map50_95"] - fp32["map50_95"]) < 1e-6, "the source is scored as the demo scored it"
    assert report["gates"]["map_ratio"]["passed"] and report["published"]["model"] == "pcb-detector-edge"
    assert "**Skipped steps**" in result.stderr and "(an ONNX model)" in result.stderr  # the report, as the flow logs it


@pytest.mark.slow
def test_an_mlflow_pytorch_pickled_version_publishes(champion: str, params_file: Path, tmp_path: Path):
    """A version logged the way an mlflow.pytorch user logs one (pickle), compressed at its training size..."""
    import mlflow.pytorch

    from edgeslim import workspace

    p = load_params(params_file)
    _, model = load_checkpoint(pull(reg.connect(champion), reg.ModelRef(p.model_name, "champion"), tmp_path).weights)
    mlflow.set_experiment("pytorch-users")
    with mlflow.start_run():
        mlflow.pytorch.log_model(model, name="model", serialization_format="pickle", registered_model_name="pcb-pytorch")
    # ... on the user's own data.yaml: path:, a list of train folders, a .txt val list, no calib_pool
    data_yaml = ultralytics_style_data_yaml(Path(shutil.copytree(workspace.dataset(p).root, tmp_path / "data")), tmp_path / "cfg")
    result = run_cli(
        "compress", "--model", "models:/pcb-pytorch/1", "--params", str(params_file), *NO_PRUNE, "-S", f"dataset.data_yaml={data_yaml}",
        env_extra={"MLFLOW_TRACKING_URI": champion},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert report["details"]["calibration"]["pool_images"] == p.dataset.splits.train + p.dataset.splits.calib_pool  # from train
    assert report["details"]["source"]["imgsz"] == p.baseline.imgsz and report["details"]["source"]["imgsz_from"] == "checkpoint"
    assert report["gates"]["map_ratio"]["passed"] and report["published"]["model"] == "pcb-detector-edge"
