"""Model registry: ``create_model``, ``list_models``, ``model_info``.

Every model is a timm-style ConvNeXt (``forward_features`` / ``forward_head`` / ``forward(x, return_aux)``)
taking (B, 3, H, W) images at any H = W >= 32 and returning logits, or ``(logits, aux_loss)`` with
``return_aux=True`` (EmoNeXt's attention regulariser times ``reg_lambda``; zero for CTAN).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fer_core.suggest import did_you_mean
from training.models import ctan, emonext  # noqa: F401  (importing them registers their sizes)
from training.models.registry import MODELS  # filled by the @register_model factories of emonext.py and ctan.py
from training.models.pretrained import PretrainedWeightsError, load_pretrained_file, load_pretrained_hub

__all__ = ["create_model", "list_models", "model_info", "PretrainedWeightsError", "UnknownModelError"]

logger = logging.getLogger(__name__)

class UnknownModelError(ValueError):
    """A model name that is not registered."""


def list_models() -> list[str]:
    """Names accepted by ``create_model``."""
    return list(MODELS)


def _factory(name: str) -> Callable[..., nn.Module]:
    if name in MODELS:
        return MODELS[name]
    hint = did_you_mean(name, MODELS, n=3, cutoff=0.5)
    raise UnknownModelError(f"unknown model {name!r}.{hint} Valid names: {', '.join(MODELS)}")


def create_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    pretrained_path: str | Path | None = None,
    **kwargs,
) -> nn.Module:
    """Build a model by name.

    Args:
        name: One of ``list_models()``.
        num_classes: Number of output classes.
        pretrained: Load timm's ImageNet ConvNeXt weights for the model's size (needs internet or the
            Hugging Face cache).
        pretrained_path: Load ConvNeXt weights from a local .pth/.safetensors file instead.
        **kwargs: Model options (``drop_path_rate``, ``reg_lambda`` (EmoNeXt), ``use_rfb`` (CTAN), ...).

    Raises:
        UnknownModelError: unknown name (with "did you mean").
        PretrainedWeightsError: weights could not be downloaded, read or matched.
    """
    model = _factory(name)(num_classes=num_classes, **kwargs)
    if pretrained_path is not None:
        load_pretrained_file(model, pretrained_path)
    elif pretrained:
        load_pretrained_hub(model, getattr(model, "convnext_size", None))
    return model


def model_info(name: str, img_size: int = 224, num_classes: int = 7) -> dict:
    """Parameter count and compute of one forward pass of a single image.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no real compute): convolutions
    and matrix products, one multiply-add = 2 FLOPs. ``gflops`` is FLOPs / 1e9 (so twice the "GFLOPs" = GMACs
    that ConvNeXt/timm papers quote); ``gmacs`` = gflops / 2. Norms, activations and grid sampling are not counted.

    Returns:
        dict(params=int, gflops=float, gmacs=float).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _factory(name)(num_classes=num_classes).eval()
        x = torch.empty(1, 3, img_size, img_size)
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    flops = counter.get_total_flops()
    return dict(params=int(params), gflops=flops / 1e9, gmacs=flops / 2e9)
