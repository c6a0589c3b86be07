"""What the search explores: model variants (prune level × activation × input size), each run in every
format of the target, and the order in which they can be expected to keep accuracy.

Why variants and formats apart: weights belong to a variant, so training (the costly part) is per
variant, while latency is per (variant, format) and costs only an export and a timing.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeslim.config import Activation
from edgeslim.runtime.formats import FORMATS

# How much a format's precision can be expected to cost in accuracy, least first: a candidate that is
# no slower than another and no worse on every axis dominates it before anything is trained.
PRECISION_RANK = {"fp32": 0, "bf16": 1, "int8": 2}


@dataclass(frozen=True)
class Variant:
    prune: float  # share of MACs removed (prune.target_macs_reduction)
    activation: Activation  # compress.activation
    size: int  # input size in px (compress.input_size)

    @property
    def name(self) -> str:
        return f"prune{round(100 * self.prune)}-{self.activation}-{self.size}px"

    def binds(self) -> dict[str, object]:
        """The params that make the fixed recipe build this variant."""
        return {"prune.target_macs_reduction": self.prune, "compress.activation": self.activation, "compress.input_size": self.size}


@dataclass(frozen=True)
class Candidate:
    variant: Variant
    format: str

    @property
    def name(self) -> str:
        return f"{self.variant.name}/{self.format}"


def input_sizes(source: int, stride: int, scales: list[float]) -> list[int]:
    """Each scale of the source's size rounded down to the stride (never under one stride), largest
    first, without repeats: 0.8 of 160 px is 128, 0.7 of 320 is 224."""
    return sorted({max(stride, int(source * s) // stride * stride) for s in scales}, reverse=True)


def variants(levels: list[float], activations: list[Activation], sizes: list[int]) -> list[Variant]:
    return [Variant(level, act, size) for size in sizes for level in sorted(levels) for act in activations]


def candidates(vs: list[Variant], formats: list[str]) -> list[Candidate]:
    return [Candidate(v, f) for v in vs for f in formats]


def at_least_as_accurate(a: Candidate, b: Candidate) -> bool:
    """Whether ``a`` can be expected to keep at least ``b``'s accuracy, axis by axis, before training:
    pruned no more, the same activation or SiLU kept where ``b`` swapped it, an input no smaller, a
    precision no lower."""
    act = a.variant.activation == b.variant.activation or a.variant.activation == "keep"
    precision = PRECISION_RANK[FORMATS[a.format].precision] <= PRECISION_RANK[FORMATS[b.format].precision]
    return a.variant.prune <= b.variant.prune and act and a.variant.size >= b.variant.size and precision
