"""Parent side of the measurements: spawn one probe per (artifact, batch), count MACs, read files.

Latency and peak memory come from benchmarks.probe in a child process (see its docstring for why);
MACs and parameters come from the torch model because an ONNX graph has no MAC counter that sees
through ultralytics' fused layers (an INT8 graph runs the same MACs as its FP32 source).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from thop import profile

from edgeslim.data.images import list_images, preprocess_batch
from edgeslim.models.checkpoint import load_checkpoint
from benchmarks.probe import RESULT_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[1]
ERROR_TAIL_CHARS = 2000
DEFAULT_ONNX_DOMAIN = ("", "ai.onnx")


@dataclass(frozen=True)
class Timing:
    """How every latency probe of one benchmark runs (the same for all artifacts)."""

    threads: int
    runs: int
    warmup: int
    timeout_s: float


def save_inputs(val_dir: Path, imgsz: int, count: int, out: Path) -> Path:
    """The first ``count`` held-out val images, letterboxed as the flow feeds them, as one .npy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, preprocess_batch(list_images(val_dir)[:count], imgsz))
    return out


def probe(artifact: Path, inputs: Path, batch: int, timing: Timing, device: str = "cpu", precision: str = "fp32",
          providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> dict:
    """Latency, throughput and peak memory of ``artifact`` at ``batch``, measured in a fresh process."""
    spec = {
        "artifact": str(artifact), "runtime": "ort" if artifact.suffix == ".onnx" else "torch", "inputs": str(inputs),
        "batch": batch, "threads": timing.threads, "runs": timing.runs, "warmup": timing.warmup,
        "device": device, "precision": precision, "providers": list(providers),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.probe", json.dumps(spec)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=timing.timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"probe of {artifact.name} at batch {batch} ran past {timing.timeout_s:.0f}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return {"file": str(artifact), **json.loads(line[len(RESULT_PREFIX):])}
    return {"error": f"probe exited {done.returncode}: {(done.stderr or done.stdout)[-ERROR_TAIL_CHARS:]}"}


def model_cost(weights: Path, imgsz: int) -> dict:
    """MACs (thop, one imgsz x imgsz image) and parameter count of a checkpoint's model."""
    _, model = load_checkpoint(weights)
    x = torch.zeros(1, 3, imgsz, imgsz)
    macs, _ = profile(copy.deepcopy(model), inputs=(x,), verbose=False)
    return {"macs": int(macs), "params": int(sum(p.numel() for p in model.parameters())), "source": weights.name}


def onnx_opset(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in DEFAULT_ONNX_DOMAIN)


def input_shape(path: Path) -> list[int | str]:
    """The ONNX graph input's shape: ints for static dimensions, names for dynamic ones."""
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
