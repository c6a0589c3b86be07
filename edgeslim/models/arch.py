"""Model architecture yaml from an ultralytics family plus the project's own scale.

Why: the embedded default needs a detector small enough to train on two CPU cores in minutes
(measured here: depth 0.33, width 0.125..0.25 trains in minutes), which no stock scale (n/s/m/l/x) offers. We take the
family's yaml from the installed ultralytics (or edgeslim's own, ``cfg/``), give it ``baseline.scale``
as its one and only scale and set nc.

The rule is the same for every family, so the knob means the same everywhere: ``baseline.scale``
(depth multiple, width multiple, max channels) scales the yaml's own repeat column and channel
counts, as ultralytics' ``parse_model`` does for a stock scale. Repeats given as module arguments
(RepNCSPELAN4's last one) are left as the yaml has them, for single- and dual-head yamls alike.

* A yaml with ``scales`` (yolov8, yolo11, ...) has them replaced by that single entry.
* A yaml without (ultralytics' YOLOv9 GELAN yamls yolov9t/s/m/c/e, yolov3) gets it as a ``scales``
  entry too, not as top-level ``depth_multiple``/``width_multiple``: ultralytics' ``parse_model``
  reads a max-channels cap only from ``scales``, and a scales entry overrides those multiples, which
  are dropped. So yolov9t at the default scale is narrower still than the stock t size.
* ``parse_model`` scales only a module's output width. GELAN hidden widths (RepNCSPELAN4, ELAN1,
  SPPELAN) and CBLinear splits are pre-scaled in the written yaml by the same formula
  (:func:`edgeslim.models.dual.buildable_cfg`), or a "0.25 wide" GELAN would keep full-width hidden
  layers and yolov9e's CBLinear splits would not match the layers they are fused into. Dual-head
  yamls are written unscaled instead: :class:`~edgeslim.models.dual.DualDetectionModel` applies the
  same rewrite when it builds them.

This module imports neither torch nor ultralytics at import time: config validation looks families
up through :func:`family_yaml`, and params are loaded by the torch-free edge agent too.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from edgeslim.data.tasks import YAML_SUFFIX, Task
from edgeslim.errors import ArchError

if TYPE_CHECKING:
    from edgeslim.config import BaselineParams

PROJECT_MODELS = Path(__file__).parent / "cfg"  # edgeslim's own architectures (yolov9-dual)
SCALE_KEY = "edgeslim"  # name of the single scale, unless ultralytics guesses a letter from the file name
VARIANT_MARK = "-"  # ultralytics names a family's task and head variants like yolov8-seg, yolov8-p6
_MULTIPLES = ("depth_multiple", "width_multiple")  # superseded by the scales entry


def ultralytics_models() -> Path:
    """The installed ultralytics' model yamls, found without importing ultralytics (see module doc)."""
    spec = find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise ArchError("ultralytics is not installed: its model family yamls cannot be found")
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


def families() -> dict[str, Path]:
    """Every accepted ``baseline.arch`` and its yaml, sorted by name.

    ultralytics' detect families are its ``yolo*.yaml`` files without a variant suffix; edgeslim's
    own yamls are added and win a name clash.
    """
    stock = {p.stem: p for p in ultralytics_models().rglob("yolo*.yaml") if VARIANT_MARK not in p.stem}
    own = {p.stem: p for p in PROJECT_MODELS.glob("*.yaml")}
    return dict(sorted({**stock, **own}.items()))


def family_yaml(arch: str) -> Path:
    """Path of the yaml for ``arch``; the one lookup both training and config validation use."""
    found = families()
    if arch not in found:
        raise ArchError(f"unknown architecture {arch!r}; accepted: {', '.join(found)}")
    return found[arch]


def task_yaml(arch: str, task: Task) -> Path:
    """The yaml of ``arch`` with ``task``'s head: the family's own for detect, else ultralytics' variant
    (``yolov8-seg``, ``yolo11-pose``, ``yolov9c-seg``), which not every family has."""
    if task == "detect":
        return family_yaml(arch)
    family_yaml(arch)  # an unknown family is named as such first
    suffix = f"{VARIANT_MARK}{YAML_SUFFIX[task]}"
    heads = {p.stem.removesuffix(suffix): p for p in ultralytics_models().rglob(f"*{suffix}.yaml")}
    if arch not in heads:
        raise ArchError(f"ultralytics has no {task} head for {arch!r} ({arch}{suffix}.yaml); families with one: {', '.join(sorted(heads))}")
    return heads[arch]


def _single_scale(cfg: dict[str, Any], scale: list[float], key: str, nc: int) -> dict[str, Any]:
    """``cfg`` with ``nc`` classes and ``scale`` as its only scale, stored under ``key``."""
    rest = {k: v for k, v in cfg.items() if k not in ("nc", "scales", *_MULTIPLES)}
    return {"nc": nc, "scales": {key: scale}, **rest}


def write_arch_yaml(p: BaselineParams, nc: int, out_dir: Path, kpt_shape: tuple[int, int] | None = None) -> Path:
    """Write ``<arch>-edgeslim.yaml`` (``baseline.scale`` as its one scale, ``nc`` classes, ``baseline.task``'s
    head, pose with the data's ``kpt_shape``); return its path.

    ultralytics reads the scale to use from the file name (``yolov9s-edgeslim`` → ``s``), so the
    single entry is stored under that letter when the name carries one, else under ``edgeslim``.
    """
    # Imported here, not at module level: they load torch and ultralytics (see module doc).
    from ultralytics.nn.tasks import guess_model_scale

    from edgeslim.models.dual import AUX_WEIGHT_KEY, buildable_cfg, is_dual_cfg

    out_dir = Path(out_dir)
    head = "" if p.task == "detect" else f"{VARIANT_MARK}{YAML_SUFFIX[p.task]}"
    out = out_dir / f"{p.arch}{head}-edgeslim.yaml"
    family = yaml.safe_load(task_yaml(p.arch, p.task).read_text())
    cfg = _single_scale(family, list(p.scale), guess_model_scale(out) or SCALE_KEY, nc)
    if kpt_shape is not None:
        cfg["kpt_shape"] = list(kpt_shape)
    if is_dual_cfg(cfg):
        cfg[AUX_WEIGHT_KEY] = p.aux_loss_weight
    else:  # GELAN hidden widths and CBLinear splits, which stock parse_model leaves unscaled
        cfg, _ = buildable_cfg(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
