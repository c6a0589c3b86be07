"""Step ``control``: the equal-budget control, the *unpruned* source finetuned with the pruned
model's recipe (``prune.finetune``: optimizer, lr, warm-up, patience) for the same epochs.

Why: finetuning after pruning is also extra training. A source that had not converged gains from
it whether or not it was pruned, so "the pruned model keeps 110% of the baseline" can hide a real
pruning loss. Against the control, the ratio measures what pruning cost at equal training. The
control is not distilled (its teacher would be itself). On with ``evaluate.control``, and the gate
can be stated against it (``gates.reference: control``).
"""

from __future__ import annotations

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import image_size
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.prune.finetune import finetune as train
from edgeslim.reparam.fuse import fuse_model


def skip_unless_asked(p: Params) -> str | None:
    if not p.evaluate.control:
        return "evaluate.control is false: no equal-budget control was trained"
    if not p.prune.enabled or p.prune.finetune.epochs == 0:
        return "nothing was finetuned (prune.enabled false or prune.finetune.epochs 0), so there is no training budget to match"
    return None


def control(inp: StepInput, p: Params) -> Outcome:
    ckpt, model = load_checkpoint(inp.outcome("fuse").artifact("unfused"))
    ft = p.prune.finetune
    data = dataset_info(inp.outcome("dataset"))
    result = train(model, ckpt, data.data_yaml, image_size(p), p.baseline, p.evaluate, ft, ft.epochs, 0.0, inp.dir())
    print(
        f"control: the unpruned source finetuned {result.epochs_run} epochs with the same recipe: val {result.metric} {result.map50_95:.4f}"
    )
    _, tuned = load_checkpoint(result.weights)
    fused, _ = fuse_model(tuned)
    weights = save_checkpoint(fused, ckpt, inp.layout.control())
    section = result.as_dict()
    return Outcome(inp.step, artifacts={"model": weights}, metrics=numeric(section), details={"control": section})
