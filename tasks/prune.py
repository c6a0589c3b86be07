from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import Params
from edgeslim.data.images import list_images, preprocess_batch
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.plots import channels_plot
from edgeslim.prune.finetune import FinetuneResult, finetune
from edgeslim.prune.pipeline import prune_stage
from tasks.step import step


@dataclass(frozen=True)
class Pruned:
    weights: Path
    channels_png: Path
    report: dict


@step("prune")
def prune_task(source: Path, data_yaml: Path, val_dir: Path, p: Params, out_dir: Path) -> Pruned:
    """Rewrite, (sparse-train,) prune to the MACs target; save ``pruned.pt`` and a channels chart."""
    ckpt, model = load_checkpoint(source)
    images = preprocess_batch(list_images(val_dir)[: p.fuse.equivalence_images], p.baseline.imgsz)
    pruned, report = prune_stage(model, ckpt, images, data_yaml, p.prune, p.baseline, p.evaluate, out_dir)
    weights = save_checkpoint(pruned, ckpt, out_dir / "pruned.pt")
    png = channels_plot(report["channels_before"], report["channels_after"], out_dir / "channels.png")
    print(f"pruned: {report['macs_reduction']:.1%} fewer MACs ({report['macs_before'] / 1e6:.1f}M -> {report['macs_after'] / 1e6:.1f}M)")
    return Pruned(weights, png, report)


@step("finetune")
def finetune_task(pruned: Path, data_yaml: Path, p: Params, out_dir: Path) -> FinetuneResult:
    """Finetune the pruned model, architecture kept, with early stopping on val fitness."""
    ckpt, model = load_checkpoint(pruned)
    result = finetune(model, ckpt, data_yaml, p.baseline, p.evaluate, p.prune.finetune, p.prune.finetune.epochs, 0.0, out_dir)
    print(f"finetuned {result.epochs_run} epochs: val mAP50-95 {result.map50_95:.4f}")
    return result
