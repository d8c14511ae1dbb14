"""Checkpoints: plain dicts written atomically, read with ``weights_only=True``.

Layout (``torch.save``)::

    {"model": state_dict, "ema": state_dict | None, "optimizer", "scheduler", "scaler",
     "epoch": completed epochs, "step_in_epoch": finished steps of the next epoch (Ctrl-C mid-epoch),
     "epoch_progress": partial train-loss sums of that epoch,
     "best_acc": best validation accuracy so far, "best_weights": "raw" | "ema" (which weights reached it),
     "rng": per-rank RNG states (tensors/ints/lists only), "config": TrainConfig as a dict,
     "meta": ModelMeta fields (labels, input_size, mean, std, gray, equalize, native_size, model, data,
     test_accuracy)}
"""

from __future__ import annotations

import logging
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

WEIGHT_CHOICES = ("best", "ema", "raw")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or lacks what is asked of it."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, unreadable or not a training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint (the file is damaged, "
                              "truncated or of another kind)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise CheckpointError(f"{path} is not a fer-train checkpoint (no 'model'/'meta' entries)")
    return ckpt


def select_weights(ckpt: dict[str, Any], weights: str = "best") -> tuple[dict[str, torch.Tensor], str]:
    """Pick a state dict from a checkpoint.

    Args:
        weights: "raw", "ema", or "best" (the ones that reached the best validation accuracy, recorded in
            ``ckpt["best_weights"]``; EMA when unrecorded). "ema" falls back to raw weights when the run kept no EMA.

    Returns:
        (state_dict, which) with which = "raw" | "ema".
    """
    if weights not in WEIGHT_CHOICES:
        raise CheckpointError(f"weights must be one of {', '.join(WEIGHT_CHOICES)}, got '{weights}'")
    if weights == "best":
        weights = ckpt.get("best_weights") or "ema"
    if weights == "ema" and ckpt.get("ema") is None:
        log.info("checkpoint has no EMA weights; using the raw weights")
        weights = "raw"
    return ckpt[weights if weights == "ema" else "model"], weights


def build_model_from_checkpoint(ckpt: dict[str, Any], weights: str = "best") -> nn.Module:
    """Rebuild the network stored in a checkpoint and load its weights; returned in eval mode on the CPU, with
    ``model.weights_used`` saying which weights ("raw" or "ema") were loaded.

    Args:
        ckpt: dict from :func:`load_checkpoint`.
        weights: "best" (default), "ema" or "raw"; see :func:`select_weights`.
    """
    from training.models import create_model

    cfg = ckpt.get("config", {})
    meta = ckpt["meta"]
    name = meta.get("model") or cfg.get("model")
    model = create_model(name, num_classes=len(meta["labels"]), **dict(cfg.get("model_kwargs") or {}))
    state, which = select_weights(ckpt, weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit model '{name}': {str(exc).splitlines()[0]}") from None
    model.weights_used = which
    return model.eval()


def _np_state() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def _set_np_state(state: list) -> None:
    kind, keys, pos, has_gauss, gauss = state
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Capture python, numpy, torch (CPU + CUDA) and the named generators' states as tensors/ints/lists."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": _np_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only when the device count matches)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    _set_np_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    for name, gen in (generators or {}).items():
        if name in state.get("generators", {}):
            gen.set_state(state["generators"][name])
