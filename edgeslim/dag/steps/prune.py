"""Step ``prune``: split-free rewrite, (sparse training,) structured pruning to the MACs target, then
the activation swap (``compress.activation``) that the finetune step recovers.

Starts from the unfused single-head model (``fuse``'s ``unfused``): BN-gamma importance and the
finetuning after it need the BatchNorm layers that fusion folds away; the ``fuse`` step has
already proved this model fuses.
"""

from __future__ import annotations

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import run_size
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.steps.fuse import val_images
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.plots import channels_plot
from edgeslim.prune.activation import swap_activation
from edgeslim.prune.pipeline import prune_stage


def skip_unless_enabled(p: Params) -> str | None:
    return None if p.prune.enabled else "prune.enabled is false: the unpruned model is exported"


def prune(inp: StepInput, p: Params) -> Outcome:
    ckpt, model = load_checkpoint(inp.outcome("fuse").artifact("unfused"))
    data = dataset_info(inp.outcome("dataset"))
    size = run_size(p)  # the compressed model's: its round finetunes and latency exports run at it
    pruned, report = prune_stage(
        model, ckpt, val_images(inp, p, size), data.data_yaml, size, p.prune, p.baseline, p.evaluate, p.export.opset, inp.dir()
    )
    pruned, swap = swap_activation(pruned, p.compress.activation)
    if swap.swapped:
        print(f"activation: {swap.swapped} SiLU modules -> {swap.activation} (the finetune after this recovers them)")
    report["activation"] = swap.as_dict()
    weights = save_checkpoint(pruned, ckpt, inp.layout.pruned())
    png = channels_plot(report["channels_before"], report["channels_after"], inp.layout.channels_png())
    print(f"pruned: {report['macs_reduction']:.1%} fewer MACs ({report['macs_before'] / 1e6:.1f}M -> {report['macs_after'] / 1e6:.1f}M)")
    return Outcome(inp.step, artifacts={"pruned": weights, "channels_png": png}, metrics=numeric(report), details={"pruning": report})
