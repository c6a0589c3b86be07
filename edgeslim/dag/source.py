"""The source model's own facts, bound into the params before the compress steps run.

``compress.imgsz: null`` means "the size the model was trained at": a user's detector trained at
640, 320 or 224 px is compressed, calibrated and scored at that size, not at the embedded baseline's.
Every runner binds it the same way, once the source checkpoint is known, so each step reads one
definite ``compress.imgsz``. An ONNX source gives its size by its fixed input shape or ultralytics'
export metadata.

``compress.input_size`` (null: ``imgsz``) is the size the *compressed* model runs at: it is finetuned,
exported, calibrated, scored and shipped at it (:func:`run_size`), while the source and its control
are still scored at ``imgsz`` (:func:`image_size`), so a gate charges a smaller input's accuracy cost
to the model that has it. The search binds it like any other lever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.config import ConvergenceParams, Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import FP32, SOURCE
from edgeslim.data.label_kind import check_task_against_labels, label_kind
from edgeslim.data.synthetic import DatasetInfo
from edgeslim.data.tasks import scoring
from edgeslim.errors import CheckpointError
from edgeslim.evaluate.convergence import convergence, fitness_history
from edgeslim.models.checkpoint import class_names, keypoint_shape, read_checkpoint, training_imgsz
from edgeslim.models.onnx_model import is_onnx, onnx_facts

Facts = dict[str, Any]


def bind_source(p: Params, weights: Path) -> tuple[Params, Facts]:
    """``p`` with ``compress.imgsz`` set for the source model ``weights``, and the facts behind it."""
    facts = checked_source_facts(weights, p)
    return p.model_copy(update={"compress": p.compress.model_copy(update={"imgsz": facts["imgsz"]})}), facts


def source_facts(weights: Path, requested: int | None, plateau: ConvergenceParams | None = None) -> Facts:
    """The image size to compress the source model ``weights`` (a checkpoint or an ONNX file) at, and why.

    ``requested`` (``compress.imgsz``) wins when set; either way it must be a multiple of the model's
    largest stride (and equal to an ONNX model's fixed input size). With ``plateau``, a checkpoint's
    training history also says whether the source looks converged (``convergence``; None when the
    file records no history, as an ONNX export does not).
    """
    history = None
    if is_onnx(weights):
        stride, trained, names, model = _onnx_source(weights, requested)
    else:
        stride, trained, names, model, history = _torch_source(weights)
    imgsz, origin = (requested, "params") if requested else (trained, "checkpoint")
    if imgsz is None:
        raise CheckpointError(f"{weights} records no image size (training args, fixed input or export metadata): set compress.imgsz")
    if imgsz % stride:
        raise CheckpointError(f"image size {imgsz} is not a multiple of the model's stride {stride}: set compress.imgsz to one")
    facts = {"format": "onnx" if is_onnx(weights) else "pt", "imgsz": imgsz, "imgsz_from": origin, "trained_imgsz": trained}
    verdict = convergence(history, plateau).as_dict() if history and plateau else None
    return {**facts, "stride": stride, "names": list(names), **model, "convergence": verdict}


def _torch_source(weights: Path) -> tuple[int, int | None, list[str], Facts, list[float] | None]:
    ckpt, model, task = read_checkpoint(weights)
    shape = keypoint_shape(model)
    kind = {"task": task, "kpt_shape": list(shape) if shape else None}
    return int(max(model.stride)), training_imgsz(ckpt, model), class_names(model), kind, fitness_history(ckpt)


def _onnx_source(weights: Path, requested: int | None) -> tuple[int, int | None, list[str], Facts]:
    facts = onnx_facts(weights)
    if facts.quantized:
        raise CheckpointError(f"ONNX model {weights} is already quantized (INT8): bring its FP32 model, or the .pt it came from")
    if facts.stride is None or facts.names is None:
        raise CheckpointError(
            f"ONNX model {weights} records no stride or class names (ultralytics' export metadata): "
            f"export it with `yolo export model=best.pt format=onnx`"
        )
    if requested and facts.input_size and requested != facts.input_size:
        raise CheckpointError(
            f"ONNX model {weights} takes {facts.input_size} px images (a fixed input): compress.imgsz {requested} cannot apply"
        )
    kind = {"task": facts.task or "detect", "kpt_shape": list(facts.kpt_shape) if facts.kpt_shape else None}
    return facts.stride, facts.input_size or facts.imgsz, list(facts.names), kind


def checked_source_facts(weights: Path, p: Params) -> Facts:
    """:func:`source_facts` for a compress run's params, ``compress.input_size`` and ``gates.metric``
    checked against them (before any step works on the model)."""
    facts = source_facts(weights, p.compress.imgsz, p.compress.convergence)
    check_input_size(p.compress.input_size, facts)
    scoring(facts["task"], p.gates.metric)
    return facts


def check_input_size(size: int | None, facts: Facts) -> None:
    """A compressed input size must be a multiple of the source's stride and no larger than its size;
    an ONNX source keeps its own (no torch graph is finetuned or exported again)."""
    if size is None or size == facts["imgsz"]:
        return
    if facts["format"] == "onnx":
        raise CheckpointError(
            f"compress.input_size {size}: an ONNX source runs at its own {facts['imgsz']} px (nothing is finetuned or exported); "
            "bring its .pt to compress at another size"
        )
    if size % facts["stride"] or size > facts["imgsz"]:
        raise CheckpointError(
            f"compress.input_size {size} must be a multiple of the model's stride {facts['stride']} and at most "
            f"the source's {facts['imgsz']} px"
        )


def image_size(p: Params) -> int:
    """The source's size (``compress.imgsz``), what the source and its control are scored at: bound by
    :func:`bind_source` before any compress step."""
    if p.compress.imgsz is None:
        raise RuntimeError("compress.imgsz is unbound: the runner binds the source (bind_source) before the compress steps")
    return p.compress.imgsz


def run_size(p: Params) -> int:
    """The size the compressed model runs at: ``compress.input_size`` where set (or bound by the
    search), else the source's own (:func:`image_size`)."""
    return p.compress.input_size or image_size(p)


def source_outcome(weights: Path, facts: Facts, seconds: float = 0.0, step: str = "pull") -> Outcome:
    """The outcome of the step in the source role: the model file, and for an ONNX source also the
    FP32 ONNX that calibration, INT8 and evaluation take (no export runs for it)."""
    artifacts = {SOURCE: weights, **({FP32: weights} if is_onnx(weights) else {})}
    return Outcome(step, artifacts=artifacts, details={"source": facts}, seconds=seconds)


def check_against_data(facts: Facts, data: DatasetInfo, label: str) -> None:
    """The source must suit the dataset: its task the labels' kind (pose: the same keypoints), its
    classes the dataset's, in order."""
    kpt = facts.get("kpt_shape")
    check_task_against_labels(facts["task"], (kpt[0], kpt[1]) if kpt else None, label_kind(data.data_yaml), label)
    names = list(facts["names"])
    if names != list(data.names):
        raise CheckpointError(f"{label} predicts {len(names)} classes {names}, but the dataset has {len(data.names)} {list(data.names)}")


def size_line(facts: Facts) -> str:
    """How the run sizes its images, for the log: ``compressed at 96 px (from the model)``."""
    return f"compressed at {facts['imgsz']} px (from {'compress.imgsz' if facts['imgsz_from'] == 'params' else 'the model'})"


def convergence_line(facts: Facts) -> str:
    """The log's word on the source's training history: a warning when it was still improving."""
    c = facts.get("convergence")
    if c is None:
        return "source convergence: unknown (no training history in the file)"
    return f"source {'looks converged' if c['converged'] else 'NOT converged'}: {c['detail']}"
