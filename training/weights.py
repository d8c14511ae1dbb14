"""Model weights anyone can fine-tune: fp16 safetensors files that describe themselves, and ``fer-train --init``.

A weights file (``<model>.safetensors``, beside every ONNX file ``fer-export`` writes, and shipped for the models
in ``models/``) holds the state dict in float16 and, in the safetensors metadata, the model's
:class:`fer_core.model_meta.ModelMeta` (``fer.meta``, one JSON value) and its ``create_model`` options
(``fer.model_kwargs``). :func:`load_weights` reads it back as a checkpoint-like dict (float32 tensors), so
:func:`training.checkpoint.build_model_from_checkpoint` builds the model from it.

``fer-train --init NAME_OR_PATH`` (:func:`init_model`) starts a run from such weights: a shipped model's name
(``fer_realtime``), a ``.safetensors`` file, a fer-train checkpoint or a GPU window's ``weights_fp16.pt`` /
``weights_int8.pt``.
Classes are matched by name (synonyms count, :func:`fer_core.labels.match_classes`): the classifier rows of the
matched classes are copied, new classes start fresh. :func:`init_settings` gives the settings such a run takes
unless the user sets them (the source's architecture, input size and normalisation; a fine-tuning schedule).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_core.labels import match_classes
from fer_core.model_meta import ModelMeta
from fer_core.suggest import did_you_mean
from training.checkpoint import CheckpointError, select_weights

log = logging.getLogger(__name__)

META_KEY = "fer.meta"
KWARGS_KEY = "fer.model_kwargs"
#: Settings a ``--init`` run takes unless the user (command line or YAML) sets them: a gentle schedule for
#: small datasets (a tenth of the scratch peak learning rate, half an epoch of warmup, 10 epochs).
FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 3e-4, "warmup_epochs": 0.5, "epochs": 10}


class WeightsError(CheckpointError):
    """A weights file or ``--init`` source that is missing, unreadable or does not fit the model."""


def _models_dir() -> Path:
    from fer_core.model_zoo import MODELS_DIR

    return MODELS_DIR


def shipped_weights() -> dict[str, Path]:
    """Name -> ``.safetensors`` file of the models shipped in ``models/`` (e.g. ``fer_realtime``)."""
    folder = _models_dir()
    return {p.stem: p for p in sorted(folder.glob("*.safetensors"))} if folder.is_dir() else {}


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: ModelMeta,
                 model_kwargs: dict[str, Any] | None = None) -> Path:
    """Write ``state`` as float16 safetensors with ``meta`` and the model options in the metadata.

    Integer tensors (BatchNorm counters) keep their type.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in state.items()}
    metadata = {META_KEY: json.dumps(meta.to_dict()), KWARGS_KEY: json.dumps(dict(model_kwargs or {}))}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # safetensors creates the file private; weights are as public as their folder
    tmp.replace(path)
    return path


def load_weights(path: str | Path) -> dict[str, Any]:
    """Read a file of :func:`save_weights` as a checkpoint-like dict: ``model`` (float32 state dict), ``meta``
    (ModelMeta fields) and ``config`` (``model``, ``model_kwargs``), as
    :func:`training.checkpoint.build_model_from_checkpoint` takes it.

    Raises:
        WeightsError: missing or unreadable file, no ``fer.meta`` in its metadata.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise WeightsError(f"cannot read weights {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if META_KEY not in metadata:
        raise WeightsError(f"{path} has no '{META_KEY}' metadata: not a fer weights file (for plain ConvNeXt "
                           "weights use --pretrained-path)")
    meta = json.loads(metadata[META_KEY])
    kwargs = json.loads(metadata.get(KWARGS_KEY) or "{}")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    return {"model": state, "ema": None, "best_weights": "raw", "meta": meta,
            "config": {"model": meta.get("model"), "model_kwargs": kwargs}}


def weights_from_checkpoint(ckpt: dict[str, Any], weights: str = "best") -> dict[str, Any]:
    """The checkpoint-like dict of :func:`load_weights` for a fer-train checkpoint (or a window's
    ``weights_fp16.pt``): its best weights in float32, its meta and model options."""
    state, _ = select_weights(ckpt, weights)
    config = ckpt.get("config") or {}
    return {"model": {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}, "ema": None,
            "best_weights": "raw", "meta": dict(ckpt["meta"]),
            "config": {"model": ckpt["meta"].get("model") or config.get("model"),
                       "model_kwargs": dict(config.get("model_kwargs") or {})}}


def save_beside(onnx_path: str | Path, model: nn.Module, meta: ModelMeta,
                model_kwargs: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights as ``<onnx_path without .onnx>.safetensors``; returns that path."""
    return save_weights(Path(onnx_path).with_suffix(".safetensors"), model.state_dict(), meta, model_kwargs)


def resolve_source(source: str | Path) -> Path:
    """The file an ``--init`` value names: a shipped model's name, or a path.

    Raises:
        WeightsError: neither an existing file nor a shipped name (with a "did you mean").
    """
    path = Path(source).expanduser()
    if path.is_file():
        return path
    shipped = shipped_weights()
    name = Path(str(source)).stem if str(source).endswith((".onnx", ".safetensors")) else str(source)
    if name in shipped and path.parent == Path("."):
        return shipped[name]
    if str(source).endswith(".onnx"):
        raise WeightsError(f"--init takes weights, not an ONNX file: {source} (shipped weights: "
                           f"{', '.join(shipped) or 'none'}; `python -m training.onnx_weights` rebuilds them)")
    hint = did_you_mean(str(source), shipped, n=1, cutoff=0.5)
    raise WeightsError(f"--init {source}: no such file or shipped model.{hint} Shipped: "
                       f"{', '.join(shipped) or 'none'}; or give a .safetensors file, a fer-train checkpoint (.pt) "
                       "or a window's weights_fp16.pt")


def read_source(source: str | Path) -> dict[str, Any]:
    """Load any ``--init`` source as the checkpoint-like dict of :func:`load_weights`.

    Raises:
        WeightsError: unknown name, missing or unreadable file.
    """
    path = resolve_source(source)
    if path.suffix == ".safetensors":
        return load_weights(path)
    from training.bundle import load_travel_weights  # a fer-train checkpoint or a window's float16/int8 weights

    try:
        return weights_from_checkpoint(load_travel_weights(path))
    except CheckpointError as exc:
        raise WeightsError(f"--init: {exc}") from None


def init_settings(source: str | Path) -> dict[str, Any]:
    """Settings of a run started from ``source`` unless set otherwise: the source's model, input size and
    normalisation, and :data:`FINETUNE_DEFAULTS`."""
    meta = ModelMeta.from_dict(read_source(source)["meta"])
    settings = dict(FINETUNE_DEFAULTS, model=meta.model, mean=meta.mean, std=meta.std)
    if meta.input_size:
        settings["img_size"] = meta.input_size
    return settings


def _classifier_prefix(model: nn.Module) -> str:
    fc = model.get_classifier()
    return next(name for name, module in model.named_modules() if module is fc) + "."


def init_model(model: nn.Module, source: str | Path, classes: list[str] | tuple[str, ...]) -> str:
    """Load ``source``'s weights into ``model`` (built for ``classes``), matching classifier rows by class name.

    Returns (and logs) one line such as ``init from fer_realtime: 6 of 7 classes mapped (angry, ...), new:
    contempt; dropped: neutral``.

    Raises:
        WeightsError: the source is unreadable or holds another architecture.
    """
    src = read_source(source)
    meta = ModelMeta.from_dict(src["meta"])
    state, own = src["model"], model.state_dict()
    head = _classifier_prefix(model)
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and not k.startswith(head) and v.shape != own[k].shape]
    missing = [k for k in own if k not in state and not k.startswith(head)]
    if wrong or missing:
        detail = "; ".join(wrong[:2] or missing[:3])
        raise WeightsError(f"--init {source} holds {meta.model} weights, which do not fit this model "
                           f"({len(wrong)} of another shape, {len(missing)} missing: {detail}); drop --model to "
                           f"train a {meta.model}")
    mapping = match_classes(meta.labels, classes)
    merged = {k: v for k, v in state.items() if k in own and not k.startswith(head)}
    for key in (head + "weight", head + "bias"):
        rows = own[key].clone()
        for i, j in enumerate(mapping):
            if j is not None:
                rows[i] = state[key][j]
        merged[key] = rows
    model.load_state_dict(merged, strict=False)
    pairs = [name if meta.labels[j] == name else f"{name}<-{meta.labels[j]}"
             for name, j in zip(classes, mapping) if j is not None]
    new = [name for name, j in zip(classes, mapping) if j is None]
    dropped = [name for j, name in enumerate(meta.labels) if j not in mapping]
    label = str(source) if Path(str(source)).parent == Path(".") and not Path(str(source)).suffix else Path(source).name
    line = (f"init from {label}: {len(pairs)} of {len(classes)} classes mapped ({', '.join(pairs) or 'none'}), "
            f"new: {', '.join(new) or 'none'}; dropped: {', '.join(dropped) or 'none'}")
    log.info(line)
    return line
