"""Every model family params.yaml's `baseline.arch` comment names trains as the baseline.

Why: ultralytics' YOLOv9 yamls have no `scales` section, and a family that only fails once the
baseline stage runs is found late; each family here is built by the product's own path
(`train_baseline`) and trained for one epoch on a generated dataset small enough for CI's two cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO
from ultralytics.nn.modules import CBLinear

from edgeslim.baseline.train import train_baseline
from edgeslim.config import ConfigError, Params, load_params
from edgeslim.data.synthetic import generate_dataset
from edgeslim.models.arch import write_arch_yaml
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.models.dual import build_detection_model

FAMILIES = ("yolov8", "yolo11", "yolov9t", "yolov9-dual")  # as params.yaml's `baseline.arch` comment names them
# The smallest run that still goes through ultralytics' whole train → validate → save path.
TINY_DATA = ("dataset.splits={train: 16, val: 8, calib_pool: 8}", "dataset.image_size=128", "dataset.object_size=[16,48]")
ONE_EPOCH = ("baseline.imgsz=64", "baseline.batch=8", "baseline.epochs=1", "baseline.warmup_epochs=0")


def tiny_params(arch: str) -> Params:
    return load_params(REPO / "params.yaml", [*TINY_DATA, *ONE_EPOCH, f"baseline.arch={arch}"])


def layer_widths(layers: torch.nn.Sequential) -> list[int]:
    """Output widths of every convolution; a CBLinear's one convolution emits all its splits at once."""
    splits = [c for layer in layers if isinstance(layer, CBLinear) for c in layer.c2s]
    convs = [m for layer in layers if not isinstance(layer, CBLinear) for m in layer.modules() if isinstance(m, torch.nn.Conv2d)]
    return splits + [conv.out_channels for conv in convs]


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated dataset for every family (the dataset params do not depend on the arch)."""
    return generate_dataset(tiny_params(FAMILIES[0]).dataset, tmp_path_factory.mktemp("data"), progress=False).data_yaml


@pytest.mark.parametrize("arch", FAMILIES)
def test_family_trains_to_a_loadable_checkpoint(arch: str, data_yaml: Path, tmp_path: Path):
    p = tiny_params(arch)
    result = train_baseline(p.baseline, p.evaluate, data_yaml, len(p.dataset.classes), tmp_path)
    _, model = load_checkpoint(result.weights)
    assert model.names == dict(enumerate(p.dataset.classes))
    assert list(model.yaml["scales"].values()) == [list(p.baseline.scale)], "baseline.scale is the model's one scale"
    assert result.epochs_run == 1


def test_unknown_arch_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"baseline\.arch: .*unknown architecture 'yolov99'") as err:
        tiny_params("yolov99")
    assert all(arch in str(err.value) for arch in FAMILIES), "the message lists the accepted names"


def test_scale_reaches_every_width_of_a_yaml_without_scales(tmp_path: Path):
    """yolov9e: no `scales`, unscaled GELAN hidden widths and CBLinear splits in the stock yaml."""
    p = tiny_params("yolov9e").baseline
    _, width, max_channels = p.scale
    model = build_detection_model(write_arch_yaml(p, 1, tmp_path), nc=1).eval()
    assert max(layer_widths(model.model[:-1])) <= max_channels * width  # the Detect head has width floors of its own
    with torch.no_grad():
        model(torch.zeros(1, 3, p.imgsz, p.imgsz))  # CBLinear splits match the scaled layers CBFuse adds them to
