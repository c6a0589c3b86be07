from pathlib import Path

import pytest

from edgeslim.config import ConfigError, load_params

REPO = Path(__file__).resolve().parents[1]


def test_default_params_validate():
    p = load_params(REPO / "params.yaml")
    assert p.gates.min_map_ratio == 0.95
    assert len(p.dataset.classes) >= 4


def test_override_parses_yaml_values():
    p = load_params(REPO / "params.yaml", ["gates.min_map_ratio=0.9", "quantize.op_types=[Conv,MatMul]"])
    assert p.gates.min_map_ratio == 0.9
    assert p.quantize.op_types == ["Conv", "MatMul"]


def test_override_that_is_not_yaml_is_taken_as_text():
    """An unquoted cron line is not YAML (``*`` starts an alias); it is the string the user meant."""
    assert load_params(REPO / "params.yaml", ["triggers.retrain.cron=*/5 * * * *"]).triggers.retrain.cron == "*/5 * * * *"
    with pytest.raises(ConfigError, match="fuse.equivalence_images"):
        load_params(REPO / "params.yaml", ["fuse.equivalence_images=*/5"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("gates.min_map_ratoi=0.9", "unknown key 'gates.min_map_ratoi'"),
        ("nosection.key=1", "'nosection' is not a section"),
        ("quantize.method=magic", "quantize.method"),
        ("dataset.brightness=[2.0,0.5]", "brightness must be [low, high]"),
        ("baseline.imgsz=100", "baseline.imgsz"),
        ("gates.min_map_ratio", "not of the form"),
        ("prefect.heartbeat_s=10", "prefect.heartbeat_s"),  # Prefect's own minimum is 30
        ("prefect.unresponsive_after_s=45", "must be at least twice heartbeat_s"),  # one late beat is not a dead run
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_params(REPO / "params.yaml", [override])
    assert message in str(info.value)


def test_unknown_key_in_file_is_rejected(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("gates:\n", "gates:\n  surprise: 1\n")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match="gates.surprise: Extra inputs are not permitted"):
        load_params(tmp_path / "p.yaml")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "nope.yaml")


def test_section_hash_tracks_changes():
    a = load_params(REPO / "params.yaml")
    b = load_params(REPO / "params.yaml", ["dataset.seed=1"])
    assert a.section_hash("dataset") != b.section_hash("dataset")
    assert a.section_hash("baseline") == b.section_hash("baseline")
