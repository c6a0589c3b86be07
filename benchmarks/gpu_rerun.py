"""The GPU section of an existing benchmark result, measured on another machine that has CUDA.

Why: the CPU benchmark needs the whole stack (MLflow, Prefect, the registry, training) and the CPU
machine has no GPU, while a GPU machine may have only torch. This reads ``<name>.json``, rebuilds
the artifact list from it (paths moved with ``--relocate`` to where the files were copied), runs
``benchmarks.gpu.gpu_section`` with the same timing settings, and writes the JSON and Markdown back
with the ``gpu`` section filled in. It needs torch, onnxruntime, onnx, ultralytics and
ultralytics-thop, not the flow's dependencies.

  python -m benchmarks.gpu_rerun benchmarks/results/default.json --relocate /work/main=$PWD --out $OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.artifact_kind import ORT, Artifact
from benchmarks.gpu import gpu_section
from benchmarks.measure import Timing
from benchmarks.paths import portable_command
from benchmarks.tables import markdown


def _relocator(pairs: list[str]):
    moves = [tuple(pair.split("=", 1)) for pair in pairs]

    def move(path: str) -> Path:
        for old, new in moves:
            if path.startswith(old):
                return Path(new + path[len(old) :])
        return Path(path)

    return move


def artifacts_of(subject: dict, move) -> list[Artifact]:
    """The subject's artifacts as the CPU run described them; batch twins from its ONNX facts."""
    made = []
    for e in subject["artifacts"]:
        if "absent" in e:
            made.append(Artifact(e["name"], e["producer"], e["runtime"], e["precision"], absent=e["absent"]))
            continue
        path = move(e["path"])
        twin = move(e["onnx"]["batch_twin"]) if e["runtime"] == ORT else path
        made.append(Artifact(e["name"], e["producer"], e["runtime"], e["precision"], path, twin))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_rerun", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("result", type=Path, help="a benchmark result JSON (benchmarks/results/<name>.json)")
    parser.add_argument(
        "--relocate", action="append", default=[], metavar="OLD=NEW", help="path prefix the artifacts were moved from/to (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for the updated <name>.json/.md (default: next to RESULT)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="probe processes per figure (default: the CPU run's; the same runs are split over them)"
    )
    parser.add_argument("--probe-timeout", type=float, default=600.0, help="seconds one latency probe may take (default: %(default)s)")
    args = parser.parse_args(argv)

    result = json.loads(args.result.read_text())
    s = result["settings"]
    timing = Timing(s["threads"], s["runs"], s["warmup_per_round"], args.rounds or s["rounds"], args.probe_timeout)
    move = _relocator(args.relocate)
    subjects = [(subj["key"], artifacts_of(subj, move), move(subj["inputs"])) for subj in result["subjects"]]
    result["gpu"] = gpu_section(subjects, tuple(s["batches"]), timing)
    result["gpu"]["measured"] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python -m benchmarks.gpu_rerun {portable_command(sys.argv[1:], args.out)}",
    }

    out = args.out or args.result.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / args.result.name).write_text(json.dumps(result, indent=2))
    (out / args.result.with_suffix(".md").name).write_text(markdown(result))
    print(json.dumps(result["gpu"], indent=1)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
