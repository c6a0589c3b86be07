import json

import numpy as np
from conftest import REPO, ultralytics_style_data_yaml

from edgeslim import workspace
from edgeslim.config import load_params
from edgeslim.data.splits import split_images, user_dataset_sha256
from edgeslim.data.synthetic import generate_dataset, render_scene

SMALL = ["dataset.splits={train: 24, val: 12, calib_pool: 24}", "dataset.image_size=160", "dataset.object_size=[16,48]"]


def test_same_seed_gives_byte_identical_files(tmp_path):
    p = load_params(REPO / "params.yaml", SMALL)
    a = generate_dataset(p.dataset, tmp_path / "a", progress=False)
    b = generate_dataset(p.dataset, tmp_path / "b", progress=False)
    assert a.sha256 == b.sha256
    files_a = sorted(f.relative_to(a.root) for f in a.root.rglob("*") if f.is_file())
    assert files_a == sorted(f.relative_to(b.root) for f in b.root.rglob("*") if f.is_file())
    for rel in files_a:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel


def test_other_seed_gives_other_data(tmp_path):
    a = generate_dataset(load_params(REPO / "params.yaml", SMALL).dataset, tmp_path / "a", progress=False)
    b = generate_dataset(load_params(REPO / "params.yaml", [*SMALL, "dataset.seed=7"]).dataset, tmp_path / "b", progress=False)
    assert a.sha256 != b.sha256


def test_layout_labels_and_metadata(tmp_path):
    p = load_params(REPO / "params.yaml", SMALL)
    info = generate_dataset(p.dataset, tmp_path / "d", progress=False)
    for split, count in p.dataset.splits.model_dump().items():
        images = sorted((info.root / "images" / split).glob("*.jpg"))
        labels = sorted((info.root / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == count
        meta = json.loads((info.root / "meta" / f"{split}.json").read_text())
        assert set(meta) == {i.name for i in images}
    for label in (info.root / "labels" / "train").glob("*.txt"):
        for line in label.read_text().splitlines():
            cls, *xywh = line.split()
            assert 0 <= int(cls) < len(p.dataset.classes)
            assert all(0.0 < float(v) <= 1.0 for v in xywh)


def test_conditions_cover_the_extremes():
    """Over a few hundred boards: dark and overexposed, blurred, occluded, sparse and dense, every class."""
    p = load_params(REPO / "params.yaml")
    metas, classes, brightness, saturated = [], set(), [], []
    for i in range(300):
        img, parts, meta = render_scene(p.dataset, "detect", 0, i)
        metas.append(meta)
        classes |= {part.cls for part in parts}
        brightness.append(float(img.mean()))
        saturated.append(float((img >= 250).mean()))
    assert classes == set(range(len(p.dataset.classes)))
    assert min(m["gain"] for m in metas) < 0.4 and max(m["gain"] for m in metas) > 1.6
    assert min(brightness) < 25 and max(brightness) > 120
    assert max(saturated) > 0.1  # some boards are overexposed enough to clip
    assert {m["blur"] for m in metas} == {"none", "motion", "defocus"}
    assert {m["density"] for m in metas} == {"sparse", "dense"}
    assert any(m["occluded"] for m in metas)
    dense = [m["n_objects"] for m in metas if m["density"] == "dense"]
    sparse = [m["n_objects"] for m in metas if m["density"] == "sparse"]
    assert np.mean(dense) > 3 * np.mean(sparse)


def test_a_users_data_yaml_is_read_as_ultralytics_reads_it(tmp_path):
    """``path:`` with relative splits, a split as a list of folders or a .txt list; no calib_pool → train."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    p = load_params(REPO / "params.yaml", SMALL)
    info = generate_dataset(p.dataset, tmp_path / "d", progress=False)
    data_yaml = ultralytics_style_data_yaml(info.root, tmp_path / "user")
    val = split_images(data_yaml, "val")
    assert val == sorted((info.root / "images" / "val").glob("*.jpg"))
    train = split_images(data_yaml, "train")
    assert len(train) == 24 + 24 and split_images(data_yaml, "calib_pool") == train
    data = check_det_dataset(str(data_yaml))  # ultralytics agrees on the images and finds their labels
    seen = YOLODataset(img_path=data["val"], data=data, imgsz=64, augment=False)
    assert sorted(seen.im_files) == [str(v) for v in val] and sum(len(lb["cls"]) for lb in seen.labels) > 0

    user = workspace.resolve_dataset(
        load_params(REPO / "params.yaml", [f"dataset.data_yaml={data_yaml}"]).dataset, "detect", tmp_path / "x", False
    )
    assert user.names == info.names
    label = info.root / "labels" / "val" / val[0].with_suffix(".txt").name
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
    assert user_dataset_sha256(data_yaml) != user.sha256, "a changed label is a new dataset version"


def test_a_split_that_names_nothing_is_a_clear_error(tmp_path):
    import pytest

    from edgeslim.errors import DataError

    (tmp_path / "data.yaml").write_text("train: missing/\nval: v.txt\nnames: [a]\n")
    with pytest.raises(DataError, match=r"train entry 'missing/' \(.*missing\) does not exist"):
        split_images(tmp_path / "data.yaml", "train")
    from edgeslim.ultra import DATASETS_DIR

    (tmp_path / "rel.yaml").write_text("path: no-such-root\ntrain: images\nnames: [a]\n")  # ultralytics: under datasets_dir
    with pytest.raises(DataError, match=f"train entry 'images' \\({DATASETS_DIR}/no-such-root/images\\) does not exist"):
        split_images(tmp_path / "rel.yaml", "train")
    (tmp_path / "v.txt").write_text("./images/gone.jpg\n")
    with pytest.raises(DataError, match=r"1 image\(s\) of the val split do not exist"):
        split_images(tmp_path / "data.yaml", "val")
