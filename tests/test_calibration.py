"""Calibration-set curation on a real (small) synthetic pool and a real ONNX model; no registry, no Prefect.

The model is the untrained tiny checkpoint: curation needs its backbone features and, for an
unlabelled folder, its detections; neither has to be good for the selection logic to be checked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from edgeslim.calibration.curate import MANIFEST_NAME, PLOT_NAME, build_calibration_set, select_calibration_set
from edgeslim.calibration.pool import measure_pool
from edgeslim.calibration.probe import ModelProbe
from edgeslim.calibration.select import CENTER, DIVERSITY, curate
from edgeslim.config import load_params
from edgeslim.data.synthetic import generate_dataset
from edgeslim.errors import DataError
from edgeslim.export.onnx_export import export_onnx

IMGSZ = 128
POOL = 30
K = 12


@pytest.fixture(scope="module")
def setup(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("calibration")
    p = load_params(
        REPO / "params.yaml",
        [
            f"dataset.splits={{train: 1, val: 1, calib_pool: {POOL}}}",
            "dataset.image_size=160",
            "dataset.object_size=[16,48]",
            f"calibration.num_images={K}",
            "calibration.min_per_stratum=1",
        ],
    )
    data = generate_dataset(p.dataset, tmp / "data", progress=False)
    fp32 = export_onnx(tiny_checkpoint, IMGSZ, p.export.opset, tmp / "fp32.onnx")
    probe = ModelProbe(fp32, len(data.names), "detect", p.calibration.pred_conf, p.calibration.pred_iou, p.evaluate.threads)
    pool = data.root / "images" / "calib_pool"
    return p, data, fp32, probe, pool, tmp


def test_curated_set_covers_every_stratum_and_class(setup):
    p, data, fp32, _, pool, tmp = setup
    cs = build_calibration_set(pool, fp32, IMGSZ, data.names, "detect", p.calibration, tmp / "curated", p.evaluate.threads)
    selected, random = cs.report["coverage"]["selected"], cs.report["coverage"]["random"]
    assert cs.report["objects_from"] == "labels" and len(cs.images) == K == len(set(cs.images))
    assert selected["strata_covered"] == selected["strata_total"] and not selected["missed_strata"]
    assert selected["strata_covered"] >= random["strata_covered"]
    assert selected["mean_range_coverage"] >= random["mean_range_coverage"]
    pool_classes = {k for k in selected["per_stratum"] if k.startswith("class:")}
    assert pool_classes and all(selected["per_stratum"][k] >= 1 for k in pool_classes)

    manifest = json.loads(cs.manifest.read_text())
    assert cs.manifest.name == MANIFEST_NAME and (tmp / "curated" / PLOT_NAME).stat().st_size > 0
    assert [Path(e["path"]) for e in manifest["images"]] == cs.images
    for entry in manifest["images"]:
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
        assert set(entry["stats"]) >= {"brightness", "contrast", "sharpness", "objects", "object_size", "class_counts"}
        assert set(entry["stratum"]) >= {"brightness", "sharpness", "objects", "classes"} and entry["reason"]
    assert manifest["images"][0]["reason"] == CENTER
    # Coverage picks come first, diversity picks fill the rest.
    reasons = [e["reason"] for e in manifest["images"][1:]]
    assert reasons[0].startswith("covers ") and reasons == sorted(reasons, key=lambda r: r == DIVERSITY)
    assert len(cs.sha256) == 64


def test_curation_is_deterministic(setup):
    p, data, _, probe, pool, tmp = setup
    first = select_calibration_set(measure_pool(pool, probe, IMGSZ, len(data.names), "detect"), data.names, p.calibration, tmp / "a")
    second = select_calibration_set(measure_pool(pool, probe, IMGSZ, len(data.names), "detect"), data.names, p.calibration, tmp / "b")
    assert first.images == second.images and first.sha256 == second.sha256
    assert json.loads(first.manifest.read_text())["images"] == json.loads(second.manifest.read_text())["images"]


def test_unlabelled_folder_uses_the_models_detections(setup):
    p, data, _, probe, pool, tmp = setup
    folder = tmp / "plain-folder"
    folder.mkdir()
    for image in sorted(pool.glob("*.jpg"))[:K]:
        shutil.copy(image, folder / image.name)
    measured = measure_pool(folder, probe, IMGSZ, len(data.names), "detect")
    assert measured.objects_from == "predictions" and len(measured.images) == K
    cs = select_calibration_set(measured, data.names, p.calibration, tmp / "plain")
    assert sorted(cs.images) == sorted(folder.glob("*.jpg"))  # K of K: the whole folder


def test_empty_unreadable_or_small_pool_is_a_clear_error(setup):
    p, data, _, probe, pool, tmp = setup
    empty = tmp / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no images"):
        measure_pool(empty, probe, IMGSZ, len(data.names), "detect")
    with pytest.raises(DataError, match="does not exist"):
        measure_pool(tmp / "missing", probe, IMGSZ, len(data.names), "detect")
    broken = tmp / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="none of its 3 image files can be read"):
        measure_pool(broken, probe, IMGSZ, len(data.names), "detect")
    shutil.copy(next(pool.glob("*.jpg")), broken / "good.jpg")
    measured = measure_pool(broken, probe, IMGSZ, len(data.names), "detect")
    assert len(measured.images) == 1 and len(measured.skipped) == 3
    with pytest.raises(DataError, match=f"calibration wants {K} images but pool .* has only 1 readable"):
        select_calibration_set(measured, data.names, p.calibration, tmp / "small")


def test_kcenter_fills_quotas_then_spreads_out():
    # A tight cluster at the origin (one image of it is the only "rare" one) and three far images.
    embeddings = np.array([[0.0, 0.0], [0.2, 0.0], [0.0, 0.2], [4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
    strata = [frozenset({"a"}), frozenset({"a"}), frozenset({"a", "rare"}), frozenset({"b"}), frozenset({"b"}), frozenset({"b"})]
    picks = curate(embeddings, strata, k=4, min_per_stratum=1)
    assert [(pk.index, pk.reason) for pk in picks] == [
        (0, CENTER),  # nearest the mean embedding
        (5, "covers b"),  # fills a quota; among the candidates, the farthest from what is picked
        (2, "covers rare"),  # the only image of its stratum, although it is a near-duplicate
        (3, DIVERSITY),  # then k-center greedy: the image farthest from every pick
    ]
