"""Finetune a pruned model with its task's ultralytics trainer without losing the pruned architecture.

Why a trainer subclass: ``YOLO.train()`` rebuilds the model from its yaml and loads the weights
that still fit, silently undoing the pruning (seen with ultralytics 8.4). Here ``get_model`` hands the trainer the
pruned module itself, so data loading, augmentation, loss, EMA, early stopping on val fitness and
checkpointing are ultralytics' own while the architecture stays the one we pruned. The same
trainer runs sparse training (network slimming) by adding an L1 subgradient on every BatchNorm
gamma before each optimizer step, which drives unimportant channels' scales towards zero, and
distillation from the unpruned model (``edgeslim.prune.distill``), wrapped around the pruned module
where ultralytics would wrap its own ``distill_model``.

The trainer is the task's own (segment, pose, obb): its dataset builds the batch's masks, keypoints
or angles and its loss trains them; only the model it is handed is ours.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.obb import OBBTrainer
from ultralytics.models.yolo.pose import PoseTrainer
from ultralytics.models.yolo.segment import SegmentationTrainer

import edgeslim.ultra  # noqa: F401
from edgeslim.baseline.train import print_epoch, trainer_args
from edgeslim.config import BaselineParams, DistillParams, EvaluateParams, FinetuneParams
from edgeslim.data.tasks import Task, metric_key, metric_name
from edgeslim.errors import PruneError
from edgeslim.models.checkpoint import load_checkpoint, model_task, save_checkpoint
from edgeslim.prune.distill import HeadDistillationModel


@dataclass(frozen=True)
class Teacher:
    """Who teaches during finetuning, and how hard (``prune.distill``)."""

    weights: Path
    params: DistillParams


@dataclass(frozen=True)
class FinetuneResult:
    weights: Path
    map50_95: float  # the task's primary val mAP50-95, named by ``metric``
    map50: float
    epochs_run: int
    metric: str  # ultralytics' name of it: mAP50-95(B), mAP50-95(M), mAP50-95(P)

    def as_dict(self) -> dict:
        return {
            "weights": str(self.weights),
            "map50_95": self.map50_95,
            "map50": self.map50,
            "epochs_run": self.epochs_run,
            "metric": self.metric,
        }


TASK_TRAINERS: dict[Task, type[DetectionTrainer]] = {
    "detect": DetectionTrainer,
    "segment": SegmentationTrainer,
    "pose": PoseTrainer,
    "obb": OBBTrainer,
}


class PrunedModelTrainer(DetectionTrainer):
    """A task's trainer whose model is a given module, optionally with L1 on BatchNorm gammas or a
    teacher. Used through :func:`pruned_trainer`, which puts it in front of the task's own trainer."""

    def __init__(self, model: nn.Module, l1_reg: float, overrides: dict[str, Any], teacher: Teacher | None = None) -> None:
        super().__init__(overrides=overrides)
        self._given = model
        self._l1_reg = l1_reg
        self._teacher = teacher

    def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> nn.Module:  # noqa: ARG002
        return self._given

    def set_model_attributes(self) -> None:
        """Wrap the student once it carries the trainer's args (the wrapper reads its image size),
        before ultralytics builds the optimizer, the EMA and the frozen-layer list around it."""
        super().set_model_attributes()
        if self._teacher is not None:
            _, teacher = load_checkpoint(self._teacher.weights)
            dp = self._teacher.params
            self.model = HeadDistillationModel(teacher, self.model, dp.head_weight, dp.temperature)

    def optimizer_step(self) -> None:
        if self._l1_reg:
            for m in self.model.modules():
                if isinstance(m, nn.BatchNorm2d) and m.weight.grad is not None:
                    m.weight.grad.add_(self._l1_reg * torch.sign(m.weight.detach()))
        super().optimizer_step()


def pruned_trainer(model: nn.Module, l1_reg: float, overrides: dict[str, Any], teacher: Teacher | None) -> PrunedModelTrainer:
    """A :class:`PrunedModelTrainer` on ``model``'s task trainer (its dataset, loss and validator)."""
    task_trainer = TASK_TRAINERS[model_task(model)]
    cls = (
        PrunedModelTrainer
        if task_trainer is DetectionTrainer
        else type(f"Pruned{task_trainer.__name__}", (PrunedModelTrainer, task_trainer), {})
    )
    return cls(model, l1_reg, overrides, teacher)


def finetune(
    model: nn.Module,
    template: dict[str, Any],
    data_yaml: Path,
    imgsz: int,
    base: BaselineParams,
    ev: EvaluateParams,
    ft: FinetuneParams,
    epochs: int,
    l1_reg: float,
    out_dir: Path,
    teacher: Teacher | None = None,
) -> FinetuneResult:
    """Train ``model`` (architecture kept) for ``epochs`` and return its best checkpoint as
    ``out_dir/finetuned.pt``; ``l1_reg`` > 0 makes it sparse training, ``teacher`` distils.

    ``template`` is the source checkpoint dict whose metadata the result keeps.
    """
    out_dir = Path(out_dir).resolve()
    trainee = copy.deepcopy(model).float()
    trainee.criterion = None  # the loss caches hyperparameters of its first trainer
    for param in trainee.parameters():
        param.requires_grad_(True)
    seed_ckpt = save_checkpoint(trainee, template, out_dir / "start.pt")
    trainer = pruned_trainer(
        trainee,
        l1_reg,
        overrides={
            **trainer_args(
                imgsz,
                base,
                ev,
                data_yaml,
                out_dir,
                epochs=epochs,
                lr0=ft.lr0,
                optimizer=ft.optimizer,
                warmup_epochs=ft.warmup_epochs,
                patience=ft.patience,
                val=True,
            ),
            "model": str(seed_ckpt),
            **({"dis": teacher.params.feature_weight} if teacher else {}),
        },
        teacher=teacher,
    )
    trainer.add_callback("on_fit_epoch_end", print_epoch)
    trainer.train()
    best = Path(trainer.best)
    if not best.exists():
        raise PruneError(f"finetuning finished without a checkpoint at {best}")
    _, tuned = load_checkpoint(best)
    if _shapes(tuned) != _shapes(model):
        raise PruneError("finetuning changed the pruned architecture (the trainer rebuilt the model)")
    weights = save_checkpoint(tuned, template, out_dir / "finetuned.pt")
    shutil.rmtree(out_dir / "train" / "weights", ignore_errors=True)  # last/best copies: the result is saved
    metrics = trainer.metrics or {}
    task = model_task(tuned)
    return FinetuneResult(
        weights=weights,
        map50_95=float(metrics.get(metric_key(task), 0.0)),
        map50=float(metrics.get(metric_key(task, "mAP50"), 0.0)),
        epochs_run=int(trainer.epoch) + 1,
        metric=metric_name(task),
    )


def _shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(v.shape) for v in model.state_dict().values()]
