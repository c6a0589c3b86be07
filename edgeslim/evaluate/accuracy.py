"""mAP of any artifact (.pt, .onnx, an OpenVINO IR, .engine) through one validator: ultralytics' own
for the model's task (detect, segment, pose, obb).

One validator for every format means a mAP difference between stages is the model's, never a
difference in matching or NMS code. The mAP is the one ``gates.metric`` names, by default the task's
primary (edgeslim/data/tasks.py): mask mAP for segment, pose (OKS) mAP for pose, box mAP for detect
and obb; the box mAP is kept beside it. An IR is scored at the precision of its format (ultralytics'
OpenVINO backend would take the runtime's default, bf16 on AMX/AVX512-BF16 CPUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import EvaluateParams
from edgeslim.data.tasks import METRIC_MATCHES, METRIC_RESULTS, Metric, Task, scoring
from edgeslim.evaluate.bootstrap import KEYS, PerImage
from edgeslim.runtime.formats import OPENVINO, Format, default_format, is_ir
from edgeslim.ultra import YOLO


@dataclass(frozen=True)
class Accuracy:
    map50_95: float  # the metric scored (gates.metric; by default the task's primary)
    map50: float
    per_image: Path  # the validator's matches per val image (evaluate/bootstrap.py's PerImage), for the ratio's interval
    box_map50_95: float  # the boxes' mAP (the same figure for detect and obb)


STATIC_BATCH_SUFFIXES = (".onnx", ".engine")  # exported at batch 1
GPU_SUFFIXES = (".engine",)  # TensorRT engines run on the first CUDA device
PER_IMAGE_FILE = "per_image.npz"


def evaluate_map(
    artifact: Path,
    data_yaml: Path,
    imgsz: int,
    ev: EvaluateParams,
    work_dir: Path,
    split: str = "val",
    fmt: Format | None = None,
    runtime_default: bool = False,
    task: Task = "detect",
    metric: Metric | None = None,
) -> Accuracy:
    """Score ``artifact`` on ``split`` of ``data_yaml`` (as ``fmt``; default: its kind's FP32); exports
    run at batch 1 (static). ``runtime_default``: an IR at OpenVINO's own default precision, as
    ultralytics runs it (the benchmark's view of a user's export; never a gate's). ``task``: what the
    model is validated as; ``metric``: which of its mAPs is the figure (None: the task's primary)."""
    metric = scoring(task, metric).metric
    artifact = Path(artifact)
    if is_ir(artifact) and not runtime_default:
        from edgeslim.runtime.openvino_backend import forced_precision

        with forced_precision((fmt or default_format(artifact)).float_precision, ev.threads):
            return _validate(artifact, data_yaml, imgsz, 1, ev, work_dir, split, task, metric)
    assert fmt is None or fmt.runtime != OPENVINO, f"{artifact} is not an OpenVINO IR"
    static = artifact.suffix in STATIC_BATCH_SUFFIXES or is_ir(artifact)
    return _validate(artifact, data_yaml, imgsz, 1 if static else ev.batch, ev, work_dir, split, task, metric)


def _validate(
    artifact: Path, data_yaml: Path, imgsz: int, batch: int, ev: EvaluateParams, work_dir: Path, split: str, task: Task, metric: Metric
) -> Accuracy:
    suffix = artifact.suffix
    model = YOLO(str(artifact), task=task)
    kept: list[PerImage] = []

    def keep(validator) -> None:  # noqa: ANN001 (ultralytics' validator); its stats are cleared once all batches ran
        names = [Path(f).name for f in validator.dataloader.dataset.im_files]
        stats = validator.metrics.stats
        kept[:] = [PerImage(names, {k: list(stats[METRIC_MATCHES[metric] if k == "tp" else k]) for k in KEYS})]

    model.add_callback("on_val_batch_end", keep)
    name = f"val-{Path(artifact).stem}"
    metrics = model.val(
        data=str(data_yaml),
        split=split,
        imgsz=imgsz,
        batch=batch,
        rect=False,  # Model.val defaults to rect batches (pads 160 → 192 px); ONNX can't: score all at imgsz
        conf=ev.conf,
        iou=ev.iou,
        device="0" if suffix in GPU_SUFFIXES else "cpu",
        plots=False,
        verbose=False,
        project=str(work_dir),
        name=name,
        exist_ok=True,
        workers=0,
    )
    per_image = kept[0].save(Path(work_dir) / name / PER_IMAGE_FILE)
    primary = getattr(metrics, METRIC_RESULTS[metric])
    return Accuracy(float(primary.map), float(primary.map50), per_image, box_map50_95=float(metrics.box.map))
