"""Knowledge distillation for finetuning a pruned detector: the unpruned model teaches the pruned one.

Built on ultralytics' own ``DistillationModel`` (8.4): forward hooks capture the Detect head's
inputs (neck features) and its raw outputs in teacher and student; its loss is a score-weighted L2
between the student's neck features, through a learned 1x1 projector, and the teacher's, weighted
by the teacher's class scores at each anchor (``dis``). Ultralytics uses the head only to weight
that feature term. A pruned student has the teacher's exact head layout (same anchors, classes and
DFL bins), so it can also match the head's *outputs* directly, which is what matters most right
after pruning has scrambled the features. That is the term added here:

- classes: binary cross-entropy of the student's class logits against the teacher's sigmoid scores
  (soft labels at every anchor, the background included);
- boxes: KL divergence between the teacher's and the student's DFL distributions (softmax over the
  ``reg_max`` bins of each side, temperature ``T``, scaled by T²), weighted by the teacher's best
  class score at the anchor, so confident anchors dominate and empty background does not.

- a task head's own outputs (segment's mask coefficients, pose's keypoints, obb's angle): the
  squared difference of the raw per-anchor outputs, weighted by the same teacher confidence; and
  segment's mask prototypes, a mean squared difference over the whole map. Without it a pruned
  segment or pose model would learn its masks and keypoints from the task loss alone, however far
  pruning moved them.

The terms are summed and weighted by ``prune.distill.head_weight``; ``feature_weight`` is
ultralytics' ``dis`` (0 turns the neck term off). The teacher is frozen in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional
from ultralytics.nn.distill_model import DistillationModel
from ultralytics.nn.modules.head import Detect

TASK_OUTPUTS = ("mask_coefficient", "kpts", "angle")  # the raw per-anchor outputs a task head adds (ultralytics' keys)
PROTO = "proto"  # a segment head's prototype masks
HEAD_LOSS = "head_kd"  # the loss item the head term is logged as, next to ultralytics' ``dis_loss``


def head_distillation_loss(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], reg_max: int, temperature: float
) -> torch.Tensor:
    """Class BCE against the teacher's soft scores plus score-weighted DFL KL, one scalar."""
    s_cls, t_cls = student["scores"], teacher["scores"].detach()
    soft = t_cls.sigmoid()
    cls_term = functional.binary_cross_entropy_with_logits(s_cls, soft, reduction="mean")
    weight = soft.max(dim=1).values  # (B, anchors): the teacher's confidence per anchor
    b, _, a = student["boxes"].shape
    s_box = student["boxes"].view(b, 4, reg_max, a) / temperature
    t_box = teacher["boxes"].detach().view(b, 4, reg_max, a) / temperature
    kl = (
        (functional.softmax(t_box, dim=2) * (functional.log_softmax(t_box, dim=2) - functional.log_softmax(s_box, dim=2)))
        .sum(dim=2)
        .mean(dim=1)
    )
    box_term = (kl * weight).sum() / (weight.sum() + 1e-9) * temperature**2
    return cls_term + box_term + task_distillation_loss(student, teacher, weight)


def task_distillation_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    """The task head's own outputs (:data:`TASK_OUTPUTS`, per anchor, weighted by the teacher's
    confidence ``weight``) and a segment model's prototypes against the teacher's; 0 for a detector."""
    norm = weight.sum() + 1e-9
    terms = [((student[k] - teacher[k].detach()) ** 2).mean(dim=1).mul(weight).sum() / norm for k in TASK_OUTPUTS if k in teacher]
    proto = teacher.get(PROTO)
    if isinstance(proto, torch.Tensor):  # a segment head's prototype masks, one map per image
        terms.append(functional.mse_loss(student[PROTO], proto.detach()))
    return torch.stack(terms).sum() if terms else weight.new_zeros(())


class HeadDistillationModel(DistillationModel):
    """ultralytics' feature distillation (weight ``dis``, may be 0) plus the head-output term."""

    def __init__(self, teacher: nn.Module, student: nn.Module, head_weight: float, temperature: float) -> None:
        super().__init__(teacher_model=teacher, student_model=student)
        self.head_weight = head_weight
        self.temperature = temperature
        self.reg_max = next(int(m.reg_max) for m in student.modules() if isinstance(m, Detect))

    def loss(self, batch: dict[str, Any], preds: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        zero = torch.zeros(1, device=batch["img"].device)
        if not self.training:  # validation during training: the student's own loss (the items keep one shape)
            total, items = super().loss(batch, preds)
            items[HEAD_LOSS] = zero
            return torch.cat([total, zero]), items
        total, items = super().loss(batch)  # runs teacher and student; the hooks hold their head outputs
        level = len(self.feats_idx) - 1  # the Detect head's own output
        head = self.head_weight * head_distillation_loss(
            self.decouple_outputs(self._student_feats[level]),
            self.decouple_outputs(self._teacher_feats[level]),
            self.reg_max,
            self.temperature,
        )
        items[HEAD_LOSS] = head.detach().reshape(1)
        return torch.cat([total, head.reshape(1) * batch["img"].shape[0]]), items
