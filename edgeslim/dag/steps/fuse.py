"""Step ``fuse``: strip a dual-head source's auxiliary branch, fold Conv+BN and RepConv, and gate
on the fused model computing what the source computes (``equivalence``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from edgeslim.config import FuseParams, Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import image_size
from edgeslim.dag.step import SOURCE, StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.data.images import preprocess_batch
from edgeslim.data.splits import split_images
from edgeslim.gates import Gate, equivalence_gate
from edgeslim.models.checkpoint import load_checkpoint, save_checkpoint
from edgeslim.models.dual import DualDetectionModel, is_dual
from edgeslim.reparam.equivalence import Equivalence, compare_models, first_departure
from edgeslim.reparam.fuse import fuse_model
from edgeslim.reparam.strip import strip_auxiliary


def fuse(inp: StepInput, p: Params) -> Outcome:
    source = inp.outcome(SOURCE).artifact(SOURCE)
    ckpt, model = load_checkpoint(source)
    unfused, section = source, {}
    rename = None
    if is_dual(model):
        model, strip = strip_auxiliary(cast(DualDetectionModel, model))
        unfused = save_checkpoint(model, ckpt, inp.layout.stripped())
        rename = strip.rename()
        section = {"strip": strip.as_dict(), "params_before_strip": strip.params_before, "params_after_strip": strip.params_after}
        print(
            f"stripped the auxiliary branch: {len(strip.removed)} layers removed, parameters {strip.params_before} -> {strip.params_after}"
        )
    fused, report = fuse_model(model)
    weights = save_checkpoint(fused, ckpt, inp.layout.fused())
    print(f"fused {len(report.fused)} modules; BatchNorm layers {report.bn_before} -> {report.bn_after}")
    if report.not_fused:
        print(f"not fused (still holding BatchNorm or parallel branches): {report.not_fused}")
    gate, eq = check_fused(source, weights, val_images(inp, p, image_size(p)), p.fuse, "equivalence", rename)
    fusion = {**report.as_dict(), **section}
    return Outcome(
        inp.step,
        artifacts={"model": weights, "unfused": unfused},
        metrics={**numeric(fusion), **numeric(eq)},
        details={"fusion": fusion, "equivalence": eq},
        gates=(gate,),
    )


def val_images(inp: StepInput, p: Params, size: int) -> Any:
    """The first ``fuse.equivalence_images`` val images, preprocessed at ``size`` (the source's, or the
    compressed model's where it runs smaller): what equivalence is measured on."""
    val = split_images(dataset_info(inp.outcome("dataset")).data_yaml, "val")
    return preprocess_batch(val[: p.fuse.equivalence_images], size)


def check_fused(
    source: Path, fused: Path, images: Any, fp: FuseParams, name: str, rename: dict[str, str] | None = None
) -> tuple[Gate, dict[str, Any]]:
    """Compare the source's (main) output with the fused model's; on failure, find where they part."""
    _, reference = load_checkpoint(source)
    _, candidate = load_checkpoint(fused)
    eq: Equivalence = compare_models(reference, candidate, images)
    print(f"{name} on {eq.n_images} images: rel L2 {eq.rel_l2:.3e}, max rel {eq.rel_max_abs:.3e}")
    if not eq.within(fp.max_rel_l2, fp.max_rel_abs):
        eq = replace(eq, departure=first_departure(reference, candidate, images, fp.max_rel_l2, rename))
        print(f"first departing module: {eq.departure}")
    return equivalence_gate(eq, fp, name), eq.as_dict()
