"""Probabilities from logits: the one softmax that the inference core, training and the tests share."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax of ``logits`` along ``axis`` (the class axis, last by default), in the input's float dtype.

    The maximum is subtracted first, so large logits do not overflow.
    """
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
