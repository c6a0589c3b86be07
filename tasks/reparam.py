"""Fusion (with auxiliary-branch stripping for dual-head sources) and the equivalence gates' figures."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgeslim.config import FuseParams
from edgeslim.data.images import list_images, preprocess_batch
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.models.dual import is_dual
from edgeslim.reparam.equivalence import Equivalence, compare_models, compare_onnx, first_departure
from edgeslim.reparam.fuse import FuseReport, fuse_model
from edgeslim.reparam.strip import StripReport, strip_auxiliary
from tasks.step import step

STRIPPED_FILE = "stripped.pt"  # a dual-head source without its auxiliary branch, before fusion


@dataclass(frozen=True)
class Fused:
    weights: Path  # fused single-head model
    unfused: Path  # single-head model before fusion: the source, or the stripped dual-head source (pruning starts here)
    report: FuseReport
    strip: StripReport | None  # set when the source was a dual-head (PGI) model

    @property
    def rename(self) -> dict[str, str] | None:
        return self.strip.rename() if self.strip else None

    def as_dict(self) -> dict:
        out = self.report.as_dict()
        if self.strip:
            out.update(strip=self.strip.as_dict(), params_before_strip=self.strip.params_before, params_after_strip=self.strip.params_after)
        return out


@step("fuse")
def fuse_task(source: Path, out_dir: Path) -> Fused:
    """Strip a dual-head source's auxiliary branch (→ ``stripped.pt``), then fuse (→ ``fused.pt``)."""
    ckpt, model = load_checkpoint(source)
    unfused, strip = source, None
    if is_dual(model):
        model, strip = strip_auxiliary(model)
        unfused = save_checkpoint(model, ckpt, out_dir / STRIPPED_FILE)
        print(
            f"stripped the auxiliary branch: {len(strip.removed)} layers removed, "
            f"parameters {strip.params_before} -> {strip.params_after}"
        )
    fused, report = fuse_model(model)
    weights = save_checkpoint(fused, ckpt, out_dir / "fused.pt")
    print(f"fused {len(report.fused)} modules; BatchNorm layers {report.bn_before} -> {report.bn_after}")
    if report.not_fused:
        print(f"not fused (still holding BatchNorm or parallel branches): {report.not_fused}")
    return Fused(weights, unfused, report, strip)


@step("equivalence")
def equivalence_task(source: Path, fused: Path, val_dir: Path, fp: FuseParams, imgsz: int, rename: dict[str, str] | None = None) -> Equivalence:
    """Compare the source's (main) output with the fused model's; on failure, find where they part."""
    images = preprocess_batch(list_images(val_dir)[: fp.equivalence_images], imgsz)
    _, reference = load_checkpoint(source)
    _, candidate = load_checkpoint(fused)
    eq = compare_models(reference, candidate, images)
    print(f"equivalence on {eq.n_images} images: rel L2 {eq.rel_l2:.3e}, max rel {eq.rel_max_abs:.3e}")
    if not eq.within(fp.max_rel_l2, fp.max_rel_abs):
        eq = replace(eq, departure=first_departure(reference, candidate, images, fp.max_rel_l2, rename))
        print(f"first departing module: {eq.departure}")
    return eq


@step("onnx-equivalence")
def onnx_equivalence_task(weights: Path, onnx_path: Path, val_dir: Path, n_images: int, imgsz: int, threads: int) -> Equivalence:
    """Compare the torch model with the ONNX FP32 file exported from it, in ONNX Runtime."""
    images = preprocess_batch(list_images(val_dir)[:n_images], imgsz)
    _, model = load_checkpoint(weights)
    eq = compare_onnx(model, str(onnx_path), images, threads)
    print(f"ONNX Runtime FP32 vs torch on {eq.n_images} images: rel L2 {eq.rel_l2:.3e}, max rel {eq.rel_max_abs:.3e}")
    return eq
