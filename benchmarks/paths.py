"""Committed results name files relative to the repository: an absolute path says only where one
machine kept its checkout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def repo_relative(value: Any) -> Any:
    """``value`` (a JSON-able tree) with every absolute path inside the repository made relative to it."""
    if isinstance(value, dict):
        return {k: repo_relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repo_relative(v) for v in value]
    if isinstance(value, str) and value.startswith(f"{REPO}/"):
        return value[len(str(REPO)) + 1 :]
    return value
