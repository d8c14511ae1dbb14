"""Shuffle Attention (SA-Net, Zhang & Yang, ICASSP 2021), used by CTAN after stage 4.

The channels are split into ``groups`` sub-features; each is halved:
- channel half: gated by sigmoid(w_c * avgpool(x) + b_c),
- spatial half: gated by sigmoid(w_s * GroupNorm(x) + b_s) (GroupNorm with one channel per group),
then the halves are concatenated, the groups put back together and the channels shuffled (2 groups) so
information flows between the sub-features. Gate weights start at 0 and biases at 1, as in SA-Net.
"""

from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal channel groups (ShuffleNet)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleAttention(nn.Module):
    """SA-Net shuffle attention.

    Args:
        channels: Input and output channels; must be divisible by ``2 * groups``.
        groups: Number of sub-feature groups (64 in CTAN).
    """

    def __init__(self, channels: int, groups: int = 64) -> None:
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(f"ShuffleAttention: channels ({channels}) must be divisible by 2 * groups ({2 * groups})")
        self.groups = groups
        half = channels // (2 * groups)
        self.channel_weight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.channel_bias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.spatial_weight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.spatial_bias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.norm = nn.GroupNorm(half, half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b * self.groups, c // self.groups, h, w)
        xc, xs = x.chunk(2, dim=1)
        xc = xc * torch.sigmoid(self.channel_weight * xc.mean(dim=(2, 3), keepdim=True) + self.channel_bias)
        xs = xs * torch.sigmoid(self.spatial_weight * self.norm(xs) + self.spatial_bias)
        out = torch.cat([xc, xs], dim=1).reshape(b, c, h, w)
        return channel_shuffle(out, 2)
