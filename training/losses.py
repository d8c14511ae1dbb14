"""Losses: class weights (CTAN), cross-entropy with hard or soft targets, knowledge distillation."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


def class_weights(counts: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """CTAN's class weights: N / n_c, normalised to sum 1 (N = total count, n_c = count of class c).

    A class with no samples gets weight 0 (it never occurs as a target) and a warning.

    Args:
        counts: Samples per class, in class order.

    Returns:
        float32 tensor of shape (C,).
    """
    n = torch.as_tensor(np.asarray(counts, dtype=np.float64))
    if n.ndim != 1 or n.numel() == 0 or bool((n < 0).any()) or float(n.sum()) <= 0:
        raise ValueError(f"class_weights: counts must be a non-empty list of non-negative numbers, got {counts!r}")
    if bool((n == 0).any()):
        empty = (n == 0).nonzero().flatten().tolist()
        logger.warning("class_weights: classes %s have no samples; they get weight 0", empty)
    raw = torch.where(n > 0, n.sum() / n.clamp(min=1), torch.zeros_like(n))
    return (raw / raw.sum()).float()


class FerLoss(nn.Module):
    """Cross-entropy with optional class weights and label smoothing, for hard or soft targets.

    Hard targets (int64 (B,)) use ``F.cross_entropy``. Soft targets (float (B, C) distributions, e.g. FER+ votes
    or mixup) are smoothed the same way (t * (1 - eps) + eps / C) and weighted per class; the sum is divided by
    the summed target weight, so a one-hot soft target gives exactly the hard-target loss.

    Args:
        weight: Per-class weights (C,), or None.
        label_smoothing: Smoothing eps in [0, 1).
    """

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        weight = None if self.weight is None else self.weight.float()
        if not target.is_floating_point():
            return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)
        if target.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}")
        target = target.float()
        w = torch.ones(logits.shape[1], device=logits.device) if weight is None else weight
        smoothed = target * (1.0 - self.label_smoothing) + self.label_smoothing / logits.shape[1]
        loss = -(smoothed * w * F.log_softmax(logits, dim=1)).sum()
        return loss / (target * w).sum().clamp(min=1e-12)


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """Hinton et al.'s distillation term: KL(teacher || student) at ``temperature``, times temperature^2.

    The teacher logits are detached (only the student learns from this term). Averaged over the batch.
    """
    t = float(temperature)
    student = F.log_softmax(student_logits.float() / t, dim=1)
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * (t * t)
