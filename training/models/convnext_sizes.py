"""ConvNeXt sizes (timm's dims/depths) and the timm ImageNet weights used for each with ``pretrained=True``."""

from __future__ import annotations

CONVNEXT_SIZES: dict[str, dict] = {
    # timm's small "realtime" variants (1x1-conv MLP, as timm builds them, so their weights load)
    "atto": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), conv_mlp=True),
    "femto": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384), conv_mlp=True),
    "pico": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512), conv_mlp=True),
    "nano": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640), conv_mlp=True),
    # the ConvNeXt paper's sizes
    "tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "large": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "xlarge": dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
    # for tests only (no pretrained weights)
    "test": dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)),
}

# timm model names (architecture.tag on the Hugging Face Hub) loaded by ``pretrained=True``.
# ImageNet-22k weights for the paper sizes (as EmoNeXt's ``in_22k`` option); timm's own ImageNet weights for
# the small variants (nano: ImageNet-12k).
PRETRAINED_WEIGHTS: dict[str, str] = {
    "atto": "convnext_atto.d2_in1k",
    "femto": "convnext_femto.d1_in1k",
    "pico": "convnext_pico.d1_in1k",
    "nano": "convnext_nano.in12k",
    "tiny": "convnext_tiny.fb_in22k",
    "small": "convnext_small.fb_in22k",
    "base": "convnext_base.fb_in22k",
    "large": "convnext_large.fb_in22k",
    "xlarge": "convnext_xlarge.fb_in22k",
}
