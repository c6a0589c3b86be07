"""ONNX artifacts made without edgeslim's recipe: ultralytics' own exports, and dynamic-batch twins.

ultralytics writes every export next to the checkpoint it starts from, and its INT8 ONNX export
(``quantize=8``: ONNX Runtime ``quantize_static`` with its defaults, every node that is not
Conv/Gemm/MatMul excluded) deletes the FP32 file it quantized from. So every export here starts
from a private copy of the checkpoint in its own folder, and nothing one export writes can
overwrite or delete another's file.

Static batch-1 files (what ships) cannot run batch 8, so each ONNX artifact also gets a twin
exported with ``dynamic=True`` (ultralytics makes batch, height and width dynamic) by the same
recipe; batch-8 timings are taken on that twin, batch-1 timings on the shipped file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from edgeslim.config import Params
from edgeslim.data.splits import split_images
from edgeslim.data.synthetic import DatasetInfo
from edgeslim.data.tasks import POSE_YAML_KEYS
from edgeslim.quantize.ort_int8 import quantize_int8
from edgeslim.ultra import YOLO

CALIB_SPLIT = "calib_pool"


def calibration_data_yaml(info: DatasetInfo, out: Path) -> Path:
    """A data.yaml whose ``val`` is the calib-pool split: ultralytics calibrates INT8 on ``val``.

    Calibrating on the held-out val split (ultralytics' default) would leak the images its mAP is
    scored on; the calib pool is what edgeslim's own INT8 calibrates from. A pose set's keypoint
    shape comes along (ultralytics' loader refuses a pose dataset without it).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lists = {}
    for key, split in (("train", "train"), ("val", CALIB_SPLIT)):  # .txt image lists: any split form the user's yaml has
        lists[key] = out.with_name(f"{out.stem}-{key}.txt")
        lists[key].write_text("".join(f"{image}\n" for image in split_images(info.data_yaml, split)))
    task_keys = {k: v for k, v in yaml.safe_load(info.data_yaml.read_text()).items() if k in POSE_YAML_KEYS}
    cfg = {"path": str(out.parent), **{k: str(v) for k, v in lists.items()}, "names": dict(enumerate(info.names)), **task_keys}
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def _export_copy(weights: Path, folder: Path, **export_args: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    start = folder / weights.name
    shutil.copy2(weights, start)
    produced = Path(YOLO(str(start), task="detect").export(format="onnx", device="cpu", verbose=False, **export_args))
    start.unlink()  # only the export is an artifact of this folder
    return produced


def ultralytics_fp32(weights: Path, imgsz: int, folder: Path, dynamic: bool) -> Path:
    """``model.export(format="onnx")`` with ultralytics' defaults (opset, simplify), at ``imgsz``."""
    return _export_copy(weights, folder, imgsz=imgsz, dynamic=dynamic)


def ultralytics_int8(weights: Path, imgsz: int, folder: Path, dynamic: bool, calib_yaml: Path, calib_images: int) -> Path:
    """``model.export(format="onnx", quantize=8, data=...)``, calibrated on ``calib_images`` calib-pool images."""
    return _export_copy(weights, folder, imgsz=imgsz, dynamic=dynamic, quantize=8, data=str(calib_yaml), fraction=calib_images)


def edgeslim_dynamic_fp32(weights: Path, imgsz: int, p: Params, folder: Path) -> Path:
    """Dynamic-batch twin of edgeslim's FP32 export of ``weights``: edgeslim.export.onnx_export pins
    ``dynamic=False``; this is its exporter call with the batch dimension left free."""
    return _export_copy(weights, folder, imgsz=imgsz, opset=p.export.opset, simplify=True, dynamic=True)


def edgeslim_dynamic_int8(fp32: Path, imgsz: int, p: Params, calib_images: list[Path]) -> Path:
    """INT8 twin of a dynamic FP32 twin: the flow's own ``quantize_int8`` with the same images."""
    int8 = fp32.with_name(f"{fp32.stem}-int8.onnx")
    quantize_int8(fp32, calib_images, imgsz, p.quantize, int8)
    return int8


def unslimmed_fp32(weights: Path, imgsz: int, p: Params, folder: Path) -> Path:
    """edgeslim's FP32 export without onnxslim (``simplify=False``): what the slimming pass buys."""
    return _export_copy(weights, folder, imgsz=imgsz, opset=p.export.opset, simplify=False, dynamic=False)
