"""The same artifacts on a GPU, where one exists: PyTorch CUDA FP32/FP16, ONNX Runtime CUDA and TensorRT EPs.

Measured with the same probe (fresh process, same runs and warm-up) as the CPU figures; host RSS
is still reported, and for PyTorch also the CUDA allocator's peak. An execution provider missing
from this onnxruntime build is recorded as skipped with the providers that do exist.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.artifact_kind import PYTORCH, Artifact
from benchmarks.measure import Timing, probe, summarize
from edgeslim.runtime import onnxruntime_backend

CPU_EP = "CPUExecutionProvider"
ONNX_EPS = {"onnxruntime-cuda": "CUDAExecutionProvider", "onnxruntime-tensorrt": "TensorrtExecutionProvider"}
TORCH_PRECISIONS = ("fp32", "fp16")


def _measure(file: Path, inputs: Path, batch: int, timing: Timing, **probe_args: object) -> dict:
    """Rounds back to back: the GPU is not shared with the CPU probes, so there is nothing to interleave."""
    return summarize(file, batch, [probe(file, inputs, batch, timing, **probe_args) for _ in range(timing.rounds)], timing)


def _torch_rows(a: Artifact, inputs: Path, batches: tuple[int, ...], timing: Timing) -> dict:
    return {
        f"pytorch-cuda-{precision}": {
            f"batch{b}": _measure(a.path if b == 1 else a.batch_twin, inputs, b, timing, device="cuda", precision=precision)
            for b in batches
        }
        for precision in TORCH_PRECISIONS
    }


def _onnx_rows(a: Artifact, inputs: Path, batches: tuple[int, ...], timing: Timing, available: list[str]) -> dict:
    rows = {}
    for label, ep in ONNX_EPS.items():
        if ep not in available:
            rows[label] = {"skipped": f"{ep} not in this onnxruntime build's providers {available}"}
            continue
        rows[label] = {
            f"batch{b}": _measure(a.path if b == 1 else a.batch_twin, inputs, b, timing, device="cuda", providers=(ep, CPU_EP))
            for b in batches
        }
    return rows


def gpu_section(subjects: list[tuple[str, list[Artifact], Path]], batches: tuple[int, ...], timing: Timing) -> dict:
    """Per subject key, per artifact: runtime → batch → probe result; or why the section was skipped."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    available = onnxruntime_backend.available_providers()
    out: dict = {"device": torch.cuda.get_device_name(0), "onnxruntime_providers": available, "subjects": {}}
    for key, artifacts, inputs in subjects:
        out["subjects"][key] = {
            a.name: _torch_rows(a, inputs, batches, timing) if a.runtime == PYTORCH else _onnx_rows(a, inputs, batches, timing, available)
            for a in artifacts
            if a.absent is None
        }
    return out
