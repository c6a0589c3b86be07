"""The step registry is the one definition of the DAG: every runner iterates it, dvc.yaml is
generated from it, and a step can read only the params and outcomes it declares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

from edgeslim.config import load_params
from edgeslim.dag import dvc, registry
from edgeslim.dag.layout import Layout
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.run import MissingInput, run_step
from edgeslim.dag.scoped import UndeclaredParam, scope
from edgeslim.dag.step import Step, StepInput
from edgeslim.errors import EdgeslimError
from edgeslim.gates import Gate
from edgeslim.report import StageResult

# Modules every step may use without declaring them: the DAG's own types, params, errors.
SHARED = (
    "edgeslim.dag.fan",
    "edgeslim.dag.layout",
    "edgeslim.dag.outcome",
    "edgeslim.dag.step",
    "edgeslim.dag.source",
    "edgeslim.config",
    "edgeslim.errors",
)


def test_flow_dvc_and_benchmark_iterate_the_same_registry():
    import benchmarks.calibration
    import benchmarks.library_run
    import flows.baseline
    import flows.compress
    import flows.retrain

    assert flows.compress.COMPRESS is registry.COMPRESS and flows.compress.DATASET is registry.DATASET
    assert benchmarks.library_run.COMPRESS is registry.COMPRESS and benchmarks.library_run.DATASET is registry.DATASET
    assert flows.baseline.BASELINE is registry.BASELINE and flows.retrain.DATASET is registry.DATASET
    assert (
        list(dvc.STAGES.values())
        == list(registry.PIPELINE)
        == [registry.DATASET, registry.BASELINE, registry.SOURCE_STAGE, *registry.COMPRESS]
    )
    assert registry.through("export")[-1].name == "export"
    assert benchmarks.calibration  # the calibration benchmark runs registry.through("export") too
    names = [s.name for s in registry.PIPELINE]
    assert len(names) == len(set(names)), "step names are unique (they are Prefect task names and DVC stages)"


def test_dvc_yaml_is_generated_from_the_registry():
    text = dvc.dvc_yaml(load_params(REPO / "params.yaml"))
    assert (REPO / "dvc.yaml").read_text() == text, "dvc.yaml is stale: run `edgeslim dvc-yaml --write`"


@pytest.mark.parametrize("step", registry.PIPELINE, ids=lambda s: s.name)
def test_each_step_declares_the_code_it_calls_and_reads_earlier_steps_only(step: Step):
    tree = ast.parse((REPO / step.module).read_text())
    imported = {
        f"{n.module}.{a.name}" if n.module == "edgeslim" else n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("edgeslim")
        for a in n.names
    }
    own = step.body.__module__
    for module in imported - {own, *SHARED}:
        if module.startswith(dvc.STEPS_PACKAGE):
            assert f"{module.replace('.', '/')}.py" in dvc.code_deps(step), f"{step.name}: the step module {module} it uses is a dvc dep"
            continue
        path = module.replace(".", "/")
        assert any(path == c.removesuffix(".py") or path.startswith(f"{c}/") for c in step.code), (
            f"{step.name}: {module} is not in its code deps"
        )
    earlier = [s.name for s in registry.PIPELINE[: registry.PIPELINE.index(step)]] + ["source"]
    assert all(n in earlier for n in step.needs), f"{step.name} needs a later step: {step.needs}"


def test_a_step_sees_only_its_declared_params():
    p = load_params(REPO / "params.yaml")
    scoped = scope(p, ("fuse", "prune.finetune.epochs"), "demo")
    assert scoped.fuse.max_rel_l2 == p.fuse.max_rel_l2 and scoped.prune.finetune.epochs == p.prune.finetune.epochs
    with pytest.raises(UndeclaredParam, match="'demo' reads params key 'prune.finetune.lr0'"):
        _ = scoped.prune.finetune.lr0
    with pytest.raises(UndeclaredParam, match="'baseline'"):
        _ = scoped.baseline
    with pytest.raises(UndeclaredParam, match="declares params key 'fuse.nope'"):
        scope(p, ("fuse.nope",), "demo")


def test_a_step_sees_only_its_declared_needs(tmp_path: Path):
    def body(inp: StepInput, p) -> Outcome:
        inp.outcome("fuse")
        return Outcome(inp.step)

    p = load_params(REPO / "params.yaml")
    step = Step("probe", body, reads=(), needs=("dataset",), code=())
    with pytest.raises(KeyError, match="does not declare it in its needs"):
        run_step(step, p, Layout(tmp_path), {"dataset": Outcome("dataset"), "fuse": Outcome("fuse")})
    with pytest.raises(MissingInput, match="needs the outcome of dataset"):
        run_step(step, p, Layout(tmp_path), {})


def test_outcome_round_trips_through_json_with_relative_paths(tmp_path: Path):
    stage = StageResult("onnx-int8", str(tmp_path / "q" / "m.onnx"), map50_95=0.3, size_bytes=10, gate="map_ratio")
    outcome = Outcome(
        "quantize",
        artifacts={"int8": tmp_path / "q" / "m.onnx"},
        metrics={"size_ratio": 0.27},
        details={"quantization": {"outcome": "ok"}},
        gates=(Gate("map_ratio", True, 1.0, 0.95, "fine"),),
        stages=(stage,),
        seconds=1.5,
    )
    text = outcome.to_json(tmp_path)
    assert '"int8": "q/m.onnx"' in text
    moved = tmp_path / "elsewhere"
    back = Outcome.from_json(text, moved)
    assert back.artifacts == {"int8": moved / "q" / "m.onnx"} and back.gates == outcome.gates and back.stages == outcome.stages


def test_stage_before_its_inputs_is_one_clear_error(tmp_path: Path):
    from conftest import write_params

    p = load_params(write_params(tmp_path / "params.yaml", tmp_path / "ws"))
    with pytest.raises(MissingInput, match=r"stage dataset has not run here .* run `dvc repro`"):
        dvc.run_stage("quantize", p)
    with pytest.raises(EdgeslimError, match="no stage 'nope'; the stages are dataset, baseline"):
        dvc.run_stage("nope", p)


def test_dvc_compresses_the_model_compress_source_names_and_trains_no_baseline(tmp_path: Path, tiny_checkpoint: Path):
    """``compress.source`` as a DVC user sets it: a local .pt, then an ONNX export of it (torch stages skipped)."""
    from conftest import write_params

    from edgeslim.export.onnx_export import export_onnx

    tiny = {"dataset": {"splits": {"train": 4, "val": 4, "calib_pool": 4}}}
    p = load_params(write_params(tmp_path / "params.yaml", tmp_path / "ws", {**tiny, "compress": {"source": str(tiny_checkpoint)}}))
    dvc.run_stage("dataset", p)
    assert (dvc.run_stage("baseline", p).skipped or "").startswith("compress.source names the model to compress")
    source = dvc.run_stage("source", p)
    assert source.artifact("source") == tiny_checkpoint and source.details["source"]["imgsz"] == 128

    onnx = export_onnx(tiny_checkpoint, 128, p.export.opset, tmp_path / "tiny.onnx")
    p = load_params(write_params(tmp_path / "params.yaml", tmp_path / "ws", {**tiny, "compress": {"source": str(onnx)}}))
    assert dvc.run_stage("source", p).details["source"]["format"] == "onnx"
    for name in ("fuse", "search", "prune", "finetune", "export"):
        assert "the source is an ONNX model" in (dvc.run_stage(name, p).skipped or ""), name


def test_control_stage_appears_when_asked_and_the_report_states_ratios_against_it(tmp_path: Path, tiny_checkpoint: Path):
    """``evaluate.control``: the unpruned source is finetuned with the pruned model's recipe and epochs,
    scored beside it, and with ``gates.reference: control`` every ratio and the gates are against it."""
    from conftest import write_params

    from edgeslim.dag.summary import build_report

    extra = {
        "dataset": {"splits": {"train": 8, "val": 4, "calib_pool": 4}},
        "compress": {"source": str(tiny_checkpoint), "imgsz": 64},
        "baseline": {"batch": 4},
        "prune": {"round_to": 4, "finetune": {"epochs": 1}},
        "quantize": {"fallback": {"enabled": False}},
        "calibration": {"num_images": 4},
        "evaluate": {"control": True},
        "gates": {"reference": "control"},
    }
    p = load_params(write_params(tmp_path / "params.yaml", tmp_path / "ws", extra))
    for name in ("dataset", "baseline", "source", "fuse", "search", "prune", "finetune", "control", "export", "calibrate", "evaluate"):
        outcome = dvc.run_stage(name, p)
    control = dvc.run_stage("control", p)
    assert control.skipped is None and control.details["control"]["epochs_run"] == 1
    stages = {s.name for s in outcome.stages}
    assert {"baseline", "finetuned", "control", "onnx-fp32"} <= stages
    for name in ("quantize", "evaluate-int8", "tensorrt", "openvino", "gates"):
        gated = dvc.run_stage(name, p)
    assert gated.details["reference"]["stage"] == "control"
    # An untrained tiny model scores 0: every mAP gate fails, naming the control.
    map_gates = [g for g in gated.gates if g.name.startswith("map_ratio")]
    assert map_gates and not any(g.passed for g in map_gates), [g.as_dict() for g in map_gates]
    assert all("x control" in g.detail for g in map_gates)
    report = build_report("tiny", "1", {"evaluate": outcome, "gates": gated})
    assert "| % of control (bootstrap CI) |" in report.markdown()
    # Off by default: the step says why it did not run.
    p = load_params(
        write_params(
            tmp_path / "params.yaml", tmp_path / "ws", {**extra, "evaluate": {"control": False}, "gates": {"reference": "baseline"}}
        )
    )
    assert "evaluate.control is false" in (dvc.run_stage("control", p).skipped or "")
