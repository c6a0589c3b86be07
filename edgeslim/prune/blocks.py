"""Split-free equivalents of ultralytics' blocks that cut tensors with ``chunk``/``split``.

Why: torch-pruning's dependency graph cannot follow a channel through ``chunk``/``split`` of a conv
output inside C2f, C3k2, RepNCSPELAN4, ELAN1, C2PSA or ADown (it fails with an IndexError, or keeps
a stale split size after pruning). Each block here computes exactly the same function with the
split moved into the weights: the conv whose output was split becomes two convs, each owning one
half of its filters. These classes live in the library so that a pickled pruned model loads in any
process that can import edgeslim.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from ultralytics.nn.modules.conv import Conv

import edgeslim.ultra  # noqa: F401  (offline settings before ultralytics is imported)


def split_conv(conv: Conv, sizes: tuple[int, ...]) -> list[Conv]:
    """Cut an ultralytics ``Conv`` (conv + BN + act) into convs owning consecutive output channels.

    Works on fused convs too (no ``bn``; the conv then carries the bias).
    """
    parts = []
    start = 0
    for size in sizes:
        part = copy.deepcopy(conv)
        sl = slice(start, start + size)
        part.conv = _slice_conv2d(conv.conv, sl)
        if hasattr(conv, "bn"):
            part.bn = _slice_bn(conv.bn, sl)
        parts.append(part)
        start += size
    return parts


def _slice_conv2d(conv: nn.Conv2d, out: slice) -> nn.Conv2d:
    weight = conv.weight.data[out]
    new = nn.Conv2d(
        conv.in_channels,
        weight.shape[0],
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    new.weight.data.copy_(weight)
    if conv.bias is not None:
        new.bias.data.copy_(conv.bias.data[out])
    return new


def _slice_bn(bn: nn.BatchNorm2d, out: slice) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(out.stop - out.start, bn.eps, bn.momentum, bn.affine)
    new.running_mean.copy_(bn.running_mean[out])
    new.running_var.copy_(bn.running_var[out])
    new.num_batches_tracked.copy_(bn.num_batches_tracked)
    if bn.affine:
        new.weight.data.copy_(bn.weight.data[out])
        new.bias.data.copy_(bn.bias.data[out])
    return new


class SplitFreeCSP(nn.Module):
    """C2f / C3k2 / C2fCIB / C2fPSA / RepNCSPELAN4 / ELAN1 / C2PSA without the split.

    Original: ``a, b = cv1(x).split(c)``; a chain of blocks runs on ``b`` (each on the previous
    one's output); ``out(cat(a, b, *chain outputs))`` — or ``out(cat(a, last chain output))`` for
    C2PSA (``concat_all=False``). Here ``cv_a`` and ``cv_b`` are the two halves of ``cv1``.
    """

    def __init__(self, cv_a: Conv, cv_b: Conv, chain: list[nn.Module], out: Conv, concat_all: bool, source: str) -> None:
        super().__init__()
        self.cv_a, self.cv_b, self.out = cv_a, cv_b, out
        self.chain = nn.ModuleList(chain)
        self.concat_all = concat_all
        self.source = source  # the ultralytics block this replaces, for reports

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv_a(x), self.cv_b(x)]
        for block in self.chain:
            y.append(block(y[-1]))
        return self.out(torch.cat(y if self.concat_all else [y[0], y[-1]], 1))


class SplitFreeADown(nn.Module):
    """ADown without the input ``chunk``: each branch's conv reads all channels, with zero weights
    on the half it did not see.

    Costs twice the MACs of ADown's two convs before pruning, but lets the producer's channels be
    pruned in lockstep with both readers (the zeros are pruned away with them).
    """

    def __init__(self, cv1: Conv, cv2: Conv, source: str = "ADown") -> None:
        super().__init__()
        self.cv1, self.cv2 = _widen_input(cv1, 0), _widen_input(cv2, 1)
        self.source = source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.avg_pool2d(x, 2, 1, 0, False, True)
        x1 = self.cv1(x)
        x2 = self.cv2(nn.functional.max_pool2d(x, 3, 2, 1))
        return torch.cat((x1, x2), 1)


def _widen_input(conv: Conv, half: int) -> Conv:
    """A copy of ``conv`` reading twice its input channels, the original ones placed at ``half``."""
    old = conv.conv
    wide = nn.Conv2d(
        old.in_channels * 2, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, old.groups, bias=old.bias is not None
    )
    wide.weight.data.zero_()
    cin = old.in_channels
    wide.weight.data[:, half * cin : (half + 1) * cin] = old.weight.data
    if old.bias is not None:
        wide.bias.data.copy_(old.bias.data)
    new = copy.deepcopy(conv)
    new.conv = wide
    return new
