"""The subject of the benchmarks that study one step on the unpruned model (calibration, fan-out):
``--weights`` or a registered model, the dataset, and the flow's own steps through the FP32 export."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import Params, load_params
from edgeslim.dag.outcome import Outcome
from edgeslim.data.synthetic import DatasetInfo
from edgeslim.data.tasks import Task


@dataclass(frozen=True)
class Unpruned:
    p: Params  # bound to the source's own facts (image size, classes)
    data: DatasetInfo
    work: Path  # this benchmark run's folder
    weights: Path  # the source checkpoint
    task: Task  # the source's, which every validation is scored as
    outcomes: dict[str, Outcome]  # dataset ... export, pruning off


def unpruned_export(args: argparse.Namespace, run_name: str) -> Unpruned:
    """``args``: ``--params``, ``-S`` overrides, ``--weights`` or ``--model`` (default: ``<model_name>@champion``)."""
    from benchmarks.subjects import registered_subject
    from edgeslim import workspace
    from edgeslim.cli import _tracking_uri
    from edgeslim.dag.layout import Layout
    from edgeslim.dag.registry import DATASET, through
    from edgeslim.dag.run import run_steps
    from edgeslim.dag.source import bind_source, source_outcome
    from edgeslim.dag.step import SOURCE

    p = load_params(args.params, [*args.set, "prune.enabled=false"])
    workspace.configure_environment(p)
    data = workspace.dataset(p)
    work = workspace.new_run_dir(p, run_name)
    weights = args.weights or registered_subject(_tracking_uri(p), args.model or p.model_name, p, work / "source").weights
    p, facts = bind_source(p, weights)
    source = {SOURCE: source_outcome(weights, facts, step=SOURCE)}
    outcomes = run_steps((DATASET, *through("export")), p, Layout(work, datasets=workspace.datasets_dir(p)), source)
    return Unpruned(p, data, work, weights, facts["task"], outcomes)
