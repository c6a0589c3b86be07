from __future__ import annotations

from pathlib import Path

from edgeslim.calibration.sample import sample_calibration
from edgeslim.config import CalibrationParams, QuantizeParams
from edgeslim.export.onnx_export import export_onnx
from edgeslim.quantize.ort_int8 import QuantReport, quantize_int8
from tasks.step import step


@step("export-onnx")
def export_task(weights: Path, imgsz: int, opset: int, out_path: Path) -> Path:
    return export_onnx(weights, imgsz, opset, out_path)


@step("calibration-set")
def calibration_task(pool: Path, cp: CalibrationParams, manifest: Path) -> tuple[list[Path], str]:
    images, digest = sample_calibration(pool, cp.num_images, cp.seed, manifest)
    print(f"calibration set: {len(images)} images from {pool}, manifest {manifest}")
    return images, digest


@step("quantize-int8")
def quantize_task(fp32: Path, images: list[Path], imgsz: int, qp: QuantizeParams, out_path: Path) -> QuantReport:
    report = quantize_int8(fp32, images, imgsz, qp, out_path)
    print(f"INT8: {report.quantized_nodes} quantized tensors, {len(report.excluded_nodes)} head nodes kept float")
    return report
