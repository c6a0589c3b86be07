"""A model input or output as every backend describes it (ONNX Runtime's ``NodeArg`` shape: name, shape)."""

from __future__ import annotations

from typing import Any, NamedTuple


class IOSpec(NamedTuple):
    name: str
    shape: list[Any]  # ints; None or a name for a dynamic dim
