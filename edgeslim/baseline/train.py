"""Train the tiny baseline detector from yaml with ultralytics, on the CPU, offline.

Pure in the sense the flow needs: (params, dataset) → best checkpoint + a metrics report; MLflow
registration happens in the registry layer.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils.patches import torch_load

from edgeslim.config import BaselineParams, EvaluateParams
from edgeslim.data.label_kind import label_kind
from edgeslim.data.tasks import metric_key, metric_name
from edgeslim.errors import CheckpointError, DataError
from edgeslim.models.arch import write_arch_yaml
from edgeslim.models.dual import DualDetectionTrainer, is_dual_cfg
from edgeslim.ultra import YOLO


@dataclass(frozen=True)
class TrainResult:
    weights: Path
    arch_yaml: Path
    map50_95: float  # the task's primary mAP50-95, named by ``metric``
    map50: float
    epochs_run: int
    metric: str  # ultralytics' name of it: mAP50-95(B), mAP50-95(M), mAP50-95(P)


def print_epoch(trainer) -> None:  # noqa: ANN001 (ultralytics trainer)
    """One line per epoch: ultralytics' own bars are off (YOLO_VERBOSE=False keeps logs readable).
    The mAP shown is the task's primary one (mask mAP for segment, pose mAP for pose), so named."""
    if trainer.epoch >= trainer.epochs:  # ultralytics fires once more for the final best.pt validation
        return
    m = trainer.metrics or {}
    loss = trainer.tloss
    total = float(sum(loss.values()) if isinstance(loss, dict) else loss.sum())
    task = trainer.args.task
    shown = metric_name(task)
    print(
        f"epoch {trainer.epoch + 1}/{trainer.epochs}: loss {total:.3f} "
        f"{shown} {m.get(metric_key(task), 0.0):.4f} mAP50 {m.get(metric_key(task, 'mAP50'), 0.0):.4f}",
        flush=True,
    )


def trainer_args(
    imgsz: int, base: BaselineParams, ev: EvaluateParams, data_yaml: Path, out_dir: Path, **schedule: object
) -> dict[str, object]:
    """What every edgeslim training run tells ultralytics: the image size; the baseline's batch, seed
    and workers; CPU, deterministic, no plots (they fetch fonts, offline here); validation at the flow's
    conf/iou. ``schedule`` is the run's own: epochs, lr0, warmup, patience (and optimizer)."""
    return dict(
        data=str(data_yaml),
        imgsz=imgsz,
        batch=base.batch,
        seed=base.seed,
        deterministic=True,
        workers=base.workers,
        device="cpu",
        amp=False,
        plots=False,
        project=str(out_dir),
        name="train",
        exist_ok=True,
        pretrained=False,
        verbose=False,
        conf=ev.conf,
        iou=ev.iou,
        **schedule,
    )


def resumable(last: Path) -> bool:
    """Whether ``last`` is an interrupted run's checkpoint: ultralytics strips the optimizer and sets
    epoch -1 when a run finishes, so a checkpoint that still has both was cut short."""
    if not last.exists():
        return False
    ckpt = torch_load(last, map_location="cpu", weights_only=False)
    return ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None


def kpt_shape(data_yaml: Path) -> tuple[int, int]:
    """The keypoints' shape a pose data.yaml declares (ultralytics' ``kpt_shape``)."""
    shape = label_kind(data_yaml).kpt_shape
    if shape is None:
        raise DataError(f"{data_yaml} has no kpt_shape [keypoints, 2 or 3], which a pose model needs")
    return shape


def train_baseline(p: BaselineParams, ev: EvaluateParams, data_yaml: Path, nc: int, out_dir: Path, *, resume: bool = False) -> TrainResult:
    """Train from scratch and return the best checkpoint (copied to ``out_dir/baseline.pt``).

    With ``resume``, a run that was interrupted in ``out_dir`` (killed, or the machine went away) goes
    on from its ``last.pt`` with ultralytics' own resume, which restores the optimizer, the EMA and
    the early stopper: long trainings (the benchmark's converged reference) then survive a stop.
    Only callers whose ``out_dir`` is keyed by the params may ask for it, since ultralytics resumes
    with the checkpoint's own arguments."""
    out_dir = Path(out_dir).resolve()
    arch_yaml = write_arch_yaml(p, nc, out_dir, kpt_shape(data_yaml) if p.task == "pose" else None)
    args = trainer_args(p.imgsz, p, ev, data_yaml, out_dir, epochs=p.epochs, lr0=p.lr0, warmup_epochs=p.warmup_epochs, patience=p.patience)
    last = out_dir / "train" / "weights" / "last.pt"
    if resume and resumable(last):
        print(f"resuming the interrupted training in {last.parent.parent}", flush=True)
        # save_dir too: ultralytics would otherwise resume into the folder the checkpoint's args name,
        # wherever the run started (a cache folder moved since, say)
        args.update(resume=str(last), save_dir=str(last.parent.parent))
    if is_dual_cfg(yaml_model_load(arch_yaml)):
        # YOLO() would build a plain DetectionModel from the yaml; the dual trainer builds the
        # dual-head model and trains it with the auxiliary loss.
        trainer = DualDetectionTrainer(overrides={**args, "model": str(arch_yaml), "task": "detect", "mode": "train"})
        trainer.add_callback("on_fit_epoch_end", print_epoch)
        trainer.train()
    else:
        model = YOLO(str(arch_yaml), task=p.task)
        model.add_callback("on_fit_epoch_end", print_epoch)
        model.train(**args)
        trainer = model.trainer  # type: ignore[assignment]  # a DetectionTrainer once train() ran
    best = Path(trainer.best)
    if not best.exists():
        raise CheckpointError(f"training finished without a checkpoint at {best}")
    weights = out_dir / "baseline.pt"
    shutil.copy2(best, weights)
    metrics: dict[str, float] = trainer.metrics or {}
    return TrainResult(
        weights=weights,
        arch_yaml=arch_yaml,
        map50_95=float(metrics.get(metric_key(p.task), 0.0)),
        map50=float(metrics.get(metric_key(p.task, "mAP50"), 0.0)),
        epochs_run=int(trainer.epoch) + 1,
        metric=metric_name(p.task),
    )
