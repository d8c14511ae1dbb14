"""Basic Receptive Field Block (RFBNet, Liu et al. ECCV 2018), optional in CTAN after the ConvNeXt stem.

Three branches (1x1 bottleneck, then 3x3 convolutions ending in dilations 1, 2 and 3) mimic receptive fields
of growing size; their concatenation is fused by a 1x1 conv, scaled by ``scale`` and added to a 1x1 shortcut,
then ReLU, as in RFBNet's ``BasicRFB`` (stride 1, ``visual=1``). Every conv is conv (no bias) + BatchNorm (+ ReLU).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(in_chs: int, out_chs: int, kernel_size: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (same padding, no bias) + BatchNorm (+ ReLU)."""
    pad = dilation * (kernel_size - 1) // 2
    layers = [nn.Conv2d(in_chs, out_chs, kernel_size, padding=pad, dilation=dilation, bias=False),
              nn.BatchNorm2d(out_chs)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicRFB(nn.Module):
    """RFBNet's BasicRFB (stride 1).

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        scale: Weight of the branches relative to the shortcut.
        visual: Base dilation (1 -> dilations 1, 2, 3).
    """

    def __init__(self, in_chs: int, out_chs: int, scale: float = 0.1, visual: int = 1) -> None:
        super().__init__()
        self.scale = scale
        inter = max(in_chs // 8, 1)
        mid = max(inter // 2 * 3, 1)
        self.branch0 = nn.Sequential(
            conv_bn(in_chs, 2 * inter, 1),
            conv_bn(2 * inter, 2 * inter, 3, dilation=visual, relu=False),
        )
        self.branch1 = nn.Sequential(
            conv_bn(in_chs, inter, 1),
            conv_bn(inter, 2 * inter, 3),
            conv_bn(2 * inter, 2 * inter, 3, dilation=visual + 1, relu=False),
        )
        self.branch2 = nn.Sequential(
            conv_bn(in_chs, inter, 1),
            conv_bn(inter, mid, 3),
            conv_bn(mid, 2 * inter, 3),
            conv_bn(2 * inter, 2 * inter, 3, dilation=2 * visual + 1, relu=False),
        )
        self.fuse = conv_bn(6 * inter, out_chs, 1, relu=False)
        self.shortcut = conv_bn(in_chs, out_chs, 1, relu=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fuse(torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], dim=1))
        return self.act(out * self.scale + self.shortcut(x))
