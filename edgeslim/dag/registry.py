"""The compress DAG: every step declared once, in order.

Runners compose the same declarations: the Prefect flow runs ``DATASET``, pulls the source from
the registry, then ``COMPRESS`` (and publishes); ``edgeslim stage NAME`` runs one of ``DATASET``,
``BASELINE``, ``SOURCE_STAGE`` and ``COMPRESS`` per DVC stage (dvc.yaml is generated from them); the benchmark runs
``DATASET`` and ``COMPRESS`` on a checkpoint file. ``SOURCE`` is the role of whichever step
provides the model: ``pull`` (flow), the ``source`` stage (DVC) or a file (benchmark).
"""

from __future__ import annotations

from edgeslim.dag.step import SOURCE, Step
from edgeslim.dag.steps.baseline import baseline
from edgeslim.dag.steps.calibrate import calibrate
from edgeslim.dag.steps.control import control, skip_unless_asked
from edgeslim.dag.steps.dataset import dataset
from edgeslim.dag.steps.evaluate import evaluate, evaluate_int8
from edgeslim.dag.steps.export import export
from edgeslim.dag.steps.finetune import finetune
from edgeslim.dag.steps.fuse import fuse
from edgeslim.dag.steps.gates import gates
from edgeslim.dag.steps.openvino import openvino
from edgeslim.dag.steps.prune import prune, skip_unless_enabled
from edgeslim.dag.steps.quantize import quantize
from edgeslim.dag.steps.search import search, skip_unless_searching
from edgeslim.dag.steps.source import source
from edgeslim.dag.steps.tensorrt import tensorrt

# fmt: off
# Keys read by whatever trains a model (ultralytics trainer settings that are not the schedule).
_TRAINER = ("compress.imgsz", "baseline.batch", "baseline.seed", "baseline.workers", "evaluate.conf", "evaluate.iou")
# What the finetuning inside pruning (sparse training, between rounds) reads of prune.finetune: all but its epochs.
_ROUND_FINETUNE = tuple(f"prune.finetune.{k}" for k in ("round_epochs", "optimizer", "lr0", "warmup_epochs", "patience"))
_PRUNING = (*(f"prune.{k}" for k in ("enabled", "importance", "target_macs_reduction", "ratio_shallow", "ratio_deep", "steps", "rounds",
                                      "round_to", "rewrite_max_rel_l2", "sparse", "policy", "target_latency_ratio", "latency_runs",
                                      "latency_rounds")),
            "export.opset", "evaluate.threads")
_EQUIVALENCE_IMAGES = ("fuse.equivalence_images", "compress.imgsz")
_RUN_SIZE = ("compress.imgsz", "compress.input_size")  # the source's size and the compressed model's (dag/source.py run_size)
_VALIDATOR = ("evaluate", "gates.metric", *_RUN_SIZE)  # the validator settings, what it scores (gates.metric) and at what size
# What scoring an artifact calls (the evaluate steps' Scorer).
_SCORING = ("edgeslim/evaluate", "edgeslim/runtime", "edgeslim/prune/structured.py", "edgeslim/models", "edgeslim/data", "edgeslim/report.py")

DATASET = Step("dataset", dataset, reads=("dataset", "baseline.task"), needs=(), code=("edgeslim/data", "edgeslim/workspace.py"),
               summary="the embedded synthetic set, or the user's data.yaml")
BASELINE = Step("baseline", baseline, reads=("baseline", "evaluate.conf", "evaluate.iou"), needs=("dataset",),
                code=("edgeslim/baseline", "edgeslim/models"), summary="train the tiny detector from its ultralytics yaml")
SOURCE_STAGE = Step(SOURCE, source, reads=("compress", "gates.metric", "mlflow.source_alias", "mlflow.tracking_uri"), needs=("dataset", "baseline"),
                    code=("edgeslim/dag/source.py", "edgeslim/registry", "edgeslim/models", "edgeslim/data/tasks.py", "edgeslim/workspace.py"),
                    summary="the model to compress: the baseline stage's, or compress.source (a .pt, an .onnx, runs:/..., NAME@ALIAS)")
COMPRESS: tuple[Step, ...] = (
    Step("fuse", fuse, reads=("fuse", "compress.imgsz"), needs=("dataset", SOURCE),
         code=("edgeslim/reparam", "edgeslim/models", "edgeslim/data/images.py", "edgeslim/data/splits.py", "edgeslim/gates.py"),
         summary="strip the PGI branch, fold Conv+BN/RepConv; gate: equivalence", torch=True),
    Step("search", search, reads=("search", "prune", "compress.activation", "target.name", "target.profiles", "target.rounds", "quantize",
                                  "export.opset", "gates.min_map_ratio", "baseline",
                                  *_VALIDATOR, *_EQUIVALENCE_IMAGES),
         needs=("dataset", SOURCE, "fuse"),
         code=("edgeslim/search", "edgeslim/prune", "edgeslim/quantize", "edgeslim/export", *_SCORING, "edgeslim/plots.py", "edgeslim/gates.py"),
         skip=skip_unless_searching, torch=True,
         summary="the fastest prune level x activation x input size that keeps its accuracy, timed untrained in the target's formats; binds it"),
    Step("prune", prune, reads=(*_PRUNING, *_ROUND_FINETUNE, *_TRAINER, *_EQUIVALENCE_IMAGES, "compress.activation", "compress.input_size"), needs=("dataset", "fuse", "search"),
         code=("edgeslim/prune", "edgeslim/models", "edgeslim/export", "edgeslim/runtime", "edgeslim/plots.py"),
         skip=skip_unless_enabled,
         summary="split-free rewrite, structured pruning to the MACs target, activation swap", torch=True),
    Step("finetune", finetune, reads=("prune.enabled", "prune.finetune", "prune.distill", "fuse", *_TRAINER, "compress.input_size"), needs=("dataset", "fuse", "prune"),
         code=("edgeslim/prune/finetune.py", "edgeslim/prune/distill.py", "edgeslim/baseline/train.py", "edgeslim/reparam", "edgeslim/models"),
         skip=skip_unless_enabled, summary="finetune the pruned graph (distilled from the unpruned model), fuse it again; gate: equivalence_pruned",
         torch=True),
    Step("control", control, reads=("evaluate.control", "prune.enabled", "prune.finetune", *_TRAINER), needs=("dataset", "fuse"),
         code=("edgeslim/prune/finetune.py", "edgeslim/baseline/train.py", "edgeslim/reparam/fuse.py", "edgeslim/models"),
         skip=skip_unless_asked, summary="the equal-budget control: the unpruned source finetuned with the same recipe and epochs",
         torch=True),
    Step("export", export, reads=("export", "fuse", "evaluate.threads", *_RUN_SIZE), needs=("dataset", "fuse", "finetune"),
         code=("edgeslim/export", "edgeslim/reparam/equivalence.py", "edgeslim/runtime", "edgeslim/models", "edgeslim/gates.py"),
         summary="ONNX FP32; gate: onnx_equivalence", torch=True),
    Step("calibrate", calibrate, reads=("calibration", "evaluate.threads", *_RUN_SIZE), needs=("dataset", SOURCE, "export"),
         code=("edgeslim/calibration", "edgeslim/runtime", "edgeslim/data/splits.py"), summary="curated calibration set: manifest and coverage plot"),
    Step("evaluate", evaluate, reads=_VALIDATOR, needs=("dataset", SOURCE, "fuse", "prune", "finetune", "control", "export"), code=_SCORING,
         summary="mAP, size, latency, MACs of the source, the torch stages, the control and the FP32 ONNX"),
    Step("quantize", quantize, reads=("quantize", "gates.min_map_ratio", "gates.reference", *_VALIDATOR), needs=("dataset", SOURCE, "export", "calibrate", "evaluate"),
         code=("edgeslim/quantize", *_SCORING), summary="ONNX Runtime INT8, accuracy-aware fallback aimed at the gate"),
    Step("evaluate-int8", evaluate_int8, reads=_VALIDATOR, needs=("dataset", SOURCE, "export", "quantize"), code=_SCORING,
         summary="mAP, size, latency of the INT8 ONNX"),
    Step("tensorrt", tensorrt, reads=("quantize", *_VALIDATOR), needs=("dataset", SOURCE, "export", "calibrate", "quantize"),
         code=("edgeslim/quantize", *_SCORING), summary="TensorRT engine from explicit Q/DQ where a GPU and TensorRT exist"),
    Step("openvino", openvino, reads=("quantize.openvino", "quantize.keep_float", "target.name", "target.profiles", "fuse", *_VALIDATOR),
         needs=("dataset", SOURCE, "export", "calibrate", "evaluate", "quantize"),
         code=("edgeslim/reparam/equivalence.py", "edgeslim/gates.py", "edgeslim/fleet/onnx_info.py", "edgeslim/quantize/head.py", *_SCORING),
         summary="OpenVINO IR (FP32, BF16 where the CPU has it, NNCF INT8) for the target; gate: openvino_equivalence"),
    Step("gates", gates, reads=("gates", "target", *_VALIDATOR), needs=("dataset", "evaluate", "evaluate-int8", "tensorrt", "openvino"),
         code=("edgeslim/gates.py", "edgeslim/plots.py", *_SCORING),
         summary="mAP of every candidate format against the reference (gates.reference), the gated ones ordered by latency"),
)
# fmt: on
PIPELINE: tuple[Step, ...] = (DATASET, BASELINE, SOURCE_STAGE, *COMPRESS)  # the DVC stages, in order


def through(name: str) -> tuple[Step, ...]:
    """``COMPRESS`` up to and including the step ``name`` (a runner that needs only the first steps)."""
    names = [s.name for s in COMPRESS]
    return COMPRESS[: names.index(name) + 1]


def step_named(name: str) -> Step:
    """The step of the pipeline called ``name`` (a sub-flow run is told which step to run by name)."""
    for step in PIPELINE:
        if step.name == name:
            return step
    raise KeyError(f"no step {name!r}; the pipeline has {', '.join(s.name for s in PIPELINE)}")
