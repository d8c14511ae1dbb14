"""CTAN: ConvNeXt-Tiny with attention for facial expression recognition.

ConvNeXt-Tiny (timm's ``ConvNeXt``, drop path 0.3) with
- an optional Basic RFB block after the stem (``use_rfb``, off by default),
- after stage 4: an Efficient Attention block (global channel-weight branch + local depthwise/Swish branch,
  concatenated, 1x1 conv back to the stage-4 width) and a Shuffle Attention block (SA-Net, 64 groups),
- head: global average pool, LayerNorm, FC (timm's ConvNeXt head).

The paper trains with cross-entropy weighted by N / n_c normalised to sum 1 (``training.losses.class_weights``),
hence ``default_train_cfg = {"class_weighted": True, "ema": True}`` (weight EMA is our default, not the paper's).
The exact layer-level design of the two attention blocks is our reading of the paper's description; see their
files in ``training/layers``.
"""

from __future__ import annotations

import torch
from timm.models.convnext import ConvNeXt
from torch import nn

from training.layers.efficient_attention import EfficientAttention
from training.layers.rfb import BasicRFB
from training.layers.shuffle_attention import ShuffleAttention
from training.models.convnext_sizes import CONVNEXT_SIZES
from training.models.registry import register_model


class CTAN(ConvNeXt):
    """CTAN on timm's ConvNeXt.

    Args:
        depths: Blocks per stage.
        dims: Channels per stage.
        num_classes: Number of output classes.
        drop_path_rate: Stochastic depth rate (0.3 in CTAN).
        use_rfb: Put a Basic RFB block after the stem.
        sa_groups: Shuffle Attention groups (``dims[-1]`` must be divisible by ``2 * sa_groups``).
        convnext_size: ConvNeXt size name (picks the weights for ``pretrained=True``), None if none.
        **kwargs: Passed to timm's ``ConvNeXt`` (``drop_rate``, ``ls_init_value``, ``in_chans`` ...).
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        num_classes: int = 7,
        drop_path_rate: float = 0.3,
        use_rfb: bool = False,
        sa_groups: int = 64,
        convnext_size: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(depths=depths, dims=dims, num_classes=num_classes, drop_path_rate=drop_path_rate, **kwargs)
        self.convnext_size = convnext_size
        self.default_train_cfg = {"class_weighted": True, "ema": True}
        self.rfb = BasicRFB(dims[0], dims[0]) if use_rfb else nn.Identity()
        self.efficient_attn = EfficientAttention(self.num_features)
        self.shuffle_attn = ShuffleAttention(self.num_features, groups=sa_groups)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images -> (B, C, H/32, W/32) attended features."""
        x = self.stem(x)
        x = self.rfb(x)
        x = self.stages(x)
        x = self.efficient_attn(x)
        x = self.shuffle_attn(x)
        return self.norm_pre(x)

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, num_classes), or (logits, 0) when ``return_aux`` (CTAN has no auxiliary loss)."""
        logits = self.forward_head(self.forward_features(x))
        if not return_aux:
            return logits
        return logits, logits.new_zeros(())


@register_model
def ctan_tiny(num_classes: int = 7, **kwargs) -> CTAN:
    """CTAN on ConvNeXt-Tiny (dims 96..768, depths 3,3,9,3), Shuffle Attention with 64 groups."""
    return CTAN(num_classes=num_classes, convnext_size="tiny", **dict(CONVNEXT_SIZES["tiny"], **kwargs))


@register_model
def ctan_test(num_classes: int = 7, **kwargs) -> CTAN:
    """Tiny CTAN for tests (dims 8..64, one block per stage, Shuffle Attention with 4 groups)."""
    kwargs.setdefault("sa_groups", 4)
    return CTAN(num_classes=num_classes, convnext_size="test", **dict(CONVNEXT_SIZES["test"], **kwargs))
