"""What a step is: its name, the params keys and earlier steps it reads, and its body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import Params
from edgeslim.dag.fan import Fan, sequential
from edgeslim.dag.layout import Layout
from edgeslim.dag.outcome import Outcome
from edgeslim.data.tasks import Task

SOURCE = "source"  # the role of the step that provides the model: pull (flow), the source stage (DVC), a file (benchmark)
FP32 = "fp32"  # the FP32 ONNX the ONNX steps take: export's, or an ONNX source itself


@dataclass(frozen=True)
class StepInput:
    """What a step body may read besides params: its folder layout, the outcomes of its ``needs``, and
    the runner's :class:`~edgeslim.dag.fan.Fan` for independent work inside the step."""

    step: str
    layout: Layout
    outcomes: Mapping[str, Outcome]
    fan: Fan = sequential

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


def source_task(inp: StepInput) -> Task:
    """The source model's task (detect, segment, pose, obb), as the step in the source role read it
    from the checkpoint or the ONNX metadata: what every validation of the run is scored as."""
    return inp.outcome(SOURCE).details["source"]["task"]


def onnx_source_skip(torch: bool, outcomes: Mapping[str, Outcome]) -> str | None:
    """Why a step on the PyTorch graph (``torch``) does not run: the source is an ONNX model."""
    source = outcomes.get(SOURCE)
    if torch and source is not None and source.skipped is None and FP32 in source.artifacts:
        return "the source is an ONNX model: it has no PyTorch graph to work on"
    return None


Body = Callable[[StepInput, Params], Outcome]
Skip = Callable[[Params], str | None]  # why the step does not run with these params, or None


@dataclass(frozen=True)
class Step:
    """One node of the DAG, declared once in :mod:`edgeslim.dag.registry`.

    ``reads``: the params keys the body may read (the only ones it is handed). ``needs``: earlier
    steps whose outcomes it reads, in order (DVC deps). ``code``: library paths the body calls
    besides its own module (DVC code deps). ``skip``: when the params switch the step off.
    ``torch``: the step works on the source's PyTorch graph, so an ONNX source skips it.
    """

    name: str
    body: Body
    reads: tuple[str, ...]
    needs: tuple[str, ...]
    code: tuple[str, ...]
    skip: Skip | None = None
    summary: str = ""
    torch: bool = False

    @property
    def module(self) -> str:
        """The body's source file, repo-relative (a DVC code dep of its own stage)."""
        return self.body.__module__.replace(".", "/") + ".py"
