"""A registered dual-head (PGI) baseline goes through the real compress flow and ships single-head.

Training a dual model to a mAP the gates accept costs minutes on CI's two cores, so the dual baseline
here is grafted: the session's trained champion (yolov8 family) becomes the main branch, and a
PGI auxiliary branch (CBLinear taps of its backbone, CBFuse into an auxiliary backbone, an auxiliary
head) is added after it. That the flow keeps exactly the champion's network also shows that what is
stripped is derived from the graph: this topology is not yolov9-dual's. The dual trainer itself is
exercised on the tiny dataset below.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import mlflow
import pytest
import torch
from conftest import NO_PRUNE, REPO, run_cli
from ultralytics.nn.modules import CBFuse, CBLinear, Detect
from ultralytics.nn.tasks import DetectionModel

from edgeslim.baseline.train import train_baseline
from edgeslim.config import load_params
from edgeslim.dag.layout import Layout
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.models.dual import AUX_WEIGHT_KEY, DualDetectionModel
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.sources import pull

DUAL = "pcb-dual"
# PGI auxiliary branch for the yolov8 yaml (backbone P3/P4/P5 = layers 4, 6, 9; stem = layer 0),
# unscaled widths as in the family yaml; DualDetect(A3, A4, A5, P3, P4, P5).
AUX_ROWS = [
    [4, 1, "CBLinear", [[256]]],
    [6, 1, "CBLinear", [[256, 512]]],
    [9, 1, "CBLinear", [[256, 512, 1024]]],
    [0, 1, "Conv", [128, 3, 2]],
    [-1, 3, "C2f", [128, True]],
    [-1, 1, "Conv", [256, 3, 2]],
    [[22, 23, 24, -1], 1, "CBFuse", [[0, 0, 0]]],
    [-1, 6, "C2f", [256, True]],
    [-1, 1, "Conv", [512, 3, 2]],
    [[23, 24, -1], 1, "CBFuse", [[1, 1]]],
    [-1, 6, "C2f", [512, True]],
    [-1, 1, "Conv", [1024, 3, 2]],
    [[24, -1], 1, "CBFuse", [[2]]],
    [-1, 3, "C2f", [1024, True]],
]


def _graft(champion: DetectionModel, aux_weight: float) -> DualDetectionModel:
    """The champion as main branch of a dual-head model; its trained weights copied over."""
    cfg = copy.deepcopy(champion.yaml)
    main_head = cfg["head"].pop()
    cfg["head"] += AUX_ROWS + [[[29, 32, 35, *main_head[0]], 1, "DualDetect", [cfg["nc"], 3]]]
    cfg[AUX_WEIGHT_KEY] = aux_weight
    dual = DualDetectionModel(cfg, nc=cfg["nc"], verbose=False)
    head, dual_head = champion.model[-1].i, dual.model[-1].i
    state = {k.replace(f"model.{head}.", f"model.{dual_head}.", 1): v for k, v in champion.state_dict().items()}
    missing, unexpected = dual.load_state_dict(state, strict=False)
    assert not unexpected and all(int(k.split(".")[1]) >= head or ".aux." in k for k in missing), missing
    dual.names, dual.args = champion.names, champion.args
    return dual.eval()


@pytest.mark.slow
def test_compress_accepts_dual_head_baseline_and_publishes_single_head(champion: str, params_file: Path, tmp_path: Path):
    client = reg.connect(champion)
    pulled = pull(client, reg.ModelRef.parse("pcb-detector@champion", "champion"), tmp_path / "champion")
    ckpt, main = load_checkpoint(pulled.weights)
    p = load_params(params_file)
    dual = _graft(main, p.baseline.aux_loss_weight)
    weights = save_checkpoint(dual, ckpt, tmp_path / "dual.pt")
    mlflow.set_experiment(p.mlflow.experiment)
    with mlflow.start_run(run_name="dual baseline (grafted)"):
        reg.register(client, reg.log_weights_model(weights), DUAL, {"edgeslim.kind": "baseline"}, "champion")

    # its own edge model (<model_name>-edge), so the session's pcb-detector-edge versions stay the other tests'
    fast = ("-S", f"model_name={DUAL}", "-S", "calibration.num_images=8", "-S", "quantize.tensorrt.enabled=false")
    result = run_cli(
        "compress",
        "--params",
        str(params_file),
        "--model",
        f"{DUAL}@champion",
        *NO_PRUNE,
        *fast,
        env_extra={"MLFLOW_TRACKING_URI": champion},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report_path = Path(result.stdout.strip().splitlines()[-1])
    report = json.loads(report_path.read_text())
    fusion, gates = report["details"]["fusion"], report["gates"]
    assert fusion["params_before_strip"] == sum(p.numel() for p in dual.parameters())
    assert fusion["params_after_strip"] == sum(p.numel() for p in main.parameters()) < fusion["params_before_strip"]
    assert {"CBLinear", "CBFuse", "C2f", "DualDetect.aux"} <= set(fusion["strip"]["removed"].values())
    assert gates["equivalence"]["passed"] and gates["onnx_equivalence"]["passed"] and gates["map_ratio"]["passed"]
    # measured 1.6e-7 (boxes) to 7.7e-7 (decoded scores) on a trained model: a tenth of the gate's 1e-4 leaves
    # room for another CPU's float32 rounding; test_reparam holds the 1e-6 parity bar on tiny models
    assert report["details"]["equivalence"]["rel_l2"] <= 1e-5, report["details"]["equivalence"]
    assert set(report["details"]["equivalence"]["parts"]) == {"raw_boxes", "raw_scores", "decoded_boxes", "decoded_scores"}
    assert "auxiliary branch stripped" in result.stdout + result.stderr  # the stage table, as Prefect logs it
    assert report["published"]["model"] == f"{DUAL}{p.mlflow.edge_suffix}"

    _, shipped = load_checkpoint(Layout(report_path.parent).fused())
    assert type(shipped) is DetectionModel and type(shipped.model[-1]) is Detect
    assert not any(isinstance(m, (CBLinear, CBFuse)) for m in shipped.modules())
    stripped = load_checkpoint(Layout(report_path.parent).stripped())[1]
    for (name, a), (_, b) in zip(stripped.state_dict().items(), main.state_dict().items()):
        assert torch.equal(a, b), f"{name}: the stripped model is the champion's main branch, weight for weight"


def test_dual_trainer_trains_both_heads_from_params(tiny_checkpoint: Path, tmp_path: Path):
    data = tiny_checkpoint.parent / "data"
    p = load_params(
        REPO / "params.yaml",
        [
            "baseline.arch=yolov9-dual",
            "baseline.scale=[0.33, 0.125, 256]",
            "baseline.epochs=1",
            "baseline.imgsz=64",
            "baseline.batch=4",
            "baseline.warmup_epochs=0",
        ],
    )
    result = train_baseline(p.baseline, p.evaluate, data / "data.yaml", len(p.dataset.classes), tmp_path)
    _, model = load_checkpoint(result.weights)
    assert isinstance(model, DualDetectionModel) and model.yaml[AUX_WEIGHT_KEY] == p.baseline.aux_loss_weight
    untrained = DualDetectionModel(model.yaml, nc=model.yaml["nc"], verbose=False)
    for head in (model.model[-1], model.model[-1].aux):  # both heads learned (the auxiliary loss reaches its head)
        ref = untrained.model[-1] if head is model.model[-1] else untrained.model[-1].aux
        assert not torch.equal(head.cv3[0][-1].bias, ref.cv3[0][-1].bias.to(head.cv3[0][-1].bias.dtype))
