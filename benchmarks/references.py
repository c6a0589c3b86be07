"""The trained references the benchmark states its accuracy against, each trained once and cached.

Why: the embedded baseline stops at ``baseline.epochs`` while its val mAP is still climbing, so a
ratio against it mostly measures extra training. The *converged* reference is the same
architecture and recipe trained until val fitness stops improving (ultralytics' early stopping
with ``benchmark.converged.patience``, capped at ``max_epochs``). yolov8n is the stock size users
pick, trained on the same data so that its compressed artifacts have an mAP too. Training is the
slow part (hours on 2 cores for the benchmark-size set), so each result is cached under its params
and the dataset's hash, and a rerun with the same inputs reuses it; a training cut short resumes.

Both are trained on the benchmark's own rendering of the embedded set (``benchmark.splits``: 500 val
images, so that a 95% gate is not inside the mAP's noise; yolov8n's boards at its
``render_size``). ``python -m benchmarks.references NAME`` trains one and keeps the result in the
repository (``benchmarks/references/NAME/``: the checkpoint, its sha256, the training command and
ultralytics' results.csv), so that every later benchmark, on any machine, compares against the same
reference; ``--snapshot`` keeps a training still under way there as a resumable ``last.pt``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.paths import REPO, repo_relative
from edgeslim.baseline.train import train_baseline
from edgeslim.config import BaselineParams, Params, digest, load_params
from edgeslim.data.synthetic import DatasetInfo
from edgeslim.digest import file_sha256
from edgeslim.errors import EdgeslimError

RESULT_FILE = "reference.json"
KEPT = Path(__file__).resolve().parent / "references"  # the references kept in the repository, one folder each
WEIGHTS, LAST, RESULTS_CSV, PROGRESS_FILE = "best.pt", "last.pt", "results.csv", "progress.json"


@dataclass(frozen=True)
class TrainedReference:
    name: str
    weights: Path
    imgsz: int
    map50_95: float  # best val mAP50-95 during training (the checkpoint kept)
    map50: float
    epochs_run: int
    max_epochs: int
    converged: bool  # early stopping ended it before the cap
    train_s: float  # this call's training time (a resumed run counts only the part it ran)
    key: str
    stopped_by: str  # early stopping (a plateau), the epoch cap, or an operator (then said why)

    def as_dict(self) -> dict:
        return {**asdict(self), "weights": str(self.weights)}


def converged_params(p: Params) -> BaselineParams:
    """The embedded baseline's recipe, with the converged reference's epoch cap and patience."""
    ref = p.benchmark.converged
    return p.baseline.model_copy(update={"epochs": ref.max_epochs, "patience": ref.patience})


def yolov8n_params(p: Params) -> BaselineParams:
    """The baseline's recipe (batch, lr, seed) on the stock yolov8n network at its own image size."""
    ref = p.benchmark.yolov8n
    update = {"arch": ref.arch, "scale": ref.scale, "imgsz": ref.imgsz, "epochs": ref.max_epochs, "patience": ref.patience}
    return p.baseline.model_copy(update=update)


def reference_overrides(p: Params, name: str) -> tuple[str, ...]:
    """The dataset a reference is trained on, as overrides its compress runs take too: the benchmark's
    splits, and for yolov8n boards rendered at its ``render_size`` with objects scaled alike."""
    s = p.benchmark.splits
    out = [f"dataset.splits={{train: {s.train}, val: {s.val}, calib_pool: {s.calib_pool}}}"]
    if name == "yolov8n":
        size = p.benchmark.yolov8n.render_size
        low, high = (round(v * size / p.dataset.image_size) for v in p.dataset.object_size)
        out += [f"dataset.image_size={size}", f"dataset.object_size=[{low},{high}]"]
    return tuple(out)


RECIPES: dict[str, Callable[[Params], BaselineParams]] = {"converged": converged_params, "yolov8n": yolov8n_params}


def training_key(base: BaselineParams, p: Params, data: DatasetInfo) -> str:
    """What the training reads: the recipe, the validator's conf/iou (its fitness), the data."""
    return digest({"baseline": base.model_dump(mode="json"), "conf": p.evaluate.conf, "iou": p.evaluate.iou, "data": data.sha256})


def trained_reference(name: str, base: BaselineParams, p: Params, data: DatasetInfo, root: Path) -> TrainedReference:
    """Train ``base`` on ``data`` (or reuse the cached result of the same params and data)."""
    key = training_key(base, p, data)
    folder = Path(root) / f"{name}-{key}"
    cached = folder / RESULT_FILE
    if cached.exists():
        found = json.loads(cached.read_text())
        print(f"{name}: reusing the reference trained {found['epochs_run']} epochs ({cached})")
        return TrainedReference(**{**found, "weights": Path(found["weights"])})
    print(f"{name}: training up to {base.epochs} epochs (patience {base.patience}) at {base.imgsz} px, cached in {folder}")
    start = time.perf_counter()
    trained = train_baseline(base, p.evaluate, data.data_yaml, len(data.names), folder, resume=True)
    ref = TrainedReference(
        name=name,
        weights=trained.weights,
        imgsz=base.imgsz,
        map50_95=trained.map50_95,
        map50=trained.map50,
        epochs_run=trained.epochs_run,
        max_epochs=base.epochs,
        converged=trained.epochs_run < base.epochs,
        train_s=time.perf_counter() - start,
        key=key,
        stopped_by="early stopping: val fitness plateaued"
        if trained.epochs_run < base.epochs
        else f"the epoch cap ({base.epochs}), not converged",
    )
    cached.write_text(json.dumps(ref.as_dict(), indent=2) + "\n")
    return ref


def seed_from_kept(name: str, key: str, folder: Path) -> str:
    """Put what the repository keeps of reference ``name`` (same key) where training looks for it:
    a finished result is reused as is, a snapshot resumes. Says what it did."""
    kept = KEPT / name
    found = json.loads((kept / RESULT_FILE).read_text()) if (kept / RESULT_FILE).exists() else None
    if found and found["key"] == key and not (folder / RESULT_FILE).exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kept / WEIGHTS, folder / WEIGHTS)
        fields = {k: found[k] for k in TrainedReference.__dataclass_fields__}
        (folder / RESULT_FILE).write_text(json.dumps({**fields, "weights": str(folder / WEIGHTS)}, indent=2) + "\n")
        return f"the kept reference {kept} (sha256 {found['sha256'][:12]})"
    progress = json.loads((kept / PROGRESS_FILE).read_text()) if (kept / PROGRESS_FILE).exists() else None
    last = folder / "train" / "weights" / LAST
    if progress and progress["key"] == key and not last.exists():
        last.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kept / LAST, last)
        return f"the kept snapshot after epoch {progress['epochs']} ({kept / LAST})"
    return "nothing kept for this key"


def portable_checkpoint(src: Path, dest: Path) -> Path:
    """``src`` saved as ``dest`` with every path of this checkout in it (ultralytics' train args, the model's
    args, yaml file and the path it was loaded from, git root) made relative to the repository: a kept file names no machine's folders.
    A resume re-points what it needs (its data and save folder) as train_baseline passes them."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    for key in ("train_args", "git"):
        if isinstance(ckpt.get(key), dict):
            ckpt[key] = _relative(ckpt[key])
    for name in ("model", "ema"):
        module = ckpt.get(name)
        if module is not None and hasattr(module, "args"):
            module.args = type(module.args)(**_relative(vars(module.args))) if not isinstance(module.args, dict) else _relative(module.args)
        if module is not None and isinstance(getattr(module, "yaml", None), dict):
            module.yaml = _relative(module.yaml)
        if module is not None and isinstance(getattr(module, "pt_path", None), str):  # set on the weights a resume loaded
            module.pt_path = repo_relative(module.pt_path)
    torch.save(ckpt, dest)
    return dest


def _relative(tree: dict) -> dict:
    root = str(REPO)
    return {k: "." if v == root else repo_relative(v) for k, v in tree.items()}


def keep(name: str, folder: Path, command: str, data: DatasetInfo, ref: TrainedReference | None) -> Path:
    """Copy reference ``name`` into the repository: the finished checkpoint (``ref``), or else a
    snapshot of the training under way (its last.pt, resumable anywhere)."""
    kept = KEPT / name
    kept.mkdir(parents=True, exist_ok=True)
    csv = folder / "train" / RESULTS_CSV
    if csv.exists():
        shutil.copy2(csv, kept / RESULTS_CSV)
    facts = {"command": command, "dataset_sha256": data.sha256}
    if ref is not None:
        portable_checkpoint(ref.weights, kept / WEIGHTS)
        (kept / LAST).unlink(missing_ok=True)
        (kept / PROGRESS_FILE).unlink(missing_ok=True)
        summary = {**ref.as_dict(), "weights": WEIGHTS, "sha256": file_sha256(kept / WEIGHTS), **facts}
        (kept / RESULT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        return kept
    last = folder / "train" / "weights" / LAST
    if not last.exists():
        raise EdgeslimError(f"no training of {name} under way in {folder}: nothing to snapshot")
    portable_checkpoint(last, kept / LAST)
    epochs = sum(1 for _ in csv.open()) - 1 if csv.exists() else 0
    progress = {"key": folder.name.removeprefix(f"{name}-"), "epochs": epochs, "sha256": file_sha256(kept / LAST), **facts}
    (kept / PROGRESS_FILE).write_text(json.dumps(progress, indent=2) + "\n")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.references",
        description="Train one benchmark reference to a plateau on the benchmark-size set (cached; an interrupted training "
        "resumes) and keep it in benchmarks/references/NAME/: checkpoint, sha256, command, results.csv.",
    )
    parser.add_argument("name", choices=sorted(RECIPES), help="converged: the embedded arch at baseline.imgsz; yolov8n: stock n at 320 px")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override a param (repeatable)")
    parser.add_argument("--snapshot", action="store_true", help="do not train: keep the training under way as a resumable last.pt")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "benchmarks.references", *(a for a in given if a != "--snapshot")])  # what trains (or resumes) it
    try:
        base_p = load_params(args.params, args.set)
        p = load_params(args.params, [*reference_overrides(base_p, args.name), *args.set])
        from edgeslim import workspace

        workspace.configure_environment(p)
        data = workspace.dataset(p)
        recipe = RECIPES[args.name](p)
        root = workspace.root(p) / "bench" / "cache" / "references"
        folder = root / f"{args.name}-{training_key(recipe, p, data)}"
        if args.snapshot:
            print(f"kept the training under way in {keep(args.name, folder, command, data, None)}")
            return 0
        print(f"{args.name}: seeded from {seed_from_kept(args.name, folder.name.removeprefix(f'{args.name}-'), folder)}")
        ref = trained_reference(args.name, recipe, p, data, root)
        print(f"{args.name}: {ref.epochs_run} epochs, best val mAP50-95 {ref.map50_95:.4f} ({ref.stopped_by})")
        print(f"kept in {keep(args.name, folder, command, data, ref)}")
    except EdgeslimError as exc:
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
