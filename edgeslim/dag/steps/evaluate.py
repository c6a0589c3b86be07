"""Steps ``evaluate`` and ``evaluate-int8``: every artifact through the one validator (mAP), plus
file size, CPU latency and MACs: the rows of the stage table.

``evaluate`` scores the torch stages and the FP32 ONNX before quantization, because the INT8
step's accuracy-aware fallback aims at the gate (a share of the source's mAP) and stops at the
FP32 model's mAP; ``evaluate-int8`` scores what quantization made.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from edgeslim.config import EvaluateParams, Params
from edgeslim.dag.fan import Fan, sequential
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.source import image_size, run_size
from edgeslim.dag.step import FP32, SOURCE, StepInput, source_task
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.steps.export import exported_from
from edgeslim.data.images import preprocess
from edgeslim.data.splits import split_images
from edgeslim.data.synthetic import DatasetInfo
from edgeslim.data.tasks import Scoring, scoring
from edgeslim.evaluate.accuracy import Accuracy, evaluate_map
from edgeslim.evaluate.latency import latency_ms
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.prune.structured import count_macs
from edgeslim.report import StageResult
from edgeslim.runtime.formats import FORMATS, Format, artifact_bytes

# Stage names of the table, and the gate each stage's figure feeds.
BASELINE, FUSED, PRUNED, FINETUNED, CONTROL, ONNX_FP32, ONNX_INT8, TENSORRT = (
    "baseline",
    "fused",
    "pruned",
    "finetuned",
    "control",
    "onnx-fp32",
    "onnx-int8",
    "tensorrt-int8-gpu",
)


Row = tuple[str, Path, str | None]  # stage name, artifact, the gate its figure feeds


class Scorer:
    """Scores artifacts of one run: same data, image size, validator settings and latency sample."""

    def __init__(self, data: DatasetInfo, imgsz: int, ev: EvaluateParams, work_dir: Path, scored: Scoring) -> None:
        self.data, self.imgsz, self.ev, self.work_dir, self.scored = data, imgsz, ev, work_dir, scored
        self.sample = val_sample(data, imgsz)

    def map50_95(self, artifact: Path, fmt: Format | None = None, work_dir: Path | None = None) -> float:
        """``work_dir``: a folder of the caller's own where validations may run side by side (a fan)."""
        return evaluate_map(
            artifact,
            self.data.data_yaml,
            self.imgsz,
            self.ev,
            work_dir or self.work_dir,
            fmt=fmt,
            task=self.scored.task,
            metric=self.scored.metric,
        ).map50_95

    def stages(self, rows: Sequence[Row], torch_source: Path | None = None, fan: Fan = sequential) -> tuple[StageResult, ...]:
        """mAP, size, latency and MACs of each row's artifact; ``torch_source`` is the checkpoint a
        non-PyTorch artifact was made from (MACs are counted on the torch graph).

        The validations are independent, so they go through ``fan`` (each in a folder of its own);
        the latencies are timed afterwards, one at a time, so that no other work skews them."""
        accuracy = partial(_accuracy, self.data.data_yaml, self.imgsz, self.ev, self.work_dir, self.scored)
        scored = fan(accuracy, [(name, artifact) for name, artifact, _ in rows])
        return tuple(self._stage(row, acc, torch_source) for row, acc in zip(rows, scored, strict=True))

    def stage(self, name: str, artifact: Path, gate: str | None = None, torch_source: Path | None = None) -> StageResult:
        return self.stages([(name, artifact, gate)], torch_source)[0]

    def _stage(self, row: Row, acc: Accuracy, torch_source: Path | None) -> StageResult:
        name, artifact, gate = row
        counted = artifact if artifact.suffix == ".pt" else torch_source
        macs, params = count_macs(load_checkpoint(counted)[1], self.imgsz) if counted else (None, None)
        size = artifact_bytes(artifact)
        latency = latency_ms(artifact, self.sample, self.ev, FORMATS.get(name))
        box = f" (box {acc.box_map50_95:.4f})" if self.scored.metric != "box" else ""
        print(f"{name}: {self.scored.label} {acc.map50_95:.4f}{box} mAP50 {acc.map50:.4f} latency {latency:.2f} ms")
        return StageResult(
            name=name,
            artifact=str(artifact),
            map50_95=acc.map50_95,
            map50=acc.map50,
            box_map50_95=acc.box_map50_95 if self.scored.metric != "box" else None,
            size_bytes=size,
            latency_ms=latency,
            gate=gate,
            macs=macs,
            params=params,
            per_image=str(acc.per_image),
        )


def _accuracy(data_yaml: Path, imgsz: int, ev: EvaluateParams, work_dir: Path, scored: Scoring, item: tuple[str, Path]) -> Accuracy:
    """One stage's validation, in a folder named for the stage (two stages may share a file name); a
    stage named for a format (onnx-int8, openvino-bf16...) is scored at that format's precision."""
    name, artifact = item
    return evaluate_map(artifact, data_yaml, imgsz, ev, work_dir / name, fmt=FORMATS.get(name), task=scored.task, metric=scored.metric)


def val_sample(data: DatasetInfo, imgsz: int) -> np.ndarray:
    """The one val image every latency of a run is timed on, preprocessed at ``imgsz``."""
    return preprocess(split_images(data.data_yaml, "val")[0], imgsz)


def scorer(inp: StepInput, p: Params, size: int | None = None) -> Scorer:
    """The run's scorer at ``size``: by default the compressed model's (:func:`run_size`); the source
    and its control are scored at their own (:func:`image_size`)."""
    return Scorer(
        dataset_info(inp.outcome("dataset")), size or run_size(p), p.evaluate, inp.layout.validation(inp.step), run_scoring(inp, p)
    )


def run_scoring(inp: StepInput, p: Params) -> Scoring:
    """What every validation of the run is scored as: the source's task, on ``gates.metric``."""
    return scoring(source_task(inp), p.gates.metric)


def stage_metrics(stages: tuple[StageResult, ...]) -> dict[str, float]:
    """``<stage>.map50_95`` / ``.latency_ms`` / ``.size_bytes`` (and ``.box_map50_95`` beside a mask or pose
    mAP) of each scored stage (MLflow and DVC metrics); the outcome's ``metric`` detail names the mAP."""
    figures = ("map50_95", "box_map50_95", "latency_ms", "size_bytes")
    return {f"{s.name}.{k}": float(v) for s in stages for k in figures if (v := getattr(s, k)) is not None}


def evaluate(inp: StepInput, p: Params) -> Outcome:
    """The source, then each stage that ran (an ONNX source has no torch stages and no export), and
    the equal-budget control when it was trained. The source, its fused form and the control are
    scored at the source's size, the compressed stages at theirs (``compress.input_size``)."""
    ran = {name: inp.outcome(name).skipped is None for name in ("fuse", "finetune", "control", "export")}
    source_rows: list[Row] = [(BASELINE, inp.outcome(SOURCE).artifact(SOURCE), None)]
    rows: list[Row] = []
    if ran["fuse"]:
        source_rows.append((FUSED, inp.outcome("fuse").artifact("model"), "equivalence"))
    if ran["finetune"]:
        rows += [
            (PRUNED, inp.outcome("prune").artifact("pruned"), None),
            (FINETUNED, inp.outcome("finetune").artifact("model"), "equivalence_pruned"),
        ]
    if ran["control"]:
        source_rows.append((CONTROL, inp.outcome("control").artifact("model"), None))
    if ran["export"]:
        rows.append((ONNX_FP32, inp.outcome("export").artifact(FP32), None))
    stages = scorer(inp, p, image_size(p)).stages(source_rows, exported_from(inp), inp.fan)
    stages += scorer(inp, p).stages(rows, exported_from(inp), inp.fan)
    order = [BASELINE, FUSED, PRUNED, FINETUNED, CONTROL, ONNX_FP32]
    stages = tuple(sorted(stages, key=lambda s: order.index(s.name)))
    return Outcome(inp.step, metrics=stage_metrics(stages), stages=stages, details={"metric": metric_facts(run_scoring(inp, p))})


def metric_facts(scored: Scoring) -> dict[str, str]:
    """The report's and MLflow's name for the run's mAP figures (``map50_95`` holds this metric)."""
    return {"task": scored.task, "metric": scored.metric, "label": scored.label, "ultralytics_key": scored.key}


def evaluate_int8(inp: StepInput, p: Params) -> Outcome:
    stages = (scorer(inp, p).stage(ONNX_INT8, inp.outcome("quantize").artifact("int8"), None, exported_from(inp)),)
    return Outcome(inp.step, metrics=stage_metrics(stages), stages=stages)


def stage_map(outcome: Outcome, *names: str) -> float:
    """mAP50-95 of the first of the stages ``names`` an evaluate outcome scored (0 when it has none)."""
    by_name = {s.name: s.map50_95 or 0.0 for s in outcome.stages}
    return next((by_name[n] for n in names if n in by_name), 0.0)
