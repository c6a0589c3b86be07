"""The retrain flow through the real CLI: a new dataset version (new seed) → finetune the champion →
held-out comparison → new version registered → `champion` moves only when the new model is better
by the margin; the same dataset version again is a no-op."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import NO_PRUNE, run_cli

MODEL = "pcb-retrain"  # a copy of the session champion: promotions here touch no other test's model
# The new dataset version: another seed, small splits; one finetuning epoch.
NEW_DATA = ["-S", "dataset.seed=424242", "-S", "dataset.splits={train: 48, val: 24, calib_pool: 8}", "-S", "triggers.retrain.finetune.epochs=1"]


def _retrain(server: str, params: Path, margin: float) -> dict:
    result = run_cli(
        "retrain", "--params", str(params), "-S", f"model_name={MODEL}", *NO_PRUNE, *NEW_DATA, "-S", f"triggers.retrain.margin={margin}",
        env_extra={"MLFLOW_TRACKING_URI": server},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_champion_moves_only_when_the_retrained_model_is_better(champion: str, params_file: Path):
    client = MlflowClient(champion, champion)
    client.copy_model_version("models:/pcb-detector@champion", MODEL)
    client.set_registered_model_alias(MODEL, "champion", "1")

    # A margin no model can clear: the new version is registered with its figures, champion stays.
    kept = _retrain(champion, params_file, margin=1.0)
    print(f"retrain (margin 1.0): {kept}")
    assert not kept["skipped"] and not kept["promoted"] and kept["version"] == "2"
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    v2 = client.get_model_version(MODEL, "2")
    assert v2.tags["edgeslim.promoted"] == "False" and v2.tags["edgeslim.retrained_from"] == "1"
    assert float(v2.tags["edgeslim.map50_95"]) == pytest.approx(kept["new_map50_95"], rel=1e-5)

    # Any improvement counts (margin below the possible loss): champion moves to the new version.
    moved = _retrain(champion, params_file, margin=-1.0)
    print(f"retrain (margin -1.0): {moved}")
    assert moved["promoted"] and moved["version"] == "3"
    assert moved["champion_map50_95"] == pytest.approx(kept["champion_map50_95"]), "the same held-out split scores the same champion"
    champ = client.get_model_version_by_alias(MODEL, "champion")
    assert champ.version == "3" and champ.tags["edgeslim.dataset_sha256"] == moved["dataset_sha256"]

    # The champion has learned this dataset version: nothing new to retrain on.
    again = _retrain(champion, params_file, margin=-1.0)
    assert again["skipped"] and again["champion"] == "3"
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 3
