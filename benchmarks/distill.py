"""``python -m benchmarks.distill``: at one pruning cut, with the same finetune epochs, does ultralytics
8.4's own feature distillation beat edgeslim's head-only distillation loss?

Why: the compress flow finetunes a pruned model with ``prune.distill`` at ``head_weight`` 1 and
``feature_weight`` 0: edgeslim's head-output term only (class BCE against the teacher's scores, DFL
KL on its box bins; ``edgeslim/prune/distill.py``). ultralytics 8.4 ships its own recipe, a
teacher-score-weighted MSE between neck features through a learned 1x1 projector (``dis``, default
6.0). Both run through the same ``HeadDistillationModel``, so only the weights differ; whether the
default is the better of the two was never measured. This benchmark measures it on one model, one
cut and one finetune length, all four ways from one start:

- the reference (default: the converged reference kept in ``benchmarks/references/converged/``, its
  finished ``best.pt`` where that exists, else the resumable snapshot ``last.pt``) on the benchmark's
  own dataset (``reference_overrides(p, "converged")``, the set it was trained on; checked by hash);
- one pruned copy at ``benchmark.distill.cut`` of its MACs, built as the search builds a variant
  (``edgeslim.search.build.build_variant``: one round, no sparse training, the activation swapped);
- four finetunes of that copy, identical but for the teacher (``edgeslim.prune.finetune.finetune``,
  ``prune.finetune``'s recipe, ``benchmark.distill.epochs`` epochs, the baseline's seed): no teacher,
  head-only, feature-only and both, the teacher being the reference fused, as the flow's ``fuse``
  step hands it to the finetune;
- each scored by one ``Scorer`` (ultralytics' validator, ``evaluate.conf``/``iou``, the val split), as
  a ratio to the reference and to the head-only arm, each with a paired bootstrap interval over the
  val images (``gates.bootstrap``), and the wall time of each finetune (its per-epoch validation
  included).

Writes ``benchmarks/results/<name>.json`` and ``.md``. Scratch files go to
``workspace/bench/distill/`` (cleared by each run).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.paths import portable_command, portable_path, results_main
from benchmarks.references import KEPT, LAST, PROGRESS_FILE, RESULT_FILE, WEIGHTS, reference_overrides

PROG = "python -m benchmarks.distill"
DEFAULT_NAME = "distill"
REFERENCE = "converged"  # the kept reference whose dataset and folder are the defaults
BASELINE_ARM = "head-only"  # today's default (prune.distill), what every other arm is compared with
VERSIONED = ("torch", "ultralytics", "torch-pruning")


@dataclass(frozen=True)
class Arm:
    """One finetune: which distillation terms are on (at ``benchmark.distill``'s weights)."""

    name: str
    head: bool
    feature: bool
    what: str

    @property
    def distils(self) -> bool:
        return self.head or self.feature


ARMS = (
    Arm("no-teacher", False, False, "plain finetune, no teacher"),
    Arm(BASELINE_ARM, True, False, "edgeslim's head-output KD only (prune.distill's default)"),
    Arm("feature-only", False, True, "ultralytics' neck-feature distillation only (its own recipe)"),
    Arm("head+feature", True, True, "both terms"),
)


def default_reference() -> Path:
    """The kept converged reference: its finished checkpoint where training ended, else the snapshot."""
    kept = KEPT / REFERENCE
    return kept / WEIGHTS if (kept / RESULT_FILE).exists() else kept / LAST


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml (benchmark.distill, prune.finetune, ...)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override a param (repeatable)")
    parser.add_argument(
        "--reference", type=Path, default=None, help=f"the unpruned checkpoint (default: {portable_path(default_reference())})"
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help="results file name (benchmarks/results/<name>.json, .md)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder, cleared first (default: <workspace>/bench/distill)")
    parser.add_argument(
        "--other-data",
        action="store_true",
        help="accept a dataset other than the one the reference was trained on (smoke runs on small splits); the results say so",
    )
    return parser


def main(argv: list[str]) -> int:
    return results_main(PROG, build_parser(), lambda args: run(args, argv), markdown, argv)


def reference_facts(weights: Path) -> dict[str, Any]:
    """What the checkpoint is, for every ratio's wording: its epochs, whether training had ended, the
    dataset it was trained on (where the kept folder records it)."""
    import torch

    folder = weights.parent
    result = json.loads((folder / RESULT_FILE).read_text()) if weights.name == WEIGHTS and (folder / RESULT_FILE).exists() else None
    progress = json.loads((folder / PROGRESS_FILE).read_text()) if weights.name == LAST and (folder / PROGRESS_FILE).exists() else None
    kept = folder.resolve() == (KEPT / REFERENCE).resolve()
    epochs: int | None
    if result is not None:
        epochs, converged, stopped_by = int(result["epochs_run"]), bool(result["converged"]), result["stopped_by"]
        trained_on = result["dataset_sha256"]
        label = f"{f'the {REFERENCE} reference' if kept else weights.name} after {epochs} epochs ({stopped_by})"
    else:
        ckpt = torch.load(weights, map_location="cpu", weights_only=False)
        epoch = ckpt.get("epoch", -1) if isinstance(ckpt, dict) else -1
        epochs = int(progress["epochs"]) if progress else (int(epoch) + 1 if epoch >= 0 else None)
        converged, trained_on = False, progress["dataset_sha256"] if progress else None
        stopped_by = "a snapshot of a training still under way" if epoch >= 0 else "unknown (no training record beside it)"
        if kept and progress:
            label = f"the {REFERENCE} reference's snapshot at epoch {epochs}, not yet converged"
        elif epoch >= 0:
            label = f"{weights.name}, a snapshot at epoch {epochs}, not yet converged"
        else:
            label = f"{weights.name} (training history unknown)"
    return {"label": label, "epochs": epochs, "converged": converged, "stopped_by": stopped_by, "trained_on_sha256": trained_on}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Score the reference, prune one copy, finetune it four ways and score each; the result as the JSON holds it."""
    import torch

    from edgeslim import workspace
    from edgeslim.config import load_params
    from edgeslim.dag.steps.evaluate import Scorer
    from edgeslim.data.images import preprocess_batch
    from edgeslim.data.splits import split_images
    from edgeslim.data.tasks import scoring
    from edgeslim.digest import file_sha256
    from edgeslim.errors import EdgeslimError
    from edgeslim.evaluate.bootstrap import PerImage, ratio_intervals
    from edgeslim.models.checkpoint import load_checkpoint, model_task, save_checkpoint, training_imgsz
    from edgeslim.prune.finetune import Teacher, finetune
    from edgeslim.reparam.fuse import fuse_model
    from edgeslim.runtime.cpu import cpu_flags, cpu_model, machine_profile, notable_flags
    from edgeslim.search.build import build_variant
    from edgeslim.search.space import Variant

    base_p = load_params(args.params, args.set)
    p = load_params(args.params, [*reference_overrides(base_p, REFERENCE), *args.set])
    d = p.benchmark.distill
    workspace.configure_environment(p)
    data = workspace.dataset(p)
    weights = (args.reference or default_reference()).resolve()
    if not weights.is_file():
        raise EdgeslimError(f"reference checkpoint {weights} does not exist")
    facts = {**reference_facts(weights), "sha256": file_sha256(weights)}  # now: a finishing training replaces the kept snapshot
    same_data = None if facts["trained_on_sha256"] is None else facts["trained_on_sha256"] == data.sha256
    if same_data is False and not args.other_data:
        raise EdgeslimError(
            f"the dataset here (sha256 {data.sha256[:12]}) is not the one {portable_path(weights)} was trained on "
            f"({facts['trained_on_sha256'][:12]}): check benchmark.splits and dataset.*, or pass --other-data for a smoke run"
        )
    work = (args.work or workspace.root(p) / "bench" / "distill").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = os.getloadavg()
    started = time.perf_counter()

    template, model = load_checkpoint(weights)
    imgsz = training_imgsz(template, model) or p.baseline.imgsz
    source = save_checkpoint(model, template, work / "reference.pt")  # its EMA weights, no optimizer: what is pruned and scored
    fused, _ = fuse_model(load_checkpoint(source)[1])
    teacher_weights = save_checkpoint(fused, template, work / "teacher.pt")  # the flow's teacher is the fused source
    score = Scorer(data, imgsz, p.evaluate, work / "val", scoring(model_task(model), p.gates.metric))
    print(f"reference: {facts['label']} ({portable_path(weights)}), at {imgsz} px")
    reference = score.stage("reference", source)

    print(f"pruning one copy to {d.cut:.0%} of its MACs (activation {d.activation})...", flush=True)
    images = preprocess_batch(split_images(data.data_yaml, "val")[: p.fuse.equivalence_images], imgsz)
    variant = Variant(prune=d.cut, activation=d.activation, size=imgsz)
    t0 = time.perf_counter()
    # no calibration images, no formats: only its unfused checkpoint (and the FP32 export build_variant always makes) is needed
    built = build_variant(variant, model, template, images, [], data.data_yaml, imgsz, p, [], work / "pruned")
    prune_s = time.perf_counter() - t0
    pruned = score.stage("pruned", built.unfused)

    runs = []
    for arm in ARMS:
        weights_on = {"head_weight": d.head_weight if arm.head else 0.0, "feature_weight": d.feature_weight if arm.feature else 0.0}
        distill = p.prune.distill.model_copy(update={"enabled": True, **weights_on})
        teacher = Teacher(teacher_weights, distill) if arm.distils else None
        print(f"{arm.name}: finetuning {d.epochs} epoch(s) ({arm.what})...", flush=True)
        start_template, start = load_checkpoint(built.unfused)
        t0 = time.perf_counter()
        result = finetune(
            start, start_template, data.data_yaml, imgsz, p.baseline, p.evaluate, p.prune.finetune, d.epochs, 0.0, work / arm.name, teacher
        )
        wall = time.perf_counter() - t0
        runs.append((arm, distill if teacher else None, result, wall, score.stage(arm.name, result.weights)))

    per_image = {stage.name: PerImage.load(Path(str(stage.per_image))) for *_, stage in runs}
    ref_per_image = PerImage.load(Path(str(reference.per_image)))
    vs_reference = ratio_intervals({**per_image, "pruned": PerImage.load(Path(str(pruned.per_image)))}, ref_per_image, p.gates.bootstrap)
    vs_head = ratio_intervals({k: v for k, v in per_image.items() if k != BASELINE_ARM}, per_image[BASELINE_ARM], p.gates.bootstrap)
    head_map = next(stage.map50_95 or 0.0 for arm, *_, stage in runs if arm.name == BASELINE_ARM)
    ref_map = reference.map50_95 or 0.0

    def ratio(value: float | None, to: float) -> float | None:
        return (value or 0.0) / to if to > 0 else None

    arms = []
    for arm, dp, result, wall, stage in runs:
        ci = vs_reference[arm.name]
        head_ci = vs_head.get(arm.name)
        arms.append(
            {
                "arm": arm.name,
                "what": arm.what,
                "head_weight": dp.head_weight if dp else None,
                "feature_weight": dp.feature_weight if dp else None,
                "map50_95": stage.map50_95,
                "map50": stage.map50,
                "map_ratio_vs_reference": ratio(stage.map50_95, ref_map),
                "map_ratio_vs_reference_ci": [ci.low, ci.high],
                "map_ratio_vs_head_only": ratio(stage.map50_95, head_map),
                "map_ratio_vs_head_only_ci": [head_ci.low, head_ci.high] if head_ci else None,
                "finetune_s": wall,
                "epochs_run": result.epochs_run,
                "s_per_epoch": wall / result.epochs_run if result.epochs_run else None,
                "checkpoint": portable_path(result.weights),
            }
        )
    pruned_ci = vs_reference["pruned"]
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": portable_command(["python", "-m", "benchmarks.distill", *argv], None),
        "question": "at one pruning cut, with the same finetune epochs, does ultralytics 8.4's own feature distillation "
        "beat edgeslim's head-only distillation loss?",
        "machine": {
            "cpu": cpu_model(),
            "cpu_flags": notable_flags(),
            "all_flags_count": len(cpu_flags()),
            "profile": machine_profile(),
            "torch_threads": torch.get_num_threads(),  # as the finetunes left it: ultralytics' select_device sets cores - 1
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "versions": {pkg: importlib.metadata.version(pkg) for pkg in VERSIONED},
        },
        "reference": {
            **facts,
            "checkpoint": portable_path(weights),
            "imgsz": imgsz,
            "map50_95": reference.map50_95,
            "map50": reference.map50,
            "macs": reference.macs,
            "params": reference.params,
        },
        "dataset": {
            "data_yaml": portable_path(data.data_yaml),
            "sha256": data.sha256,
            "splits": p.dataset.splits.model_dump(),
            "val_images": len(ref_per_image.names),
            "same_as_reference_training": same_data,
        },
        "recipe": {
            **d.model_dump(),
            "macs_reduction": built.macs_reduction,
            "prune_s": prune_s,
            "finetune": p.prune.finetune.model_dump(exclude={"epochs", "round_epochs"}),  # the flow's lengths; every arm runs `epochs`
            "temperature": p.prune.distill.temperature,
            "seed": p.baseline.seed,
            "batch": p.baseline.batch,
            "scored": "each finetune's best checkpoint by val fitness (ultralytics' best.pt), as the flow keeps it",
        },
        "pruned": {
            "map50_95": pruned.map50_95,
            "map50": pruned.map50,
            "map_ratio_vs_reference": ratio(pruned.map50_95, ref_map),
            "map_ratio_vs_reference_ci": [pruned_ci.low, pruned_ci.high],
            "macs": pruned.macs,
            "params": pruned.params,
        },
        "arms": arms,
        "bootstrap": p.gates.bootstrap.model_dump(),
        "verdict": verdict(arms),
        "wall_s": time.perf_counter() - started,
    }


def verdict(arms: list[dict]) -> str:
    """Each arm with the feature term against head-only, read off its paired interval."""
    parts = []
    for a in arms:
        ci = a["map_ratio_vs_head_only_ci"]
        if not a["feature_weight"] or ci is None:
            continue
        low, high = ci
        how = (
            "beats head-only"
            if low > 1
            else "falls short of head-only"
            if high < 1
            else "cannot be told from head-only on this val set"
        )  # fmt: skip
        parts.append(f"{a['arm']} {how}: {a['map_ratio_vs_head_only']:.3f}× [{low:.3f}, {high:.3f}]")
    return "; ".join(parts)


def _f(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _ci(pair: list[float] | None) -> str:
    return "" if pair is None else f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def markdown(result: dict) -> str:
    m, ref, r, pr, ds = result["machine"], result["reference"], result["recipe"], result["pruned"], result["dataset"]
    ft, b = r["finetune"], result["bootstrap"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    data_note = {
        True: "the set it was trained on (sha256 checked)",
        False: "**not** the set it was trained on (`--other-data`): its ratios say little",
        None: "its training set unknown (no record beside the checkpoint)",
    }[ds["same_as_reference_training"]]
    lines = [
        f"# Distillation at one pruning cut: edgeslim's head-only loss against ultralytics' feature distillation ({result['when']})",
        "",
        f"CPU: {m['cpu']}; flags {', '.join(m['cpu_flags']) or 'none of note'} (profile `{m['profile']}`); {m['torch_threads']} torch thread(s) in training (ultralytics sets cores − 1 on a CPU); "
        f"{versions}; load {m['load_before']} → {m['load_after']}.",
        "",
        f"**Reference**: {ref['label']} (`{ref['checkpoint']}`, sha256 {ref['sha256'][:12]}), mAP50-95 **{ref['map50_95']:.4f}** "
        f"(mAP50 {ref['map50']:.4f}) at {ref['imgsz']} px by ultralytics' validator on {ds['val_images']} val images, {data_note}. "
        f"Every × reference below is against {ref['label']}.",
        "",
        f"**Pruned copy**: target {r['cut']:.0%} of MACs → {r['macs_reduction']:.1%} removed ({_f(pr['macs'], ',')} MACs, "
        f"{_f(pr['params'], ',')} params; activation `{r['activation']}`), untrained mAP50-95 {pr['map50_95']:.4f} = "
        f"{pr['map_ratio_vs_reference']:.3f}×{_ci(pr['map_ratio_vs_reference_ci'])} {ref['label']}; pruned in {r['prune_s']:.0f} s.",
        "",
        f"**Finetunes**: each from that one checkpoint, {r['epochs']} epoch{'s' if r['epochs'] > 1 else ''}, seed {r['seed']}, batch {r['batch']}, "
        f"{ft['optimizer']} lr0 {ft['lr0']:g}, warmup {ft['warmup_epochs']:g}, patience {ft['patience']}; the teacher is the reference fused; "
        f"head term at weight {r['head_weight']:g} (temperature {r['temperature']:g}), feature term (`dis`) at {r['feature_weight']:g}. "
        f"Scored: {r['scored']}.",
        "",
        f"**Answer**: {result['verdict'] or 'no arm with the feature term was run'}.",
        "",
        "| arm | head_weight | feature_weight | mAP50-95 | mAP50 | × reference | × head-only | finetune s | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in result["arms"]:
        lines.append(
            f"| {a['arm']} | {_f(a['head_weight'], 'g')} | {_f(a['feature_weight'], 'g')} | {a['map50_95']:.4f} | {a['map50']:.4f} | "
            f"{a['map_ratio_vs_reference']:.3f}{_ci(a['map_ratio_vs_reference_ci'])} | "
            f"{_f(a['map_ratio_vs_head_only'], '.3f')}{_ci(a['map_ratio_vs_head_only_ci'])} | {a['finetune_s']:.0f} | {_f(a['s_per_epoch'], '.1f')} |"
        )
    lines += [
        "",
        f"Intervals: {b['level']:.0%} paired bootstrap over the val images ({b['samples']} resamples, seed {b['seed']}; `gates.bootstrap`), "
        "both models scored on the same resample. One seed per arm: a difference inside its interval is not a difference. "
        "Finetune wall time includes ultralytics' per-epoch validation and, for the distilling arms, the teacher's forward passes; "
        "it was measured on a machine with the load shown above.",
        "",
        f"Command: `{result['command']}` ({result['wall_s'] / 60:.0f} min in all)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
