"""Numerical equivalence of two models on real images.

Why relative norms: fused-vs-unfused differences are ~1e-4 absolute on pixel-unit box outputs
but ~3e-7 relative (DESIGN.md); an absolute tolerance would either flag every fusion or none.
Both the relative L2 error and the worst element relative to the output's scale are reported.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Equivalence:
    rel_l2: float  # ||b - a|| / ||a||
    rel_max_abs: float  # max |b - a| / max |a|
    max_abs: float
    n_images: int

    def as_dict(self) -> dict:
        return asdict(self)


def _main_output(out: object) -> torch.Tensor:
    """ultralytics Detect returns (decoded, raw) in eval mode; compare the decoded predictions."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        raise TypeError("model returned a dict; expected a detection tensor")
    return out


def compare_arrays(reference: np.ndarray, candidate: np.ndarray, n_images: int) -> Equivalence:
    reference = reference.astype(np.float64)
    candidate = candidate.astype(np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"output shapes differ: {reference.shape} vs {candidate.shape}")
    diff = np.abs(candidate - reference)
    scale_l2 = float(np.linalg.norm(reference)) or 1.0
    scale_max = float(np.abs(reference).max()) or 1.0
    return Equivalence(
        rel_l2=float(np.linalg.norm(diff)) / scale_l2,
        rel_max_abs=float(diff.max()) / scale_max,
        max_abs=float(diff.max()),
        n_images=n_images,
    )


@torch.no_grad()
def compare_models(reference: nn.Module, candidate: nn.Module, images: np.ndarray) -> Equivalence:
    """Run both models on ``images`` (NCHW float32) and measure how far the candidate departs.

    no_grad, not inference_mode: Detect caches anchors made here, and inference tensors in that
    cache would break a later pruning trace or finetuning of the same model.
    """
    x = torch.from_numpy(images)
    ref = _main_output(reference.eval()(x)).numpy()
    cand = _main_output(candidate.eval()(x)).numpy()
    return compare_arrays(ref, cand, n_images=len(images))
