from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgeslim.calibration.curate import CalibrationSet, build_calibration_set
from edgeslim.config import CalibrationParams, EvaluateParams, QuantizeParams
from edgeslim.evaluate.accuracy import evaluate_map
from edgeslim.export.onnx_export import export_onnx
from edgeslim.quantize.fallback import QuantReport, quantize_with_fallback
from edgeslim.quantize.ort_int8 import OrtQuantizer
from edgeslim.quantize.tensorrt import TENSORRT_QDQ_OPTIONS, Engine, build_engine, tensorrt_params, unavailable
from tasks.step import step

QUANTIZE_WORK = "quantize-work"  # run-folder subfolder: pre-processed model, cached calibration ranges
TENSORRT_QDQ = "model-int8-tensorrt.onnx"
TENSORRT_ENGINE = "model-int8.engine"


@step("export-onnx")
def export_task(weights: Path, imgsz: int, opset: int, out_path: Path) -> Path:
    return export_onnx(weights, imgsz, opset, out_path)


@step("calibration-set")
def calibration_task(
    pool: Path, fp32: Path, imgsz: int, class_names: tuple[str, ...], cp: CalibrationParams, out_dir: Path, threads: int
) -> CalibrationSet:
    cs = build_calibration_set(pool, fp32, imgsz, class_names, cp, out_dir, threads)
    r = cs.report
    print(
        f"calibration set ({r['method']}): {r['images']} of {r['pool_images']} images from {pool}, objects from {r['objects_from']}; "
        f"strata covered {r['selected_strata_covered']}/{r['strata_total']} (random sample: {r['random_strata_covered']}), "
        f"manifest {cs.manifest}"
    )
    return cs


def map_scorer(data_yaml: Path, imgsz: int, ev: EvaluateParams, work_dir: Path) -> Callable[[Path], float]:
    """mAP50-95 through the validator that scores every artifact, for the fallback to call."""
    return lambda artifact: evaluate_map(artifact, data_yaml, imgsz, ev, work_dir).map50_95


@step("quantize-int8")
def quantize_task(
    fp32: Path, images: list[Path], imgsz: int, qp: QuantizeParams, out_path: Path, score: Callable[[Path], float] | None, target: float, ceiling: float
) -> QuantReport:
    quantizer = OrtQuantizer(fp32, images, imgsz, qp, out_path.parent / QUANTIZE_WORK)
    report = quantize_with_fallback(quantizer, out_path, fp32.stat().st_size, qp.fallback, score, target, ceiling)
    for i, s in enumerate(report.steps):
        print(f"INT8 attempt {i}: float {s.float_layers or 'nothing more'} ({s.float_nodes} nodes), mAP50-95 {s.map50_95:.4f} (target {target:.4f})")
    print(f"INT8: {report.outcome}; {len(report.keep_float_nodes)} decode/head nodes float by quantize.keep_float; file {100 * report.size_ratio:.1f}% of FP32")
    return report


@step("tensorrt")
def tensorrt_task(fp32: Path, images: list[Path], imgsz: int, qp: QuantizeParams, float_nodes: list[str], run_dir: Path) -> Engine:
    """Engine from a TensorRT-shaped Q/DQ model with the CPU artifact's float layers; skipped, with the reason, where it cannot run."""
    reason = unavailable(qp.tensorrt)
    if reason:
        print(f"TensorRT step skipped: {reason}")
        return Engine(None, reason)
    quantizer = OrtQuantizer(fp32, images, imgsz, qp, run_dir / QUANTIZE_WORK)  # the INT8 step's calibration ranges
    qdq = quantizer.quantize(run_dir / TENSORRT_QDQ, float_nodes, qp=tensorrt_params(qp), extra_options=TENSORRT_QDQ_OPTIONS)
    engine = build_engine(qdq.path, run_dir / TENSORRT_ENGINE, qp.tensorrt)
    print(f"TensorRT engine {engine.path}: {engine.detail}")
    return engine
