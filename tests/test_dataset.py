import json

import numpy as np
from conftest import REPO

from edgeslim.config import load_params
from edgeslim.data.synthetic import generate_dataset, render_image

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
        img, labels, meta = render_image(p.dataset, 0, i)
        metas.append(meta)
        classes |= {c for c, _ in labels}
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
