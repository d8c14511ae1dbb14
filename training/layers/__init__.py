"""Building blocks for the FER models: one small layer per file."""

from training.layers.attention_reg import AttentionRegularizer, attention_variance
from training.layers.efficient_attention import EfficientAttention
from training.layers.rfb import BasicRFB
from training.layers.shuffle_attention import ShuffleAttention, channel_shuffle
from training.layers.stn import SpatialTransformer

__all__ = [
    "AttentionRegularizer",
    "attention_variance",
    "BasicRFB",
    "EfficientAttention",
    "ShuffleAttention",
    "channel_shuffle",
    "SpatialTransformer",
]
