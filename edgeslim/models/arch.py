"""Model architecture yaml from an ultralytics family plus the project's own scale.

Why: the embedded default needs a detector small enough to train on two CPU cores in minutes
(DESIGN.md: depth 0.33, width 0.125..0.25), which no stock scale (n/s/m/l/x) offers. We take the
family's yaml from the installed ultralytics, replace its scales by one custom entry and set nc.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from edgeslim.config import BaselineParams
from edgeslim.models.dual import AUX_WEIGHT_KEY, is_dual_cfg
from edgeslim.ultra import CFG_MODELS

PROJECT_MODELS = Path(__file__).parent / "cfg"  # edgeslim's own architectures (yolov9-dual)


def family_yaml(arch: str) -> Path:
    """Path of the yaml for ``arch``: edgeslim's own (``yolov9-dual``) or the installed ultralytics one."""
    matches = sorted(PROJECT_MODELS.glob(f"{arch}.yaml")) or sorted(CFG_MODELS.rglob(f"{arch}.yaml"))
    if not matches:
        known = sorted(p.stem for p in CFG_MODELS.rglob("yolo*.yaml") if "-" not in p.stem)
        own = sorted(p.stem for p in PROJECT_MODELS.glob("*.yaml"))
        raise ValueError(f"unknown architecture {arch!r}; ultralytics ships: {', '.join(known)}; edgeslim adds: {', '.join(own)}")
    return matches[0]


def write_arch_yaml(p: BaselineParams, nc: int, out_dir: Path) -> Path:
    """Write ``<arch>-edgeslim.yaml`` (one custom scale, ``nc`` classes) and return its path.

    The file name deliberately carries no n/s/m/l/x letter after the version digits, so ultralytics'
    scale guessing leaves our single custom scale in force.
    """
    cfg = yaml.safe_load(family_yaml(p.arch).read_text())
    if "scales" not in cfg:
        raise ValueError(f"architecture {p.arch!r} has no 'scales' section; pick a family yaml with scales")
    depth, width, max_channels = p.scale
    cfg["scales"] = {"edgeslim": [depth, width, max_channels]}
    cfg["nc"] = nc
    if is_dual_cfg(cfg):
        cfg[AUX_WEIGHT_KEY] = p.aux_loss_weight
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{p.arch}-edgeslim.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
