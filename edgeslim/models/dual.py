"""YOLOv9 dual-head (PGI) detector: a training-time auxiliary branch and head next to the main ones.

Why the project builds it: ultralytics' YOLOv9 yamls are GELAN only (no auxiliary branch), while the
promise "complex when training, lean when inferring" is about removing exactly that branch. Modelled
on the original YOLOv9 (``DualDDetect``): the head takes the auxiliary levels first, then the main
levels, returns ``[aux, main]`` raw predictions while training (the loss adds the auxiliary head's
loss times ``aux_loss_weight``) and only the main head's output at inference, so ultralytics'
validator, exporter and edgeslim's equivalence gate see an ordinary detector.

ultralytics' ``parse_model`` knows neither ``DualDetect`` nor width scaling of GELAN's hidden
widths and CBLinear splits; :func:`buildable_cfg` rewrites the yaml rows into what it can parse and
:class:`DualDetectionModel` swaps the real head in afterwards. The classes live here (not in a test or
a script) so pickled dual checkpoints load in any process that imports edgeslim.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.modules import Detect
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils import RANK
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.ops import make_divisible
from ultralytics.utils.torch_utils import initialize_weights

import edgeslim.ultra  # noqa: F401  (offline settings before ultralytics)
from edgeslim.errors import ArchError

HEAD = "DualDetect"
AUX_WEIGHT_KEY = "aux_loss_weight"  # set in the arch yaml from params.yaml `baseline.aux_loss_weight`
# Width arguments ultralytics' parse_model leaves unscaled: module → positions in its yaml args.
_HIDDEN_WIDTHS = {"RepNCSPELAN4": (1, 2), "SPPELAN": (1,), "ELAN1": (1, 2)}


def is_dual_cfg(cfg: dict[str, Any]) -> bool:
    return bool(cfg.get("head")) and cfg["head"][-1][2] == HEAD


def is_dual(model: torch.nn.Module) -> bool:
    return isinstance(getattr(model, "model", [None])[-1], DualDetect)


def _scale(cfg: dict[str, Any]) -> tuple[float, int]:
    scales = cfg.get("scales") or {}
    scale = cfg.get("scale") or next(iter(scales), None)
    _, width, max_channels = scales[scale] if scale in scales else (1.0, cfg.get("width_multiple", 1.0), float("inf"))
    return width, max_channels


def buildable_cfg(cfg: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Rows ultralytics can parse: hidden widths and CBLinear splits pre-scaled, DualDetect → Detect.

    Returns the rewritten config and the number of auxiliary levels. The Detect placeholder takes
    all six inputs so parse_model computes their channels; the model swaps in the real head.
    """
    width, max_channels = _scale(cfg)
    out = copy.deepcopy(cfg)
    n_aux = 0
    for row in out["backbone"] + out["head"]:
        module, args = row[2], row[3]
        for j in _HIDDEN_WIDTHS.get(module, ()):
            args[j] = make_divisible(min(args[j], max_channels) * width, 8)
        if module == "CBLinear":
            args[0] = [make_divisible(min(c, max_channels) * width, 8) for c in args[0]]
        if module == HEAD:
            n_aux = int(args[1])
            row[2], row[3] = "Detect", args[:1]
    return out, n_aux


class DualDetect(Detect):
    """Main Detect head (its own cv2/cv3/dfl, so stripping maps them one to one) plus ``aux``."""

    def __init__(self, nc: int, reg_max: int, ch: list[int], n_aux: int) -> None:
        super().__init__(nc, reg_max, False, ch[n_aux:])
        self.aux = Detect(nc, reg_max, False, ch[:n_aux])
        self.n_aux = n_aux

    def forward(self, x: list[torch.Tensor]) -> Any:
        main = super().forward(x[self.n_aux :])
        if self.training:
            return [self.aux.forward_head(x[: self.n_aux], **self.aux.one2many), main]
        return main

    def bias_init(self) -> None:
        super().bias_init()
        self.aux.bias_init()


class DualDetectionLoss:
    """v8DetectionLoss on the main head plus ``weight`` x the same loss on the auxiliary head.

    Outside training (ultralytics' validator passes the inference tuple) only the main head exists.
    """

    def __init__(self, model: DetectionModel, weight: float) -> None:
        self.main = v8DetectionLoss(model)
        self.weight = weight

    def __call__(self, preds: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(preds, list):
            return self.main(preds, batch)
        aux_preds, main_preds = preds
        loss, items = self.main(main_preds, batch)
        aux_loss, aux_items = self.main(aux_preds, batch)
        return loss + self.weight * aux_loss, {k: v + self.weight * aux_items[k] for k, v in items.items()}


class DualDetectionModel(DetectionModel):
    """A DetectionModel whose last layer is :class:`DualDetect`, built from a dual yaml at any scale."""

    def __init__(self, cfg: str | Path | dict = "yolov9-dual.yaml", ch: int = 3, nc: int | None = None, verbose: bool = True) -> None:
        spec = copy.deepcopy(cfg) if isinstance(cfg, dict) else yaml_model_load(cfg)
        if not is_dual_cfg(spec):
            raise ArchError(f"not a dual-head yaml: its last row must be {HEAD}")
        if AUX_WEIGHT_KEY not in spec:
            raise ArchError(f"dual-head yaml needs {AUX_WEIGHT_KEY!r} (the auxiliary loss weight)")
        buildable, n_aux = buildable_cfg(spec)
        super().__init__(buildable, ch=ch, nc=nc, verbose=False)
        placeholder = self.model[-1]
        head = DualDetect(self.yaml["nc"], placeholder.reg_max, [seq[0].conv.in_channels for seq in placeholder.cv2], n_aux)
        head.i, head.f, head.type, head.inplace = placeholder.i, placeholder.f, HEAD, placeholder.inplace
        head.stride, head.aux.stride = placeholder.stride[n_aux:], placeholder.stride[:n_aux]
        head.bias_init()
        head.np = sum(p.numel() for p in head.parameters())
        self.model[-1] = head
        self.stride = head.stride
        initialize_weights(self)
        spec.update(nc=self.yaml["nc"], channels=ch)
        self.yaml = spec
        if verbose:
            self.info()

    def init_criterion(self) -> DualDetectionLoss:
        return DualDetectionLoss(self, float(self.yaml[AUX_WEIGHT_KEY]))


class DualDetectionTrainer(DetectionTrainer):
    """ultralytics' detection trainer building a :class:`DualDetectionModel` from the yaml."""

    def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> DualDetectionModel:
        model = DualDetectionModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1)
        if weights:
            model.load(weights)
        return model


def build_detection_model(cfg: str | Path | dict, nc: int | None = None) -> DetectionModel:
    """Build from a yaml whichever model it describes: dual-head or a plain ultralytics detector."""
    spec = copy.deepcopy(cfg) if isinstance(cfg, dict) else yaml_model_load(cfg)
    return DualDetectionModel(spec, nc=nc, verbose=False) if is_dual_cfg(spec) else DetectionModel(spec, nc=nc, verbose=False)
