"""Step ``search``: the fastest variant (prune level x activation x input size) that keeps its
accuracy, in the target's formats, found by itself; bound into ``prune.target_macs_reduction``,
``compress.activation`` and ``compress.input_size`` for the fixed recipe that follows (full
finetune, export, INT8, gates).

Compute goes where it decides (edgeslim/search/select.py): every candidate is built untrained and
timed in paired rounds against the source's own export (at the source's size) on its runtime; those over
``search.budget`` or dominated go; short finetunes in rungs of successive halving rank the rest
against the source's mAP at its own size (a smaller input pays its accuracy cost here, as at the
gates); only the chosen variant then gets the full finetune, the INT8 formats and
the gates. Where no variant clears the floor (short finetunes under-rate what the full one recovers),
the best-scoring one goes on and the gates decide. A rung's short finetunes go through the step's fan,
so under a flow with a Dask cluster (``prefect.dask``, a local cluster or a scheduler at ``address``;
a rung of at least ``min_items`` variants) they train side by side. ``search.max_minutes`` caps it, and the report lists
what it cut. A budget no candidate meets fails the ``search`` gate: nothing is published.

Left out for now: the TensorRT format (timed only where a GPU is).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.nn.tasks import DetectionModel

from edgeslim.config import BaselineParams, EvaluateParams, FinetuneParams, Params, formats_of
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.source import image_size
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.steps.evaluate import Scorer, scorer
from edgeslim.dag.steps.fuse import val_images
from edgeslim.data.splits import split_images
from edgeslim.errors import PruneError
from edgeslim.gates import Gate
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.plots import Point, pareto_plot
from edgeslim.prune.finetune import Teacher, finetune
from edgeslim.runtime.formats import FORMATS, TENSORRT, artifact_bytes
from edgeslim.runtime.session import open_session, runner, unavailable
from edgeslim.runtime.timing import paired_medians
from edgeslim.search.build import REFERENCE_FORMAT, Built, build_variant, source_exports
from edgeslim.search.select import Halving, RungScore, Timed, halve, screen
from edgeslim.search.space import Candidate, Variant, input_sizes, variants

SECONDS_PER_MINUTE = 60


def skip_unless_searching(p: Params) -> str | None:
    if not p.search.enabled:
        return "search.enabled is false: the fixed recipe (prune.target_macs_reduction, compress.activation, compress.input_size) runs"
    if not p.prune.enabled:
        return "prune.enabled is false: the search varies pruning and the finetune after it"
    if p.prune.target_latency_ratio is not None:
        return "prune.target_latency_ratio is set: budget mode prunes to a measured latency itself"
    return None


def search(inp: StepInput, p: Params) -> Outcome:
    started = time.monotonic()
    deadline = time.time() + p.search.max_minutes * SECONDS_PER_MINUTE  # wall clock: a fanned-out rung reads it elsewhere

    def out_of_time() -> bool:
        return time.time() > deadline

    folder = inp.dir()
    data = dataset_info(inp.outcome("dataset"))
    template, model = load_checkpoint(inp.outcome("fuse").artifact("unfused"))
    listed = formats_of(p.target.name, p.target.profiles)
    formats = [f for f in listed if FORMATS[f].runtime != TENSORRT and unavailable(f) is None]
    untimed: dict[str, str] = {f: unavailable(f) or "TensorRT is timed where a GPU is, not on this CPU" for f in listed if f not in formats}
    val = split_images(data.data_yaml, "val")
    # a set compress.input_size fixes that axis; else search.input_scales of the source's size
    sizes = [p.compress.input_size] if p.compress.input_size else input_sizes(image_size(p), int(max(model.stride)), p.search.input_scales)
    built, unbuilt = _build_all(inp, p, model, template, val[: p.search.timing_images], formats, sizes, out_of_time)
    if not built:
        return _failed(inp, p, "no variant could be built", _details(p, [], {}, None, unbuilt, untimed, 0.0, started), started)
    score = scorer(inp, p, image_size(p))  # the source's validator setup and latency sample
    scores = {size: score if size == score.imgsz else scorer(inp, p, size) for size in sizes}  # one per input size searched
    timed = _time(inp, p, built, formats, folder, score.sample, {size: s.sample for size, s in scores.items()})
    kept, gone = screen(timed, p.search.budget)
    if not kept:
        fastest = min(timed, key=lambda t: t.ratio)
        why = f"no candidate is within the latency budget {p.search.budget:g}x; the fastest, {fastest.candidate.name}, runs at {fastest.ratio:.3f}x"
        return _failed(inp, p, why, _details(p, timed, gone, None, unbuilt, untimed, 0.0, started), started, fastest.ratio)
    reference = score.map50_95(inp.outcome("fuse").artifact("model"))
    print(f"search: the source scores {score.scored.label} {reference:.4f}; {len(kept)} of {len(timed)} candidates survive screening")
    halving = halve(
        kept, p.search.rungs, p.search.keep, p.gates.min_map_ratio - p.search.slack, _rungs(inp, p, built, reference, scores, deadline)
    )
    details = _details(p, timed, gone, halving, unbuilt, untimed, reference, started)
    if halving.chosen is None:
        return _failed(inp, p, "search.max_minutes ran out before any variant was trained", details, started)
    chosen = halving.chosen.variant
    print(f"search: chose {chosen.name} ({halving.chosen.fastest.candidate.format} at {halving.chosen.fastest.ratio:.3f}x)")
    png = _plot(halving, reference, built, folder / "search.png", score.scored.label)
    return Outcome(
        inp.step,
        artifacts={"search_png": png} if png else {},
        metrics={"search.candidates": float(len(timed)), "search.trained": float(sum(bool(v.scores) for v in halving.verdicts))},
        details={"search": details},
        binds=chosen.binds(),
    )


def _build_all(
    inp: StepInput,
    p: Params,
    model: DetectionModel,
    template: dict[str, Any],
    calib: list[Path],
    formats: list[str],
    sizes: list[int],
    out_of_time: Callable[[], bool],
) -> tuple[list[Built], dict[str, str]]:
    built, unbuilt = [], {}
    data_yaml = dataset_info(inp.outcome("dataset")).data_yaml
    for v in variants(p.search.prune_levels, p.search.activations, sizes):
        if out_of_time():
            unbuilt[v.name] = "cut by search.max_minutes before it was built"
            continue
        try:
            built.append(
                build_variant(v, model, template, val_images(inp, p, v.size), calib, data_yaml, v.size, p, formats, inp.dir() / v.name)
            )
        except PruneError as exc:  # a level the per-layer caps cannot reach
            unbuilt[v.name] = str(exc)
        print(f"search: built {v.name}" if v.name not in unbuilt else f"search: {v.name} left out: {unbuilt[v.name]}")
    return built, unbuilt


def _time(
    inp: StepInput, p: Params, built: list[Built], formats: list[str], folder: Path, sample: np.ndarray, samples: dict[int, np.ndarray]
) -> list[Timed]:
    """Every candidate (on the same val image at its own input size) and the source's own export on
    each runtime (at the source's size), called in turn in paired rounds."""
    runtimes = {FORMATS[f].runtime for f in formats}
    refs = source_exports(inp.outcome("fuse").artifact("model"), image_size(p), p, runtimes, folder / "source")
    pairs = [(Candidate(b.variant, f), path) for b in built for f, path in b.formats.items()]
    ref_names = sorted(refs)
    calls = [runner(open_session(refs[r], REFERENCE_FORMAT[r], p.evaluate.threads), sample) for r in ref_names]
    calls += [runner(open_session(path, FORMATS[c.format], p.evaluate.threads), samples[c.variant.size]) for c, path in pairs]
    medians = paired_medians(calls, p.evaluate.latency_runs, p.target.rounds, p.evaluate.latency_warmup).medians_ms
    ref_ms = dict(zip(ref_names, medians, strict=False))
    timed = [Timed(c, ms, ms / ref_ms[FORMATS[c.format].runtime]) for (c, _), ms in zip(pairs, medians[len(ref_names) :], strict=True)]
    for t in sorted(timed, key=lambda t: t.latency_ms):
        print(f"search: {t.candidate.name} {t.latency_ms:.2f} ms, {t.ratio:.3f}x the source's own export on its runtime")
    return timed


@dataclass(frozen=True)
class ShortFinetune:
    """What every short finetune of the search shares; plain values, so a fan may run one in another process."""

    data_yaml: Path
    baseline: BaselineParams
    evaluate: EvaluateParams
    finetune: FinetuneParams
    teacher: Teacher | None
    scores: dict[int, Scorer]  # by input size
    reference: float  # the source's mAP50-95 at its own size
    deadline: float  # wall clock (time.time()); a finetune not started by then is cut


Rung = tuple[Variant, Path, int, Path]  # a variant, the weights it goes on from, the epochs, its output folder


def _short_finetune(job: ShortFinetune, rung: Rung) -> tuple[Path, float] | None:
    """A variant's next rung at its input size: its new weights and mAP ratio to the source (None: cut by the clock)."""
    variant, weights, epochs, out = rung
    if time.time() > job.deadline:
        return None
    template, model = load_checkpoint(weights)
    result = finetune(model, template, job.data_yaml, variant.size, job.baseline, job.evaluate, job.finetune, epochs, 0.0, out, job.teacher)
    got = job.scores[variant.size].map50_95(result.weights, work_dir=out / "val") / job.reference if job.reference > 0 else 0.0
    print(f"search: {variant.name} after {out.name} ({epochs} epochs): {got:.3f} of the source's mAP")
    return result.weights, got


def _rungs(inp: StepInput, p: Params, built: list[Built], reference: float, scores: dict[int, Scorer], deadline: float) -> RungScore:
    """Each rung's short finetunes through the step's fan (a Dask cluster under a flow whose fan spreads
    work; in turn here otherwise), each variant going on from its last rung's weights."""
    teacher = Teacher(inp.outcome("fuse").artifact("model"), p.prune.distill) if p.prune.distill.enabled else None
    job = ShortFinetune(
        dataset_info(inp.outcome("dataset")).data_yaml, p.baseline, p.evaluate, p.prune.finetune, teacher, scores, reference, deadline
    )
    weights = {b.variant: b.unfused for b in built}
    rungs: dict[Variant, int] = {}

    def rung(vs: list[Variant], epochs: int) -> list[float | None]:
        for v in vs:
            rungs[v] = rungs.get(v, 0) + 1
        results = inp.fan(partial(_short_finetune, job), [(v, weights[v], epochs, inp.dir() / v.name / f"rung{rungs[v]}") for v in vs])
        weights.update({v: r[0] for v, r in zip(vs, results, strict=True) if r is not None})
        return [None if r is None else r[1] for r in results]

    return rung


def _details(p: Params, timed: list[Timed], gone: dict[str, str], halving: Halving | None, unbuilt: dict[str, str],
             untimed: dict[str, str], reference: float, started: float) -> dict:  # fmt: skip
    verdicts = {v.variant.name: v for v in (halving.verdicts if halving else [])}
    rows = []
    for t in sorted(timed, key=lambda t: t.latency_ms):
        v = verdicts.get(t.candidate.variant.name)
        status = gone.get(t.candidate.name) or (v.fate if v and v.fastest is t else "kept (its variant's fastest format is another)")
        rows.append({"candidate": t.candidate.name, "format": t.candidate.format, "latency_ms": t.latency_ms, "ratio": t.ratio,
                     "map_ratio": v.scores[-1] if v and v.scores else None, "status": status})  # fmt: skip
    chosen = halving.chosen if halving else None
    return {
        "goal": f"latency budget {p.search.budget:g}x the source's own export" if p.search.budget else "the fastest that passes",
        "reference_map50_95": reference,
        "floor": p.gates.min_map_ratio - p.search.slack,
        "chosen": chosen.as_dict() if chosen else None,
        "binds": chosen.variant.binds() if chosen else {},
        "candidates": rows,
        "variants": [v.as_dict() for v in verdicts.values()],
        "unbuilt": unbuilt,
        "untimed_formats": untimed,
        "cut_by_max_minutes": halving.cut_by_clock if halving else [],
        "not_searched": "TensorRT off a GPU",
        "wall_s": time.monotonic() - started,
    }


def _failed(inp: StepInput, p: Params, why: str, details: dict, started: float, value: float = 0.0) -> Outcome:
    threshold = p.search.budget if p.search.budget is not None else p.gates.min_map_ratio
    gate = Gate("search", False, value, threshold, f"search found nothing to ship: {why}")
    print(gate.detail)
    return Outcome(inp.step, details={"search": {**details, "wall_s": time.monotonic() - started}}, gates=(gate,))


def _plot(halving: Halving, reference: float, built: list[Built], out: Path, label: str) -> Path | None:
    """Short-finetune mAP against untrained latency of every variant trained (its fastest format)."""
    files = {b.variant: b.formats for b in built}
    points = [
        Point(f"{v.variant.name}/{v.fastest.candidate.format}", v.scores[-1] * reference, v.fastest.latency_ms, artifact_bytes(files[v.variant][v.fastest.candidate.format]))
        for v in halving.verdicts
        if v.scores
    ]  # fmt: skip
    if not points:
        return None
    title = f"search: {label} after the short finetunes vs latency; chosen {halving.chosen.variant.name if halving.chosen else 'none'}"
    return pareto_plot(points, title, out, ylabel=f"{label} after the short finetune (held-out val)")
