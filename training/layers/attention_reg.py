"""EmoNeXt's self-attention regulariser on the pooled feature vectors of a batch.

Q and K are linear maps of the (LayerNorm-ed) pooled features; the attention matrix is
softmax(Q K^T / sqrt(d)) over the samples of the batch, shape (B, B); the regulariser is the mean squared
deviation of the attention weights from their mean. It is only a loss term: the attended values are not used
for the prediction (EmoNeXt's code computes a value projection and a residual output and then discards them,
so they are left out here).
"""

from __future__ import annotations

import torch
from torch import nn


def attention_variance(weights: torch.Tensor) -> torch.Tensor:
    """Mean squared deviation of attention weights from their mean (a scalar)."""
    return ((weights - weights.mean()) ** 2).mean()


class AttentionRegularizer(nn.Module):
    """Self-attention over the batch's pooled features, returning the regulariser.

    Args:
        dim: Feature size d.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.scale = dim ** -0.5

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) features -> (B, B) attention weights (rows sum to 1)."""
        x = self.norm(x)
        scores = (self.query(x) @ self.key(x).transpose(-2, -1)) * self.scale
        return scores.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) features -> scalar regulariser (0 for a batch of one)."""
        return attention_variance(self.attention(x))
