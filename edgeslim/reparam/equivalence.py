"""Numerical equivalence of two models on real images, and where they part when they are not.

Why relative norms: fused-vs-unfused differences are ~1e-4 absolute on pixel-unit box outputs
but ~3e-7 relative (measured on this project's models); an absolute tolerance would either flag every fusion or none.
Both the relative L2 error and the worst element relative to the output's scale are reported, for
the head's raw outputs (box distributions, class logits, and a segment, pose or obb head's own: mask
coefficients and protos, keypoints, angle) and for the decoded predictions: a
fault in the decode (anchors, strides, DFL) shows only in the latter, a fault in a logit that the
sigmoid saturates shows only in the former.

When a comparison fails, :func:`first_departure` runs both models with forward hooks and names the
first module, in execution order, whose output departs from the reference's by more than the
tolerance: the module a broken fusion (or a corrupted kernel) sits in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeslim.runtime.session import every_output, open_session


@dataclass(frozen=True)
class Equivalence:
    rel_l2: float  # ||b - a|| / ||a||, worst over the compared outputs
    rel_max_abs: float  # max |b - a| / max |a|, worst over the compared outputs
    max_abs: float
    n_images: int
    parts: dict[str, dict[str, float]] = field(default_factory=dict)  # output → its figures
    departure: dict[str, Any] | None = None  # first departing module, when the comparison failed

    def as_dict(self) -> dict:
        return asdict(self)

    def within(self, max_rel_l2: float, max_rel_abs: float) -> bool:
        return self.rel_l2 <= max_rel_l2 and self.rel_max_abs <= max_rel_abs


def _main_output(out: object) -> torch.Tensor:
    """ultralytics Detect returns (decoded, raw) in eval mode; the decoded predictions."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        raise TypeError("model returned a dict; expected a detection tensor")
    return out


HEAD_EXTRAS = ("mask_coefficient", "proto", "kpts", "angle")  # raw outputs segment, pose and obb heads add to a detector's


def output_parts(out: object, nc: int) -> dict[str, np.ndarray]:
    """Decoded boxes and scores, the rows a task's head decodes after them (segment's mask
    coefficients, pose's keypoints, obb's angle) and, where the model returns them, the raw outputs:
    box and class, and the task head's own (mask coefficients and protos, keypoints, angle)."""
    decoded = _main_output(out)
    parts = {"decoded_boxes": decoded[:, :4], "decoded_scores": decoded[:, 4 : 4 + nc]}
    if decoded.shape[1] > 4 + nc:
        parts["decoded_extra"] = decoded[:, 4 + nc :]
    raw = out[1] if isinstance(out, tuple) and len(out) > 1 and isinstance(out[1], dict) else {}
    parts.update({f"raw_{k}": raw[k] for k in ("boxes", "scores", *HEAD_EXTRAS) if isinstance(raw.get(k), torch.Tensor)})
    return {k: v.detach().cpu().numpy() for k, v in parts.items()}


def _figures(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    reference = reference.astype(np.float64)
    candidate = candidate.astype(np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"output shapes differ: {reference.shape} vs {candidate.shape}")
    diff = np.abs(candidate - reference)
    scale_l2 = float(np.linalg.norm(reference)) or 1.0
    scale_max = float(np.abs(reference).max()) or 1.0
    return {"rel_l2": float(np.linalg.norm(diff)) / scale_l2, "rel_max_abs": float(diff.max()) / scale_max, "max_abs": float(diff.max())}


def compare_arrays(reference: np.ndarray, candidate: np.ndarray, n_images: int) -> Equivalence:
    return Equivalence(**_figures(reference, candidate), n_images=n_images)


def compare_parts(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], n_images: int) -> Equivalence:
    """Figures per output both sides have; the headline figures are the worst of them."""
    common = [k for k in reference if k in candidate]
    parts = {k: _figures(reference[k], candidate[k]) for k in common}
    worst = {m: max(p[m] for p in parts.values()) for m in ("rel_l2", "rel_max_abs", "max_abs")}
    return Equivalence(**worst, n_images=n_images, parts=parts)


@torch.no_grad()
def compare_models(reference: nn.Module, candidate: nn.Module, images: np.ndarray) -> Equivalence:
    """Run both models on ``images`` (NCHW float32) and measure how far the candidate departs.

    no_grad, not inference_mode: Detect caches anchors made here, and inference tensors in that
    cache would break a later pruning trace or finetuning of the same model.
    """
    x = torch.from_numpy(images)
    nc = int(reference.model[-1].nc) if hasattr(reference, "model") else _main_output(reference.eval()(x)).shape[1] - 4
    ref = output_parts(reference.eval()(x), nc)
    cand = output_parts(candidate.eval()(x), nc)
    return compare_parts(ref, cand, n_images=len(images))


def _flat(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    return []


def _comparable(model: nn.Module) -> dict[str, nn.Module]:
    """Modules whose output means the same before and after fusion: ultralytics' blocks and layers.

    torch primitives are left out: inside a fused Conv the ``conv`` child's output already includes
    the folded BatchNorm, so comparing it with the unfused ``conv`` would flag every correct fusion.
    """
    return {name: m for name, m in model.named_modules() if name and not type(m).__module__.startswith("torch.")}


def _rename(name: str, rename: dict[str, str]) -> str:
    head, dot, rest = name.partition(".")
    layer, dot2, tail = rest.partition(".")
    prefix = f"{head}.{layer}"
    return f"{rename.get(prefix, prefix)}{dot2}{tail}" if dot else name


@torch.no_grad()
def first_departure(
    reference: nn.Module, candidate: nn.Module, images: np.ndarray, tolerance: float, rename: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """The first module (execution order) whose output departs from the reference's by > ``tolerance``.

    ``rename`` maps candidate layer prefixes (``model.12``) to the reference's when stripping
    renumbered the layers. Outputs are compared as relative L2 over all the module's output tensors.
    """
    rename = rename or {}
    x = torch.from_numpy(images)
    recorded: dict[str, list[torch.Tensor]] = {}
    order: list[tuple[str, list[torch.Tensor]]] = []
    ref_modules = _comparable(reference)
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=n: recorded.update({n: _flat(out)}) if n not in recorded else None)
        for n, m in ref_modules.items()
    ]
    try:
        reference.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: order.append((n, _flat(out)))) for n, m in _comparable(candidate).items()]
    try:
        candidate.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    for name, outs in order:
        ref = recorded.get(_rename(name, rename))
        if not ref or len(ref) != len(outs) or any(a.shape != b.shape for a, b in zip(ref, outs)):
            continue
        a = torch.cat([t.double().flatten() for t in ref])
        b = torch.cat([t.double().flatten() for t in outs])
        err = float((b - a).norm() / (a.norm() or 1.0))
        if not err <= tolerance:  # NaN departs too
            module = candidate.get_submodule(name)
            return {
                "module": name,
                "kind": type(module).__name__,
                "reference_module": _rename(name, rename),
                "rel_l2": err,
                "tolerance": tolerance,
            }
    return None


def exported_parts(outputs: list[np.ndarray], nc: int) -> dict[str, np.ndarray]:
    """An export's outputs, named as :func:`output_parts` names the torch model's: its decoded
    predictions (ultralytics' export mode: boxes, scores, then the task's rows), and a segment
    export's second output, the protos."""
    first = outputs[0]
    parts = {"decoded_boxes": first[:, :4], "decoded_scores": first[:, 4 : 4 + nc]}
    if first.shape[1] > 4 + nc:
        parts["decoded_extra"] = first[:, 4 + nc :]
    if len(outputs) > 1:
        parts["raw_proto"] = outputs[1]
    return parts


@torch.no_grad()
def compare_runtime(model: nn.Module, artifact: Path, images: np.ndarray, threads: int, fmt: str = "onnx-fp32") -> Equivalence:
    """The torch model vs its export running as ``fmt`` (ONNX Runtime FP32, OpenVINO FP32...), on
    every output the export has (:func:`exported_parts`), one image per run (static batch 1)."""
    session = open_session(Path(artifact), fmt, threads)
    nc = int(model.model[-1].nc)
    ref = output_parts(model.eval()(torch.from_numpy(images)), nc)
    return compare_parts(ref, exported_parts(every_output(session, [images[i : i + 1] for i in range(len(images))]), nc), len(images))
