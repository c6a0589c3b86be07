"""What a step is: its name, the params keys and earlier steps it reads, and its body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import Params
from edgeslim.dag.layout import Layout
from edgeslim.dag.outcome import Outcome

SOURCE = "source"  # the role of the step that provides the model: pull (flow), baseline (DVC), a file (benchmark)


@dataclass(frozen=True)
class StepInput:
    """What a step body may read besides params: its folder layout and the outcomes of its ``needs``."""

    step: str
    layout: Layout
    outcomes: Mapping[str, Outcome]

    def outcome(self, name: str) -> Outcome:
        if name not in self.outcomes:
            raise KeyError(f"step {self.step!r} reads the outcome of {name!r} but does not declare it in its needs")
        return self.outcomes[name]

    def latest(self, artifact: str) -> Path:
        """``artifact`` from the last of the needs (in their declared order) that ran and produced it:
        e.g. ``model`` is the finetuned model when finetuning ran, else the fused source."""
        for outcome in reversed(list(self.outcomes.values())):
            if outcome.skipped is None and artifact in outcome.artifacts:
                return outcome.artifacts[artifact]
        raise KeyError(f"none of {list(self.outcomes)} produced {artifact!r} for step {self.step!r}")

    def dir(self) -> Path:
        return self.layout.dir(self.step)


Body = Callable[[StepInput, Params], Outcome]
Skip = Callable[[Params], str | None]  # why the step does not run with these params, or None


@dataclass(frozen=True)
class Step:
    """One node of the DAG, declared once in :mod:`edgeslim.dag.registry`.

    ``reads``: the params keys the body may read (the only ones it is handed). ``needs``: earlier
    steps whose outcomes it reads, in order (DVC deps). ``code``: library paths the body calls
    besides its own module (DVC code deps). ``skip``: when the params switch the step off.
    """

    name: str
    body: Body
    reads: tuple[str, ...]
    needs: tuple[str, ...]
    code: tuple[str, ...]
    skip: Skip | None = None
    summary: str = ""

    @property
    def module(self) -> str:
        """The body's source file, repo-relative (a DVC code dep of its own stage)."""
        return self.body.__module__.replace(".", "/") + ".py"
