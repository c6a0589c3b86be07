from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.data.images import list_images, preprocess_batch
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.reparam.equivalence import Equivalence, compare_models
from edgeslim.reparam.fuse import FuseReport, fuse_model
from tasks.step import step


@dataclass(frozen=True)
class Fused:
    weights: Path
    report: FuseReport


@step("fuse")
def fuse_task(source: Path, out_dir: Path) -> Fused:
    ckpt, model = load_checkpoint(source)
    fused, report = fuse_model(model)
    weights = save_checkpoint(fused, ckpt, out_dir / "fused.pt")
    print(f"fused {len(report.fused)} modules; BatchNorm layers {report.bn_before} -> {report.bn_after}")
    if report.not_fused:
        print(f"still holding BatchNorm after fusion: {report.not_fused}")
    return Fused(weights, report)


@step("equivalence")
def equivalence_task(source: Path, fused: Path, val_dir: Path, n_images: int, imgsz: int) -> Equivalence:
    images = preprocess_batch(list_images(val_dir)[:n_images], imgsz)
    _, reference = load_checkpoint(source)
    _, candidate = load_checkpoint(fused)
    eq = compare_models(reference, candidate, images)
    print(f"equivalence on {eq.n_images} images: rel L2 {eq.rel_l2:.3e}, max rel {eq.rel_max_abs:.3e}")
    return eq
