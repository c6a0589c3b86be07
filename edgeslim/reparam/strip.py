"""Auxiliary-branch removal: a dual-head (PGI) model becomes a plain single-head detector.

What to keep is derived from the graph, not from layer numbers: starting at the main head's inputs,
every layer reachable backwards through ultralytics' ``f`` (from) indices is kept; everything else
(the CBLinear taps, the auxiliary backbone, the auxiliary head) only reaches the auxiliary output and
goes. The kept rows are renumbered into a plain ultralytics yaml, a stock ``DetectionModel`` is built
from it (so the edge model needs nothing from edgeslim to load) and every kept weight is copied over
under its new index; the main head's cv2/cv3/dfl map one to one onto the plain ``Detect``. The load
is strict: a weight that has no home, or a home without a weight, is an error, never a silent loss.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from ultralytics.nn.tasks import DetectionModel

from edgeslim.errors import PruneError
from edgeslim.models.dual import AUX_WEIGHT_KEY, DualDetectionModel, buildable_cfg


@dataclass
class StripReport:
    kept: dict[int, int] = field(default_factory=dict)  # old layer index → new index
    removed: dict[int, str] = field(default_factory=dict)  # old layer index → module type
    head: dict[str, str] = field(default_factory=dict)  # dual head part → plain Detect part
    params_before: int = 0
    params_after: int = 0

    def rename(self) -> dict[str, str]:
        """Stripped module name prefix → the dual model's, for per-module comparisons."""
        return {f"model.{new}": f"model.{old}" for old, new in self.kept.items()}

    def as_dict(self) -> dict:
        out = asdict(self)
        out["kept"] = {str(k): v for k, v in self.kept.items()}
        out["removed"] = {str(k): v for k, v in self.removed.items()}
        return out


def _sources(f: int | list[int], i: int) -> list[int]:
    """Absolute indices of the layers feeding layer ``i`` (-1: the previous layer; none for the image)."""
    return [i + j if j < 0 else j for j in ([f] if isinstance(f, int) else f) if i + j >= 0 or j >= 0]


def main_ancestors(model: DualDetectionModel) -> set[int]:
    """Every layer the main head's inputs depend on."""
    head = model.model[-1]
    todo, keep = list(head.f[head.n_aux :]), set()
    while todo:
        i = todo.pop()
        if i not in keep:
            keep.add(i)
            todo.extend(_sources(model.model[i].f, i))
    return keep


def _remap(f: int | list[int], old: int, index: dict[int, int]) -> int | list[int]:
    new_i = index[old]

    def one(j: int) -> int:
        if j < 0 and old + j < 0:
            return j  # the image
        new = index[old + j if j < 0 else j]
        return -1 if new == new_i - 1 else new

    return one(f) if isinstance(f, int) else [one(j) for j in f]


def strip_auxiliary(model: DualDetectionModel) -> tuple[DetectionModel, StripReport]:
    """Return the plain single-head model computing exactly the dual model's main output."""
    source = copy.deepcopy(model).float().eval()
    keep = sorted(main_ancestors(source))
    head = source.model[-1]
    index = {old: new for new, old in enumerate(keep)}
    rows, _ = buildable_cfg(source.yaml)
    n_backbone = len(rows["backbone"])
    all_rows = rows["backbone"] + rows["head"]
    kept_rows = [[_remap(all_rows[old][0], old, index), *all_rows[old][1:]] for old in keep]
    new_head = len(keep)
    kept_rows.append([[index[j] for j in head.f[head.n_aux :]], 1, "Detect", [source.yaml["nc"]]])
    cfg = {k: v for k, v in rows.items() if k not in ("backbone", "head", "channels", AUX_WEIGHT_KEY)}
    split = sum(old < n_backbone for old in keep)
    cfg.update(backbone=kept_rows[:split], head=kept_rows[split:])
    plain = DetectionModel(cfg, ch=source.yaml.get("channels", 3), nc=source.yaml["nc"], verbose=False)

    state = {}
    for key, value in source.state_dict().items():
        layer, _, rest = key.removeprefix("model.").partition(".")
        old = int(layer)
        if old in index:
            state[f"model.{index[old]}.{rest}"] = value
        elif old == head.i and not rest.startswith("aux."):
            state[f"model.{new_head}.{rest}"] = value
    try:
        plain.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # torch's report of weights without a home, or homes without a weight
        raise PruneError(f"the kept weights do not fit the stripped model: {exc}") from None
    if not torch.equal(plain.stride, source.stride):
        raise PruneError(f"stripped model strides {plain.stride.tolist()} differ from the dual model's {source.stride.tolist()}")
    plain.names, plain.args = source.names, getattr(source, "args", {})
    report = StripReport(
        kept=index,
        removed={i: type(m).__name__ for i, m in enumerate(source.model) if i not in index and i != head.i},
        head={f"model.{head.i}.{part}": f"model.{new_head}.{part}" for part in ("cv2", "cv3", "dfl")},
        params_before=sum(p.numel() for p in source.parameters()),
        params_after=sum(p.numel() for p in plain.parameters()),
    )
    report.kept[head.i] = new_head
    report.removed[head.i] = "DualDetect.aux"
    return plain.eval(), report
