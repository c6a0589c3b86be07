"""The compress flow's steps run directly: the registry's DATASET and COMPRESS steps, in the flow's
order, through the loop every runner shares, without Prefect and without MLflow.

That gives (a) edgeslim's artifacts to benchmark and (b) the pure compute time of each step, which
the flow's report.json timings are compared with in benchmarks.flow_cost (same step names).
An untrained subject is pruned but not finetuned (``prune.finetune.epochs`` 0): there is nothing to
recover, and its figures are speed and size only (its mAP figures are left out of the results).

A run trains (finetuning, the control) for minutes, so its result is cached in its folder under a
key of every param the steps can read (all but the ``benchmark`` section, which only the benchmark
reads: how it times, not what the steps build), the source file's sha256 and the image size: the
benchmark reruns only what changed, and the ablation's variants that equal the defaults reuse the
default run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeslim import workspace
from edgeslim.config import Params, digest
from edgeslim.dag.layout import Layout
from edgeslim.dag.registry import COMPRESS, DATASET
from edgeslim.dag.run import run_steps
from edgeslim.dag.source import source_outcome
from edgeslim.dag.step import FP32, SOURCE
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.export import TORCH
from edgeslim.digest import file_sha256
from edgeslim.export.onnx_export import export_onnx
from edgeslim.report import StageResult

CACHE_FILE = "library-run.json"
_PATHS = ("fused", "fp32_unpruned", "shipped", "fp32", "int8")


@dataclass
class LibraryRun:
    fused: Path  # fused source, unpruned
    fp32_unpruned: Path  # its ONNX export
    shipped: Path  # the .pt the shipped ONNX comes from: pruned (+ finetuned when trained) and fused, or ``fused``
    fp32: Path
    int8: Path
    calib_images: list[Path]
    pruned: bool
    timings_s: dict[str, float] = field(default_factory=dict)  # the flow's step names → wall seconds
    stages: dict[str, StageResult] = field(default_factory=dict)
    target: dict = field(default_factory=dict)  # the gates step's target section: formats shipped, preferred first
    gates: dict[str, bool] = field(default_factory=dict)  # gate → passed
    pruning: dict = field(default_factory=dict)  # the prune step's report (MACs, latency budget checks)

    def to_json(self) -> str:
        data = asdict(self)
        data.update({k: str(getattr(self, k)) for k in _PATHS}, calib_images=[str(i) for i in self.calib_images])
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "LibraryRun":
        data = json.loads(text)
        data.update({k: Path(data[k]) for k in _PATHS}, calib_images=[Path(i) for i in data["calib_images"]])
        data["stages"] = {k: StageResult(**v) for k, v in data["stages"].items()}
        return cls(**data)

    def shipped_artifact(self) -> tuple[str, Path] | None:
        """The format the target prefers among those that passed, and its file (None: nothing would ship)."""
        if not self.target.get("shipped") or not all(self.gates.values()):
            return None
        first = self.target["shipped"][0]
        return first["format"], Path(first["artifact"])


def subject_params(p: Params, imgsz: int, trained: bool) -> Params:
    """``p`` at the subject's image size; an untrained subject is not finetuned."""
    p = p.model_copy(update={"compress": p.compress.model_copy(update={"imgsz": imgsz})})
    if trained:
        return p
    return p.model_copy(update={"prune": p.prune.model_copy(update={"finetune": p.prune.finetune.model_copy(update={"epochs": 0})})})


def run_library_steps(p: Params, weights: Path, imgsz: int, out_dir: Path, trained: bool) -> LibraryRun:
    """DATASET + COMPRESS on ``weights`` (the source role), plus the unpruned FP32 export; reused
    from ``out_dir`` when the same params, source and size ran there before."""
    p = subject_params(p, imgsz, trained)
    key = digest({"params": p.model_dump(mode="json", exclude={"benchmark"}), "source": file_sha256(weights), "imgsz": imgsz})
    cached = out_dir / CACHE_FILE
    if cached.exists() and json.loads(cached.read_text()).get("key") == key:
        print(f"reusing the library run in {out_dir} (same params and source)")
        return LibraryRun.from_json(json.loads(cached.read_text())["run"])
    layout = Layout(out_dir, datasets=workspace.datasets_dir(p))  # the workspace's dataset, as the flow uses it
    outcomes = run_steps((DATASET,), p, layout, {SOURCE: source_outcome(weights, {"reference": weights.name}, step=SOURCE)})
    outcomes = run_steps(COMPRESS, p, layout, outcomes)
    fused = outcomes["fuse"].artifact("model")
    fp32_unpruned = export_onnx(fused, imgsz, p.export.opset, out_dir / "unpruned" / "model-fp32-unpruned.onnx")  # not a flow step
    run = LibraryRun(
        fused=fused,
        fp32_unpruned=fp32_unpruned,
        shipped=outcomes["export"].artifact(TORCH),
        fp32=outcomes["export"].artifact(FP32),
        int8=outcomes["quantize"].artifact("int8"),
        calib_images=calibration_images(outcomes["calibrate"].artifact("manifest")),
        pruned=outcomes["prune"].skipped is None,
        timings_s={o.step: o.seconds for o in outcomes.values() if o.seconds},
        stages={s.name: s for o in outcomes.values() for s in o.stages},
        target=outcomes["gates"].details["target"],
        gates={g.name: g.passed for o in outcomes.values() for g in o.gates},
        pruning=outcomes["prune"].details.get("pruning", {}),
    )
    cached.write_text(json.dumps({"key": key, "run": run.to_json()}))
    return run
