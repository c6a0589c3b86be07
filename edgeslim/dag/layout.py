"""Every file name a pipeline run reads or writes, in one place.

One folder per step (``<root>/<step>/``): a DVC stage's ``outs`` is exactly its step's folder, and a
flow run's folder has the same shape, so a file found in one is found at the same place in the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.calibration.curate import MANIFEST_NAME, PLOT_NAME

OUTCOME_FILE = "outcome.json"  # a step's typed outcome, read back by the steps after it (DVC: other processes)
STAGES_JSON, PARETO_PNG = "stages.json", "pareto.png"  # the gates step's stage table and plot (DVC plots)
PLOTS_DIR = "plots"
REPORT_JSON, REPORT_MD = "report.json", "report.md"  # a run's report, for machines and for people


@dataclass(frozen=True)
class Layout:
    """Where one run's files live. ``datasets`` set: datasets are shared across runs in that folder
    (a flow run); unset: the dataset is materialized inside the layout (a DVC stage's outs)."""

    root: Path
    datasets: Path | None = None

    def dir(self, step: str) -> Path:
        path = self.root / step
        path.mkdir(parents=True, exist_ok=True)
        return path

    def outcome(self, step: str) -> Path:
        return self.root / step / OUTCOME_FILE

    def metrics(self, step: str) -> Path:
        """Flat figures of one step (``dvc metrics show``), outside the step's outs."""
        return self.root / "metrics" / f"{step}.json"

    def dataset(self, key: str) -> Path:
        """Folder of the dataset whose params hash is ``key`` (the name :func:`edgeslim.workspace.dataset` uses)."""
        return self.datasets / f"synthetic-{key}" if self.datasets else self.root / "dataset"

    # --- source ---------------------------------------------------------------------------------
    def baseline_weights(self) -> Path:
        return self.root / "baseline" / "baseline.pt"

    def pulled(self) -> Path:
        return self.dir("pull")

    # --- fuse -----------------------------------------------------------------------------------
    def stripped(self) -> Path:
        """A dual-head source without its auxiliary branch, before fusion."""
        return self.dir("fuse") / "stripped.pt"

    def fused(self) -> Path:
        return self.dir("fuse") / "fused.pt"

    # --- prune / finetune -----------------------------------------------------------------------
    def pruned(self) -> Path:
        return self.dir("prune") / "pruned.pt"

    def channels_png(self) -> Path:
        return self.dir("prune") / "channels.png"

    def finetune_dir(self) -> Path:
        return self.dir("finetune")

    def finetuned_fused(self) -> Path:
        return self.dir("finetune") / "fused.pt"

    def control(self) -> Path:
        return self.dir("control") / "control-fused.pt"

    # --- export / calibrate ---------------------------------------------------------------------
    def fp32(self) -> Path:
        return self.dir("export") / "model-fp32.onnx"

    def calibration_dir(self) -> Path:
        return self.dir("calibrate")

    def calibration_manifest(self) -> Path:
        return self.dir("calibrate") / MANIFEST_NAME

    def calibration_plot(self) -> Path:
        return self.dir("calibrate") / PLOT_NAME

    # --- evaluate / quantize / tensorrt ---------------------------------------------------------
    def validation(self, step: str) -> Path:
        """Scratch folder of the validator (ultralytics writes its val runs there)."""
        return self.dir(step) / "val"

    def int8(self) -> Path:
        return self.dir("quantize") / "model-int8.onnx"

    def quantize_work(self) -> Path:
        """Pre-processed model and cached calibration ranges, shared by the INT8 and TensorRT steps."""
        return self.dir("quantize") / "work"

    def tensorrt_qdq(self) -> Path:
        return self.dir("tensorrt") / "model-int8-tensorrt.onnx"

    def engine(self) -> Path:
        return self.dir("tensorrt") / "model-int8.engine"

    # --- gates / report -------------------------------------------------------------------------
    def stages_json(self) -> Path:
        """The stage table as DVC plots read it: beside, not inside, the gates step's outs."""
        return self.dir(PLOTS_DIR) / STAGES_JSON

    def stages_png(self) -> Path:
        return self.dir(PLOTS_DIR) / PARETO_PNG

    def report_json(self) -> Path:
        return self.root / REPORT_JSON

    def report_md(self) -> Path:
        return self.root / REPORT_MD

    def pareto_png(self) -> Path:
        """The published run's accuracy-vs-latency plot, with the previous candidate."""
        return self.root / "pareto.png"

    def page_dir(self) -> Path:
        return self.dir("page")
