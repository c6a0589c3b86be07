"""A step's typed result: the files it wrote, its figures, its report sections, gates and scored stages.

The same value is passed in memory between Prefect tasks and written as ``outcome.json`` for DVC,
where each stage is its own process. The run's report and its MLflow step records are built from
outcomes, so what a step produced is said once, by the step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.gates import Gate
from edgeslim.report import StageResult


@dataclass(frozen=True)
class Outcome:
    step: str
    artifacts: dict[str, Path] = field(default_factory=dict)  # name → file this step wrote (later steps read them by name)
    metrics: dict[str, float] = field(default_factory=dict)  # flat figures: MLflow metrics, DVC metrics
    details: dict[str, Any] = field(default_factory=dict)  # report sections (JSON): report.json's "details"
    gates: tuple[Gate, ...] = ()
    stages: tuple[StageResult, ...] = ()  # rows of the stage table this step scored
    skipped: str | None = None  # why the step did not run (disabled by params, nothing to do here)
    seconds: float = 0.0  # wall time, task overhead included
    binds: dict[str, Any] = field(default_factory=dict)  # params this step chose for the steps after it (the search's variant)

    @property
    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def artifact(self, name: str) -> Path:
        if name not in self.artifacts:
            raise KeyError(f"step {self.step} produced no artifact {name!r} (it has {sorted(self.artifacts)})")
        return self.artifacts[name]

    def to_dict(self, artifact: Callable[[Path], Any]) -> dict[str, Any]:
        """JSON-able, each artifact path written as ``artifact(path)`` says (relative path, blob reference)."""
        data = asdict(self)
        data["artifacts"] = {k: artifact(v) for k, v in self.artifacts.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], artifact: Callable[[Any], Path]) -> Outcome:
        """The inverse of :meth:`to_dict`, each artifact made a local path again by ``artifact``."""
        return cls(
            step=data["step"],
            artifacts={k: artifact(v) for k, v in data["artifacts"].items()},
            metrics=data["metrics"],
            details=data["details"],
            gates=tuple(Gate(**g) for g in data["gates"]),
            stages=tuple(StageResult(**s) for s in data["stages"]),
            skipped=data["skipped"],
            seconds=data["seconds"],
            binds=data.get("binds", {}),
        )

    def to_json(self, root: Path) -> str:
        """JSON with artifact paths relative to ``root`` (a DVC checkout can move)."""
        return json.dumps(self.to_dict(lambda path: _relative(path, root)), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, root: Path) -> Outcome:
        return cls.from_dict(json.loads(text), lambda relative: root / relative)


def placement_key(step: str) -> str:
    """The details key saying where ``step`` ran when it ran on another work pool (tasks/placement.py)."""
    return f"{step}_placement"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def numeric(section: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a report section (booleans excluded): what MLflow can chart."""
    return {k: float(v) for k, v in section.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
