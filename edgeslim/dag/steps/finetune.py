"""Step ``finetune``: train the pruned model (architecture kept, early stopping on val fitness),
taught by the fused unpruned source when ``prune.distill.enabled``, then fuse it again behind its
own equivalence gate (``equivalence_pruned``)."""

from __future__ import annotations

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import run_size
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.steps.fuse import check_fused, val_images
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.prune.finetune import Teacher
from edgeslim.prune.finetune import finetune as train_pruned
from edgeslim.reparam.fuse import fuse_model


def finetune(inp: StepInput, p: Params) -> Outcome:
    pruned = inp.outcome("prune").artifact("pruned")
    ckpt, model = load_checkpoint(pruned)
    ft = p.prune.finetune
    section: dict = {"epochs_run": 0}
    trained = pruned
    if ft.epochs > 0:
        data = dataset_info(inp.outcome("dataset"))
        teacher = Teacher(inp.outcome("fuse").artifact("model"), p.prune.distill) if p.prune.distill.enabled else None
        result = train_pruned(model, ckpt, data.data_yaml, run_size(p), p.baseline, p.evaluate, ft, ft.epochs, 0.0, inp.dir(), teacher)
        taught = " (distilled from the unpruned model)" if teacher else ""
        print(f"finetuned {result.epochs_run} epochs{taught}: val {result.metric} {result.map50_95:.4f}")
        trained, section = result.weights, result.as_dict()
        ckpt, model = load_checkpoint(trained)
    else:
        print("prune.finetune.epochs is 0: the pruned model is fused and exported untrained")
    fused, _ = fuse_model(model)
    weights = save_checkpoint(fused, ckpt, inp.layout.finetuned_fused())
    gate, eq = check_fused(trained, weights, val_images(inp, p, run_size(p)), p.fuse, "equivalence_pruned")
    return Outcome(
        inp.step,
        artifacts={"finetuned": trained, "model": weights},
        metrics={**numeric(section), **numeric(eq)},
        details={"finetune": section, "equivalence_pruned": eq},
        gates=(gate,),
    )
