"""Step ``calibrate``: curate the INT8 calibration set from the ``calib_pool`` split (manifest +
coverage plot), measured with the FP32 ONNX model (export's, or an ONNX source)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeslim.calibration.curate import build_calibration_set
from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import run_size
from edgeslim.dag.step import FP32, StepInput, source_task
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.data.splits import split_images


def calibrate(inp: StepInput, p: Params) -> Outcome:
    data = dataset_info(inp.outcome("dataset"))
    pool = split_images(data.data_yaml, "calib_pool")
    fp32 = inp.latest(FP32)
    cs = build_calibration_set(
        pool, fp32, run_size(p), data.names, source_task(inp), p.calibration, inp.layout.calibration_dir(), p.evaluate.threads
    )
    r = cs.report
    print(
        f"calibration set ({r['method']}): {r['images']} of {r['pool_images']} pool images, objects from {r['objects_from']}; "
        f"strata covered {r['selected_strata_covered']}/{r['strata_total']} (random sample: {r['random_strata_covered']}), "
        f"manifest {cs.manifest}"
    )
    return Outcome(
        inp.step,
        artifacts={"manifest": cs.manifest, "plot": cs.plot},
        metrics=numeric(r),
        details={"calibration": {**r, "sha256": cs.sha256}},
    )


def calibration_images(manifest: Path) -> list[Path]:
    """The images a calibration manifest lists, in its order."""
    return [Path(entry["path"]) for entry in json.loads(manifest.read_text())["images"]]
