"""EmoNeXt (El Boudouri & Bohi, MMSP 2023): ConvNeXt + Spatial Transformer + SE + self-attention regulariser.

Built on timm's ``ConvNeXt``, so the backbone keeps timm's module names and ImageNet weights load directly.

Where we follow EmoNeXt's published code (github.com/yelboudouri/EmoNeXt, ``models.py``/``train.py``):
- STN in front of the stem with the code's localisation net (Conv 3->8 k7, BN, MaxPool 2, ReLU, Conv 8->10 k5,
  BN, MaxPool 2, ReLU) and regressor (Linear->32->ReLU->Linear->6, last layer zero weights and identity bias),
  ``affine_grid``/``grid_sample`` with ``align_corners=True``.
- SE (reduction 16, no biases, ReLU, sigmoid) after the downsampling conv of stages 2, 3 and 4 (timm's
  ``SEModule``).
- Head: global average pool, LayerNorm, Linear (timm's ConvNeXt head, whose LayerNorm takes the ImageNet
  weights as the code's ``norm`` does).
- Regulariser: a LayerNorm, then Q and K linear maps of the pooled, normalised feature vectors; the attention
  is taken across the samples of the batch ((B, B) weights, as the code's matmul on (B, d) vectors does), so it
  is 0 for a batch of one and depends on the batch composition. Returned by ``forward(x, return_aux=True)``
  multiplied by ``reg_lambda`` (the code adds it with weight 1).
- Truncated-normal (std 0.02) init of the added layers; drop path 0.1; label smoothing 0.2 and weight EMA in
  training (``default_train_cfg``).

Where we differ from the code, and what the paper says:
- The code flattens the 10 x 52 x 52 localisation features (224 px inputs only); we average-pool them to
  ``stn_pool`` x ``stn_pool`` (8: a no-op at FER2013's 48 px), so any input size >= 32 px works.
- The code scales the attention scores by d^-1/4 (``1/sqrt(sqrt(d))``); we use the scaled dot product
  softmax(QK^T/sqrt(d)) of the paper's self-attention. The code's value projection and residual output are
  computed and thrown away; we omit them (no effect on the loss or the logits, and unused parameters upset DDP).
- The paper writes the loss as L_CE + lambda * L_SA; the code fixes lambda = 1, here it is ``reg_lambda``.
- The paper trains with EMA, mixed precision and ImageNet ConvNeXt weights (``fb_in1k``/``fb_in22k`` files in
  the code); ``pretrained=True`` loads timm's copies of the 22k ones.
- Sizes atto..nano (timm's small ConvNeXts, for real-time use) and ``test`` are ours.
"""

from __future__ import annotations

import torch
from timm.layers import SEModule
from timm.models.convnext import ConvNeXt
from torch import nn

from training.layers.attention_reg import AttentionRegularizer
from training.layers.stn import SpatialTransformer
from training.models.convnext_sizes import CONVNEXT_SIZES
from training.models.registry import register_model


def _init_added(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) weights and zero biases, as EmoNeXt initialises every conv/linear."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class EmoNeXt(ConvNeXt):
    """EmoNeXt on timm's ConvNeXt.

    Args:
        depths: Blocks per stage.
        dims: Channels per stage.
        num_classes: Number of output classes.
        drop_path_rate: Stochastic depth rate (EmoNeXt code: 0.1).
        reg_lambda: Weight of the attention regulariser in the returned aux loss.
        stn_pool: Side of the grid the STN's localisation features are pooled to.
        convnext_size: ConvNeXt size name (picks the weights for ``pretrained=True``), None if none.
        **kwargs: Passed to timm's ``ConvNeXt`` (``conv_mlp``, ``drop_rate``, ``ls_init_value``, ``in_chans`` ...).
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        num_classes: int = 7,
        drop_path_rate: float = 0.1,
        reg_lambda: float = 1.0,
        stn_pool: int = 8,
        convnext_size: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(depths=depths, dims=dims, num_classes=num_classes, drop_path_rate=drop_path_rate, **kwargs)
        self.convnext_size = convnext_size
        self.reg_lambda = reg_lambda
        self.default_train_cfg = {"label_smoothing": 0.2, "ema": True}
        self.stn = SpatialTransformer(self.in_chans, pool_size=stn_pool)
        for stage in self.stages[1:]:
            se = SEModule(stage.downsample[-1].out_channels, rd_ratio=1 / 16, rd_divisor=1, bias=False)
            _init_added(se)
            stage.downsample.append(se)
        self.attn_reg = AttentionRegularizer(self.num_features)
        _init_added(self.attn_reg)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images -> (B, C, H/32, W/32) features."""
        x = self.stn(x)
        x = self.stem(x)
        x = self.stages(x)
        return self.norm_pre(x)

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, num_classes), or (logits, reg_lambda * attention regulariser) when ``return_aux``."""
        pooled = self.forward_head(self.forward_features(x), pre_logits=True)
        logits = self.head.fc(pooled)
        if not return_aux:
            return logits
        return logits, self.reg_lambda * self.attn_reg(pooled)


def _emonext(size: str, num_classes: int, **kwargs) -> EmoNeXt:
    return EmoNeXt(num_classes=num_classes, convnext_size=size, **dict(CONVNEXT_SIZES[size], **kwargs))


@register_model
def emonext_atto(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt on ConvNeXt-Atto (dims 40..320, depths 2,2,6,2)."""
    return _emonext("atto", num_classes, **kwargs)


@register_model
def emonext_femto(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt on ConvNeXt-Femto (dims 48..384, depths 2,2,6,2)."""
    return _emonext("femto", num_classes, **kwargs)


@register_model
def emonext_pico(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt on ConvNeXt-Pico (dims 64..512, depths 2,2,6,2)."""
    return _emonext("pico", num_classes, **kwargs)


@register_model
def emonext_nano(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt on ConvNeXt-Nano (dims 80..640, depths 2,2,8,2)."""
    return _emonext("nano", num_classes, **kwargs)


@register_model
def emonext_tiny(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt-Tiny (ConvNeXt-T: dims 96..768, depths 3,3,9,3)."""
    return _emonext("tiny", num_classes, **kwargs)


@register_model
def emonext_small(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt-Small (ConvNeXt-S: dims 96..768, depths 3,3,27,3)."""
    return _emonext("small", num_classes, **kwargs)


@register_model
def emonext_base(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt-Base (ConvNeXt-B: dims 128..1024, depths 3,3,27,3)."""
    return _emonext("base", num_classes, **kwargs)


@register_model
def emonext_large(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt-Large (ConvNeXt-L: dims 192..1536, depths 3,3,27,3)."""
    return _emonext("large", num_classes, **kwargs)


@register_model
def emonext_xlarge(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """EmoNeXt-XLarge (ConvNeXt-XL: dims 256..2048, depths 3,3,27,3)."""
    return _emonext("xlarge", num_classes, **kwargs)


@register_model
def emonext_test(num_classes: int = 7, **kwargs) -> EmoNeXt:
    """Tiny EmoNeXt for tests (dims 8..64, one block per stage)."""
    return _emonext("test", num_classes, **kwargs)
