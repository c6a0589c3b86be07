"""Step ``export``: the model to ship (finetuned when pruning ran, else the fused source) to ONNX
FP32, gated on ONNX Runtime computing what the torch model computes (``onnx_equivalence``)."""

from __future__ import annotations

from pathlib import Path

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import image_size, run_size
from edgeslim.dag.step import FP32, StepInput
from edgeslim.dag.steps.fuse import val_images
from edgeslim.export.onnx_export import export_onnx
from edgeslim.gates import onnx_equivalence_gate
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.reparam.equivalence import compare_runtime

TORCH = "torch"  # the checkpoint the FP32 ONNX was exported from (MACs are counted on it)


def export(inp: StepInput, p: Params) -> Outcome:
    torch_model = inp.latest("model")
    fp32 = export_onnx(torch_model, run_size(p), p.export.opset, inp.layout.fp32())
    _, model = load_checkpoint(torch_model)
    eq = compare_runtime(model, fp32, val_images(inp, p, run_size(p)), p.evaluate.threads)
    print(f"ONNX Runtime FP32 vs torch on {eq.n_images} images: rel L2 {eq.rel_l2:.3e}, max rel {eq.rel_max_abs:.3e}")
    section = eq.as_dict()
    size = {"input_size": run_size(p), "source_size": image_size(p)}  # what the report and a reader of report.json see
    return Outcome(
        inp.step,
        artifacts={FP32: fp32, TORCH: torch_model},
        metrics=numeric(section),
        details={"onnx_equivalence": section, "input": size},
        gates=(onnx_equivalence_gate(eq, p.fuse),),
    )


def exported_from(inp: StepInput) -> Path | None:
    """The checkpoint export made the FP32 ONNX from; None for an ONNX source (export did not run)."""
    export = inp.outcome("export")
    return export.artifact(TORCH) if export.skipped is None else None
