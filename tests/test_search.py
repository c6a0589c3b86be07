"""The search for the fastest model that passes (issue 27, item 5): the selection on latencies and
scores the tests fix, the step binding its choice into the fixed recipe, an unmeetable budget, and
the demo run's search (report, MLflow nested runs per candidate)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, error_line, run_cli, write_params
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.settings import PREFECT_API_URL, temporary_settings
from test_e2e import registry_snapshot

from edgeslim.agent.smoke import smoke_test
from edgeslim.config import bound, load_params
from edgeslim.dag import dvc
from edgeslim.dag.run import run_step
from edgeslim.dag.scoped import scope, whole
from edgeslim.fleet.golden import golden_set
from edgeslim.fleet.onnx_info import describe
from edgeslim.models.onnx_model import onnx_facts
from edgeslim.runtime.timing import Paired
from edgeslim.search.select import RungScore, Timed, halve, screen
from edgeslim.search.space import Candidate, Variant, at_least_as_accurate, candidates, input_sizes, variants
from flows.compress import SEARCH_ARTIFACT_KEY, publish_key

FLOOR = 0.9
V20K, V20R, V40K, V40R = variants([0.2, 0.4], ["keep", "relu"], [160])


def in_turn(score: Callable[[Variant, int], float], out_of_time: Callable[[], bool] = lambda: False) -> RungScore:
    """A rung's variants scored one after another, as the step's sequential fan does; None once the clock ran out."""
    return lambda vs, epochs: [None if out_of_time() else score(v, epochs) for v in vs]


def _timed(latency: dict[str, float], ref: float = 10.0) -> list[Timed]:
    """Candidates by name (``prune40-relu-160px/onnx-fp32``) at fixed latencies."""
    by_name = {c.name: c for c in candidates([V20K, V20R, V40K, V40R], ["onnx-fp32", "onnx-int8", "openvino-fp32"])}
    return [Timed(by_name[name], ms, ms / ref) for name, ms in latency.items()]


def test_screening_drops_what_is_over_budget_or_slower_than_a_no_less_accurate_candidate():
    timed = _timed(
        {
            "prune20-keep-160px/onnx-fp32": 6.0,
            "prune40-keep-160px/onnx-fp32": 7.0,
            "prune40-relu-160px/onnx-int8": 3.0,
            "prune20-keep-160px/openvino-fp32": 5.0,
        }
    )
    kept, gone = screen(timed, budget=0.65)
    assert [t.candidate.name for t in kept] == ["prune40-relu-160px/onnx-int8", "prune20-keep-160px/openvino-fp32"]
    assert gone["prune20-keep-160px/onnx-fp32"].startswith("dominated by prune20-keep-160px/openvino-fp32")  # same accuracy class, slower
    assert gone["prune40-keep-160px/onnx-fp32"] == "over the budget: 0.700x > 0.65x"
    # pruned more and INT8: faster, but not dominated, since it may keep less accuracy
    assert "prune40-relu-160px/onnx-int8" not in gone


def test_input_sizes_round_down_to_the_stride_and_a_smaller_input_dominates_nothing_larger():
    assert input_sizes(160, 32, [1.0, 0.8, 0.6]) == [160, 128, 96]
    assert input_sizes(320, 32, [1.0, 0.8, 0.7, 0.75]) == [320, 256, 224]
    assert input_sizes(64, 32, [0.3]) == [32]  # never under one stride
    small, large = Candidate(Variant(0.2, "keep", 128), "onnx-fp32"), Candidate(Variant(0.2, "keep", 160), "onnx-fp32")
    assert at_least_as_accurate(large, small) and not at_least_as_accurate(small, large)
    kept, gone = screen([Timed(small, 4.0, 0.4), Timed(large, 6.0, 0.6)], budget=None)
    assert gone == {} and len(kept) == 2  # faster, but it may keep less accuracy: both are trained
    kept, gone = screen([Timed(small, 7.0, 0.7), Timed(large, 6.0, 0.6)], budget=None)
    assert list(gone) == [small.name]  # slower than one with a larger input, no less accurate by construction


def test_the_fastest_variant_that_keeps_its_accuracy_is_chosen():
    timed = _timed(
        {
            "prune40-relu-160px/onnx-fp32": 2.0,
            "prune40-keep-160px/onnx-fp32": 3.0,
            "prune20-relu-160px/onnx-fp32": 4.0,
            "prune20-keep-160px/onnx-fp32": 5.0,
        }
    )
    scores = {V40R: [0.80], V40K: [0.93, 0.96], V20R: [0.95, 0.97], V20K: [0.97, 0.99]}
    calls: list[str] = []

    def score(v: Variant, epochs: int) -> float:
        calls.append(f"{v.name}:{epochs}")
        return scores[v][len([c for c in calls if c.startswith(v.name)]) - 1]

    result = halve(timed, [1, 3], keep=0.5, floor=FLOOR, score=in_turn(score))
    assert result.chosen is not None and result.chosen.variant == V40K, [v.fate for v in result.verdicts]
    # rung 1 trains all four (fastest first) and drops prune40-relu-160px under the floor; of the three left the
    # fastest 2 go on (keep 0.5, rounded up); rung 2 trains only those
    assert calls == [
        "prune40-relu-160px:1",
        "prune40-keep-160px:1",
        "prune20-relu-160px:1",
        "prune20-keep-160px:1",
        "prune40-keep-160px:3",
        "prune20-relu-160px:3",
    ]
    fates = {v.variant: v.fate for v in result.verdicts}
    assert fates[V40R].startswith("dropped at rung 1: 0.800") and fates[V20K] == "not among the fastest 2 after rung 1"
    assert fates[V20R].startswith("runner-up") and result.cut_by_clock == []


def test_where_no_variant_clears_the_floor_the_best_scoring_goes_on_to_the_gates():
    timed = _timed({"prune40-relu-160px/onnx-fp32": 2.0, "prune40-keep-160px/onnx-fp32": 3.0})
    result = halve(timed, [2], keep=1.0, floor=FLOOR, score=in_turn(lambda v, _: {V40R: 0.32, V40K: 0.66}[v]))
    assert result.chosen is not None and result.chosen.variant == V40K and result.chosen.fate.startswith("chosen: none cleared 0.900")


def test_max_minutes_cuts_the_training_and_the_choice_is_among_what_was_scored():
    timed = _timed({"prune40-relu-160px/onnx-fp32": 2.0, "prune40-keep-160px/onnx-fp32": 3.0, "prune20-keep-160px/onnx-fp32": 5.0})
    trained: list[Variant] = []

    def score(v: Variant, epochs: int) -> float:
        trained.append(v)
        return 0.95

    clock = iter([False, False, True, True, True])  # time runs out after two trainings
    result = halve(timed, [1, 3], keep=1.0, floor=FLOOR, score=in_turn(score, lambda: next(clock)))
    assert trained == [V40R, V40K] and result.cut_by_clock == ["prune20-keep-160px", "prune40-relu-160px", "prune40-keep-160px"]
    assert result.chosen is not None and result.chosen.variant == V40R and "cut by the clock after rung 1" in result.chosen.fate


def test_the_step_binds_its_choice_into_the_fixed_recipe(tmp_path: Path, tiny_checkpoint: Path, monkeypatch):
    """Real builds and short finetunes on the tiny model at 64 px and half that; latencies fixed so that
    the last built (prune40-relu at 32 px) is fastest. The recipe after it runs at the chosen size
    (the FP32 ONNX takes 32 px) while the source is still scored at its own."""
    fixed = {0: 10.0, 1: 10.0}  # the source's own exports (ONNX Runtime, OpenVINO), then the candidates in build order

    def medians(fns, calls, blocks, warmup):
        ms = [fixed.get(i, 9.0 - i / 10) for i in range(len(fns))]  # later builds (prune40-relu last) are faster
        return Paired(ms, [ms])

    monkeypatch.setattr("edgeslim.dag.steps.search.paired_medians", medians)
    fanned: list[str] = []

    def pickling_fan(fn, items):  # as a Dask fan: the function and each item cross a pickle to another process
        fanned.extend(type(i).__name__ for i in items)
        return [pickle.loads(pickle.dumps(fn))(pickle.loads(pickle.dumps(i))) for i in items]

    monkeypatch.setattr("edgeslim.dag.dvc.run_step", lambda step, p, lay, outcomes: run_step(step, p, lay, outcomes, fan=pickling_fan))
    extra = {
        "dataset": {"splits": {"train": 8, "val": 4, "calib_pool": 4}},
        "compress": {"source": str(tiny_checkpoint), "imgsz": 64},
        "baseline": {"batch": 4},
        "prune": {"round_to": 4, "finetune": {"epochs": 1}},
        "target": {"name": "x86-avx2", "profiles": {"x86-avx2": ["onnx-fp32", "openvino-fp32"]}},
        # an untrained model scores 0: a floor below 0 lets the ranking, not the accuracy, decide here
        "search": {
            "enabled": True,
            "prune_levels": [0.4],
            "activations": ["keep", "relu"],
            "input_scales": [1.0, 0.5],
            "rungs": [1],
            "slack": 1.0,
        },
    }
    p = load_params(write_params(tmp_path / "params.yaml", tmp_path / "ws", extra))
    for name in ("dataset", "baseline", "source", "fuse"):
        dvc.run_stage(name, p)
    found = dvc.run_stage("search", p)
    assert len(fanned) >= 4, "the rung's short finetunes go through the step's fan"
    chosen = {"prune.target_macs_reduction": 0.4, "compress.activation": "relu", "compress.input_size": 32}
    assert found.binds == chosen, found.details["search"]["chosen"]
    rows = found.details["search"]["candidates"]
    assert len(rows) == 8 and rows[0]["candidate"] == "prune40-relu-32px/openvino-fp32" and rows[0]["status"].startswith("chosen")
    assert {r["candidate"].split("/")[0] for r in rows} == {
        "prune40-keep-64px",
        "prune40-relu-64px",
        "prune40-keep-32px",
        "prune40-relu-32px",
    }
    assert found.artifacts["search_png"].is_file()
    pruned = dvc.run_stage("prune", p)  # a later stage runs what the search chose, not params.yaml's recipe
    assert pruned.details["pruning"]["activation"]["activation"] == "relu" and pruned.details["pruning"]["rounds"][0]["target"] == 0.4
    dvc.run_stage("finetune", p)
    exported = dvc.run_stage("export", p)
    assert exported.details["input"] == {"input_size": 32, "source_size": 64}
    fp32 = exported.artifact("fp32")
    assert onnx_facts(fp32).input_size == 32 and exported.gates[0].passed
    # the device's side: the manifest's shapes, the golden set and the smoke test all at the chosen size
    _, io = describe(fp32)
    assert list(io["inputs"].values()) == [[1, 3, 32, 32]]
    golden = golden_set(fp32, "onnx-fp32", 2, io)
    assert next(iter(golden.inputs.values())).shape == (2, 1, 3, 32, 32)
    smoke = smoke_test(fp32, "onnx-fp32", io, None, golden, 1e-4)
    assert smoke.ok and smoke.golden_error is not None and smoke.golden_error < 1e-4, smoke


@pytest.mark.slow
def test_an_unmeetable_budget_is_one_error_line_and_publishes_nothing(champion: str, params_file: Path, prefect_api: str):
    client = MlflowClient(champion, champion)
    before = registry_snapshot(client)
    knobs = ["-S", "search.enabled=true", "-S", "search.budget=0.01", "-S", "search.prune_levels=[0.4]", "-S", "search.activations=[keep]"]
    result = run_cli("compress", "--params", str(params_file), *knobs, env_extra={"MLFLOW_TRACKING_URI": champion})
    assert result.returncode == 3, result.stderr[-3000:]
    line = error_line(result)
    assert line.startswith(
        "edgeslim: error: gate search failed: search found nothing to ship: no candidate is within the latency budget 0.01x"
    )
    assert len(line) < 300 and registry_snapshot(client) == before
    # the Prefect UI's table of candidates, each with why it went
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as prefect:  # settings are read once
        latest = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[SEARCH_ARTIFACT_KEY])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    rows = json.loads(latest[0].data) if isinstance(latest[0].data, str) else latest[0].data
    assert rows and all(r["status"].startswith("over the budget: ") and r["latency_ms"] > 0 for r in rows), rows


def test_the_demo_run_searched_and_ran_what_it_chose(champion: str, published):
    _, report = published
    search = report["details"]["search"]
    chosen = search["chosen"]
    assert chosen and chosen["fate"].startswith("chosen") and chosen["variant"] in {"prune40-keep-128px", "prune40-relu-128px"}
    assert report["details"]["pruning"]["activation"]["activation"] == chosen["activation"], "the prune step ran the chosen variant"
    client = MlflowClient(champion, champion)
    parent = client.get_run(report["details"]["mlflow_run_url"].rsplit("/", 1)[-1].split("?")[0])
    step = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`edgeslim.step` = 'search'"
    )
    assert len(step) == 1
    nested = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{step[0].info.run_id}'")
    assert {r.info.run_name for r in nested} == {c["candidate"] for c in search["candidates"]}
    assert all("latency_ms" in r.data.metrics and r.data.tags["edgeslim.search.status"] for r in nested)


def test_a_run_with_another_lever_is_not_taken_for_one_already_published():
    def key(*overrides: str) -> str:
        return publish_key(load_params(REPO / "params.yaml", list(overrides)), "pcb-detector", "3", "data-sha")

    levers = ("compress.input_size=96", "compress.activation=relu", "search.prune_levels=[0.3]", "search.input_scales=[1.0,0.8]")
    assert key() == key() and len({key(), *(key(o) for o in levers)}) == 1 + len(levers)


def test_a_step_placed_elsewhere_gets_the_params_as_bound_for_it():
    """A sub-flow run on another pool is sent the whole params behind the step's scoped view: the
    search's binds included, not the run's params as it began."""
    p = load_params(REPO / "params.yaml")
    chosen = bound(p, {"compress.input_size": 96, "compress.activation": "relu"})
    sent = whole(scope(chosen, ("compress.input_size",), "finetune"))
    assert (sent.compress.input_size, sent.compress.activation, sent.search.enabled) == (96, "relu", True)


def test_search_params_are_validated():
    from edgeslim.config import ConfigError

    with pytest.raises(ConfigError, match="search.prune_levels"):
        load_params(REPO / "params.yaml", ["search.prune_levels=[1.5]"])
    assert Candidate(V40R, "onnx-int8").name == "prune40-relu-160px/onnx-int8"
