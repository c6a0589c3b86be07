"""Step ``tensorrt``: an engine from a TensorRT-shaped Q/DQ model that keeps the CPU artifact's float
layers, scored like every artifact; skipped, with the reason on record, where it cannot run."""

from __future__ import annotations

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.source import run_size
from edgeslim.dag.step import FP32, StepInput
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.evaluate import TENSORRT, scorer, stage_metrics
from edgeslim.dag.steps.export import exported_from
from edgeslim.quantize.ort_int8 import OrtQuantizer
from edgeslim.quantize.tensorrt import TENSORRT_QDQ_OPTIONS, build_engine, tensorrt_params, unavailable


def tensorrt(inp: StepInput, p: Params) -> Outcome:
    reason = unavailable(p.quantize.tensorrt)
    if reason:
        print(f"TensorRT step skipped: {reason}")
        return Outcome(inp.step, details={"tensorrt": {"skipped": reason}})
    layout, qp = inp.layout, p.quantize
    images = calibration_images(inp.outcome("calibrate").artifact("manifest"))
    float_nodes = inp.outcome("quantize").details["quantization"]["float_nodes"]
    quantizer = OrtQuantizer(inp.latest(FP32), images, run_size(p), qp, layout.quantize_work())  # the INT8 step's ranges
    qdq = quantizer.quantize(layout.tensorrt_qdq(), float_nodes, qp=tensorrt_params(qp), extra_options=TENSORRT_QDQ_OPTIONS)
    engine = build_engine(qdq.path, layout.engine(), qp.tensorrt)
    print(f"TensorRT engine {engine.path}: {engine.detail}")
    if engine.path is None:
        return Outcome(inp.step, details={"tensorrt": engine.as_dict()})
    stages = (scorer(inp, p).stage(TENSORRT, engine.path, None, exported_from(inp)),)
    return Outcome(
        inp.step, artifacts={"engine": engine.path}, metrics=stage_metrics(stages), details={"tensorrt": engine.as_dict()}, stages=stages
    )
