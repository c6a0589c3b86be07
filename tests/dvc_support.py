"""A fresh clone of this working tree for DVC tests: tracked and untracked-but-not-ignored files,
committed to a new git repository, with tiny params (seconds per stage) and `edgeslim` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO, _merge

# Tiny enough for the whole pipeline in about a minute on 2 cores; pruning off (its cost is the
# finetuning, covered by the flow tests), one training epoch (mAP ≈ 0: the gate is recorded, not raised).
DVC_TINY = {
    "dataset": {"image_size": 128, "splits": {"train": 16, "val": 8, "calib_pool": 8}, "object_size": [16, 48]},
    "baseline": {"imgsz": 64, "epochs": 1, "batch": 8},
    "prune": {"enabled": False},
    "calibration": {"num_images": 4, "min_per_stratum": 0},
    "quantize": {"fallback": {"enabled": False}, "tensorrt": {"enabled": False}},
    "fuse": {"equivalence_images": 2},
    "evaluate": {"latency_runs": 2, "latency_warmup": 0},
    "target": {"name": "x86-avx2", "profiles": {"x86-avx2": ["onnx-fp32", "onnx-int8"]}},  # OpenVINO: the flow tests
}


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def dvc_env() -> dict[str, str]:
    """The venv's bin first on PATH (dvc.yaml calls `edgeslim`), git identity for commits."""
    bindir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def fresh_clone(dest: Path) -> Path:
    """Copy what a clone of this tree would hold, write tiny params, commit it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = _merge(yaml.safe_load((dest / "params.yaml").read_text()), DVC_TINY)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dvc_env()
    run(["git", "init", "-q"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "clone"], dest, env)
    return dest
