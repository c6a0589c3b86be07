"""The activation lever: the student's SiLU swapped for ReLU or Hardswish before it is finetuned.

Why: ONNX Runtime on x86 does not fuse SiLU into the convolution (the Conv output feeds both x and
sigmoid(x)), so every SiLU runs as ops of its own; ReLU fuses. Measured on the demo's champion at
160 px, untrained: 0.90x on ONNX Runtime and 0.92x on OpenVINO FP32. Finetuned from the SiLU
weights, with the unchanged SiLU source teaching, a converged model kept 0.999 of its mAP
(shared/DESIGN.md). The swap changes the function, so the finetune after it is what makes it pay,
and the accuracy gate against the reference is what judges it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from edgeslim.config import Activation

SWAPS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hardswish": nn.Hardswish}
YAML_SPEC = {"relu": "nn.ReLU()", "hardswish": "nn.Hardswish()"}  # ultralytics' model-yaml `activation:` for each


@dataclass(frozen=True)
class ActivationSwap:
    activation: str
    swapped: int  # SiLU modules replaced

    def as_dict(self) -> dict:
        return asdict(self)


def swap_activation(model: nn.Module, activation: Activation) -> tuple[nn.Module, ActivationSwap]:
    """``model`` with every SiLU replaced by ``activation`` (in place; ``keep`` changes nothing).

    The model's yaml records the new default activation, as ultralytics' own ``activation:`` key
    does, so a model rebuilt from its yaml has the activation it was trained with."""
    if activation == "keep":
        return model, ActivationSwap(activation, 0)
    swapped = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.SiLU):
                setattr(parent, name, SWAPS[activation]())
                swapped += 1
    spec = getattr(model, "yaml", None)
    if isinstance(spec, dict):
        setattr(model, "yaml", {**spec, "activation": YAML_SPEC[activation]})  # noqa: B010 (nn.Module types attributes as tensors)
    return model, ActivationSwap(activation, swapped)
