"""Step ``openvino``: the target's OpenVINO formats from the gated FP32 ONNX, each scored at its own
precision by the one validator; skipped, with the reason, where the target lists none.

- ``openvino-fp32``: the IR of the FP32 ONNX (ultralytics' layout), gated on computing what the
  torch model computes (``openvino_equivalence``), as the ONNX export is.
- ``openvino-bf16``: the same IR, run at bf16; a precision change, so gated on its mAP only (its
  distance from the torch model is reported). Only where the CPU has AMX or AVX512-BF16.
- ``openvino-int8``: NNCF INT8 on the curated calibration set. ``ptq`` keeps float what the ONNX
  INT8 step kept float (``quantize.keep_float``'s decode nodes, and the layers its accuracy-aware
  fallback chose), so both INT8 formats carry the same float set; ``accuracy_control`` is NNCF's own
  search from the same start, aimed at the gate.

A format this machine cannot build or run is left out with the reason, never failing the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx

from edgeslim.config import Params, formats_of, profile_of
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import run_size
from edgeslim.dag.step import FP32, StepInput
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.evaluate import scorer, stage_metrics
from edgeslim.dag.steps.export import exported_from
from edgeslim.dag.steps.fuse import val_images
from edgeslim.data.images import preprocess
from edgeslim.fleet.onnx_info import FORMAT_KEY  # metadata.yaml key naming an IR's format (ultralytics keeps unknown keys)
from edgeslim.gates import equivalence_gate_named
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.quantize.head import kept_float
from edgeslim.reparam.equivalence import compare_runtime
from edgeslim.runtime.formats import FORMATS, OPENVINO
from edgeslim.runtime.session import unavailable


def wanted(p: Params) -> list[str]:
    return [f for f in formats_of(p.target.name, p.target.profiles) if FORMATS[f].runtime == OPENVINO]


def openvino(inp: StepInput, p: Params) -> Outcome:
    formats = wanted(p)
    if not formats:
        return Outcome(inp.step, skipped=f"target {profile_of(p.target.name)} lists no OpenVINO format")
    left_out = {f: reason for f in formats if (reason := unavailable(f))}
    for fmt, reason in left_out.items():
        print(f"{fmt} left out: {reason}")
    build = [f for f in formats if f not in left_out]
    if not build:
        return Outcome(inp.step, details={"openvino": {"left_out": left_out}})
    from edgeslim.runtime import openvino_backend as ovb

    folder, imgsz = inp.dir(), run_size(p)
    try:
        fp32_ir = ovb.convert_onnx(inp.latest(FP32), ovb.ir_dir("model-fp32", folder), "model-fp32")
    except Exception as exc:  # noqa: BLE001 (OpenVINO refusing the model leaves its formats out, never fails the run)
        why = f"OpenVINO {ovb.version()} cannot convert the FP32 ONNX: {_first_line(exc)}"
        print(why)
        return Outcome(inp.step, details={"openvino": {"left_out": {**left_out, **dict.fromkeys(build, why)}}})
    built: dict[str, Path] = {}
    details: dict[str, object] = {"openvino_version": ovb.version(), "left_out": left_out}
    gates = []
    torch_model = exported_from(inp)
    if torch_model is not None:
        images = val_images(inp, p, imgsz)
        _, model = load_checkpoint(torch_model)
        eq = compare_runtime(model, fp32_ir, images, p.evaluate.threads, "openvino-fp32")
        print(f"OpenVINO FP32 vs torch on {eq.n_images} images: rel L2 {eq.rel_l2:.3e}")
        details["openvino_equivalence"] = eq.as_dict()
        gates.append(equivalence_gate_named(eq, p.fuse, "openvino_equivalence", "OpenVINO FP32 vs torch"))
        if "openvino-bf16" in build:
            bf16 = compare_runtime(model, fp32_ir, images, p.evaluate.threads, "openvino-bf16")
            print(f"OpenVINO BF16 vs torch: rel L2 {bf16.rel_l2:.3e} (a precision change: gated on its mAP)")
            details["bf16_vs_torch"] = bf16.as_dict()
    for fmt in build:
        if fmt == "openvino-int8":
            try:
                built[fmt] = _int8(inp, p, fp32_ir, folder, imgsz, details)
            except Exception as exc:  # noqa: BLE001 (NNCF refusing the model leaves openvino-int8 out, never fails the run)
                left_out[fmt] = f"NNCF could not quantize the IR: {_first_line(exc)}"
                print(f"{fmt} left out: {left_out[fmt]}")
                continue
        else:
            stem = f"model-{FORMATS[fmt].precision}"
            target = ovb.ir_dir(stem, folder)
            if target != fp32_ir:
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                for f in fp32_ir.iterdir():
                    shutil.copyfile(f, target / (f.name.replace("model-fp32", stem)))
            built[fmt] = target
        ovb.label(built[fmt], fmt, FORMAT_KEY)
    stages = scorer(inp, p).stages([(fmt, path, None) for fmt, path in built.items()], torch_model, inp.fan)
    return Outcome(
        inp.step,
        artifacts={fmt: path for fmt, path in built.items()},
        metrics={**stage_metrics(stages), **numeric(details.get("int8", {}))},  # type: ignore[arg-type]
        details={"openvino": details},
        gates=tuple(gates),
        stages=stages,
    )


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _int8(inp: StepInput, p: Params, fp32_ir: Path, folder: Path, imgsz: int, details: dict[str, object]) -> Path:
    from edgeslim.runtime import openvino_backend as ovb

    op = p.quantize.openvino
    images = calibration_images(inp.outcome("calibrate").artifact("manifest"))
    batches: list[np.ndarray] = [preprocess(path, imgsz) for path in images]
    fallback = inp.outcome("quantize").details.get("quantization", {}).get("float_nodes", [])
    float_nodes = kept_float(onnx.load(str(inp.latest(FP32))), p.quantize.keep_float) + list(fallback)
    ignored = ovb.ignored_patterns(float_nodes)
    out, meta = ovb.ir_dir("model-int8", folder), ovb.onnx_metadata(inp.latest(FP32))
    subset = min(op.subset_size, len(batches))
    if op.method == "accuracy_control":
        score = scorer(inp, p)
        ir = ovb.quantize_accuracy_control(
            fp32_ir, batches, out, "model-int8", ignored, subset, meta,
            lambda path: score.map50_95(path, FORMATS["openvino-int8"]), op.max_drop, op.max_float_layers,
        )  # fmt: skip
    else:
        ir = ovb.quantize_ptq(fp32_ir, batches, out, "model-int8", ignored, subset, meta)
    kept, fake_quantize = ovb.float_convolutions(ir), ovb.fake_quantized_layers(ir)
    print(f"OpenVINO INT8 ({op.method}): {fake_quantize} FakeQuantize nodes, {len(kept)} convolutions float")
    details["int8"] = {"method": op.method, "fake_quantize_nodes": fake_quantize, "float_convolutions": len(kept)}
    details["int8_float_convolutions"] = kept
    return ir
