"""Where the milliseconds are: per-layer ONNX Runtime cost, and pruning to a latency budget.

Why not MACs alone: on a CPU, MACs predict time badly. At the detector's high-resolution layers the
kernels are memory-bound (few channels, large maps) and cost far more per MAC than the deep ones;
ONNX Runtime's NCHWc layout adds reorders that no MAC count sees. So the cost that steers pruning
is measured, in the runtime and on the machine that will run the model (or one like it):

- ``layer_costs_ms``: ONNX Runtime's own profiler on the exported FP32 model, each node's kernel
  time attributed to the top-level ultralytics layer its name comes from (``/model.<i>/...``);
  nodes without a layer (layout reorders, the exporter's glue) are summed as ``other``.
- ``latency_caps``: the per-layer channel-ratio caps rise from ``prune.ratio_shallow`` to
  ``ratio_deep`` with each layer's share of the measured time (the costliest layer gets the deepest
  cut), instead of with depth.
- ``LatencyBudget``: the budget mode's check. Each candidate pruning level is exported and timed
  against the unpruned export, the two called in turn (``edgeslim.runtime.timing.interleaved_ratio``),
  so a spell of interference on a shared machine hits both alike.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeslim.config import PruneParams
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.checkpoint import save_checkpoint
from edgeslim.runtime import onnxruntime_backend
from edgeslim.runtime.session import open_session, runner
from edgeslim.runtime.timing import interleaved_ratio

_LAYER = re.compile(r"^/model\.(\d+)/")
OTHER = -1  # the key of time no layer owns
KERNEL_SUFFIX = "_kernel_time"


def layer_costs_ms(onnx_path: Path, sample: np.ndarray, threads: int, runs: int) -> dict[int, float]:
    """Mean kernel milliseconds per top-level layer index (``OTHER``: time no layer owns)."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = onnxruntime_backend.open_session(onnx_path, threads, profile_prefix=Path(tmp) / "profile")  # its per-node profiler
        feed = {sess.get_inputs()[0].name: sample}
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_layer: dict[int, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith(KERNEL_SUFFIX):
            match = _LAYER.match(e["name"])
            per_layer[int(match.group(1)) if match else OTHER] += e["dur"] / 1000.0 / runs
    return dict(per_layer)


def export_candidate(model: nn.Module, template: dict[str, Any], imgsz: int, opset: int, folder: Path, name: str) -> Path:
    """The FP32 ONNX the flow would export from ``model`` (fused by the exporter), for timing."""
    weights = save_checkpoint(copy.deepcopy(model).eval(), template, folder / f"{name}.pt")
    return export_onnx(weights, imgsz, opset, folder / f"{name}.onnx")


def latency_caps(model: nn.Module, costs: dict[int, float], p: PruneParams) -> dict[nn.Module, float]:
    """Channel-ratio cap per conv, from ``ratio_shallow`` (cheapest layer) to ``ratio_deep`` (costliest)."""
    layers = list(model.model)  # type: ignore[arg-type]  # ultralytics' DetectionModel.model is a Sequential
    owned = [costs.get(i, 0.0) for i in range(len(layers))]
    top = max(owned) or 1.0
    caps: dict[nn.Module, float] = {}
    for index, layer in enumerate(layers):
        cap = p.ratio_shallow + (p.ratio_deep - p.ratio_shallow) * owned[index] / top
        for m in layer.modules():
            if isinstance(m, nn.Conv2d):
                caps[m] = cap
    return caps


@dataclass
class LatencyBudget:
    """Budget mode: a candidate pruning level passes when its FP32 ONNX runs at most ``target`` x the
    unpruned export's latency, measured in paired rounds on ``sample``."""

    target: float
    unpruned: Path
    sample: np.ndarray
    template: dict[str, Any]
    imgsz: int
    opset: int
    threads: int
    runs: int
    rounds: int
    folder: Path
    checks: list[dict[str, Any]] = field(default_factory=list)

    def met(self, model: nn.Module, macs_reduction: float) -> bool:
        candidate = export_candidate(model, self.template, self.imgsz, self.opset, self.folder, f"candidate-{len(self.checks)}")
        unpruned = runner(open_session(self.unpruned, "onnx-fp32", self.threads), self.sample)
        measured = interleaved_ratio(
            unpruned, runner(open_session(candidate, "onnx-fp32", self.threads), self.sample), self.runs, self.rounds, 1
        )
        self.checks.append({"macs_reduction": macs_reduction, **measured.as_dict()})
        print(
            f"  candidate at {macs_reduction:.1%} fewer MACs: FP32 ONNX {measured.ratio:.3f}x the unpruned latency (budget {self.target})"
        )
        return measured.ratio <= self.target
