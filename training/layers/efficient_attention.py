"""CTAN's Efficient Attention block (after ConvNeXt stage 4).

Two branches over the same features, concatenated and fused by a 1x1 convolution back to ``channels``:
- global: global average pooling produces channel weights that rescale the features. We use ECA
  (timm's ``EcaModule``: pooled vector -> 1-D convolution across channels -> sigmoid), the "efficient" channel
  attention; the CTAN paper describes the branch only at this level of detail.
- local: two 3x3 depthwise convolutions, each followed by Swish (SiLU).
"""

from __future__ import annotations

import torch
from timm.layers import EcaModule
from torch import nn


class EfficientAttention(nn.Module):
    """Global (channel weights) + local (depthwise conv, Swish) branches fused by a 1x1 conv.

    Args:
        channels: Input and output channels.
        kernel_size: Depthwise kernel size of the local branch.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.global_branch = EcaModule(channels)
        self.local_branch = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=pad, groups=channels),
            nn.SiLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=pad, groups=channels),
            nn.SiLU(inplace=True),
        )
        self.fuse = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.global_branch(x), self.local_branch(x)], dim=1))
