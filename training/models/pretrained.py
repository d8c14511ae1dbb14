"""Load timm ImageNet ConvNeXt weights into an EmoNeXt/CTAN model (whose backbone keeps timm's key names).

Only tensors whose name and shape match are copied (``load_state_dict(strict=False)``); the new modules
(STN, SE, attention blocks) and the classifier keep their initialisation. Missing, unexpected and skipped
keys are logged. A file whose backbone tensors do not fit (another ConvNeXt size) is an error.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import torch
from torch import nn

from training.models.convnext_sizes import PRETRAINED_WEIGHTS

logger = logging.getLogger(__name__)

HUB_URL = "https://huggingface.co/timm/{name}"
_HEAD_FC = ("head.fc.",)


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be downloaded, read or matched to the model."""


def _backbone_key(key: str) -> bool:
    return key.startswith(("stem.", "stages."))


def load_convnext_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> dict:
    """Copy the matching tensors of a timm ConvNeXt state dict into ``model``.

    Args:
        model: EmoNeXt or CTAN model.
        state_dict: timm-format ConvNeXt weights (``stem.*``, ``stages.*``, ``head.norm.*``, ...).
        source: Where the weights come from (for messages).

    Returns:
        dict(loaded, missing, unexpected, skipped) lists of key names.

    Raises:
        PretrainedWeightsError: no backbone tensor matched, or backbone tensors have other shapes.
    """
    own = model.state_dict()
    usable, skipped, wrong_shape = {}, [], []
    for key, value in state_dict.items():
        if key in own and own[key].shape != value.shape:
            skipped.append(key)
            if not key.startswith(_HEAD_FC):
                wrong_shape.append(f"{key} {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        elif key in own:
            usable[key] = value
    if wrong_shape:
        raise PretrainedWeightsError(
            f"{source}: {len(wrong_shape)} weights have the wrong shape for this model (weights for another "
            f"ConvNeXt size?), e.g. {'; '.join(wrong_shape[:3])}")
    if not any(_backbone_key(k) for k in usable):
        raise PretrainedWeightsError(f"{source}: no ConvNeXt backbone weights (stem.*, stages.*) found for this model")
    result = model.load_state_dict(usable, strict=False)
    unexpected = [k for k in state_dict if k not in own]
    missing_backbone = [k for k in result.missing_keys if _backbone_key(k) and ".downsample.2." not in k]
    logger.info("loaded %d tensors from %s", len(usable), source)
    if result.missing_keys:
        logger.info("kept initialisation for %d tensors: %s", len(result.missing_keys), _short(result.missing_keys))
    if unexpected:
        logger.info("ignored %d tensors not in the model: %s", len(unexpected), _short(unexpected))
    if skipped:
        logger.info("skipped %d tensors of another shape (classifier): %s", len(skipped), _short(skipped))
    if missing_backbone:
        logger.warning("%s lacks %d backbone tensors: %s", source, len(missing_backbone), _short(missing_backbone))
    return dict(loaded=list(usable), missing=list(result.missing_keys), unexpected=unexpected, skipped=skipped)


def _short(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n})" if len(keys) > n else "")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a .pth/.pt/.bin (torch, loaded with weights_only) or .safetensors file of ConvNeXt weights.

    Unwraps checkpoint dicts (``model``/``state_dict``/``model_ema`` entries; from a fer-train checkpoint
    the weights it marked best, EMA or raw).
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        elif not zipfile.is_zipfile(path):
            raise ValueError("not a PyTorch weights file (damaged, truncated or of another kind)")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise PretrainedWeightsError(f"cannot read pretrained weights {path}: {exc}") from exc
    if isinstance(data, dict) and data.get("best_weights") == "ema" and isinstance(data.get("ema"), dict):
        data = data["ema"]  # a fer-train checkpoint whose EMA weights were the better ones
    for wrapper in ("model", "state_dict", "model_ema"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise PretrainedWeightsError(f"{path} does not hold a state dict of tensors")
    return data


def _from_facebook_keys(state_dict: dict[str, torch.Tensor], model: nn.Module, path: Path) -> dict:
    """Rename original facebookresearch ConvNeXt keys (``downsample_layers.*``) to timm's."""
    if "downsample_layers.0.0.weight" not in state_dict:
        return state_dict
    from timm.models.convnext import checkpoint_filter_fn

    try:
        return checkpoint_filter_fn(state_dict, model)
    except (KeyError, RuntimeError) as exc:
        raise PretrainedWeightsError(f"{path}: cannot convert facebookresearch ConvNeXt keys: {exc}") from exc


def load_pretrained_file(model: nn.Module, path: str | Path) -> dict:
    """Load a local timm (or facebookresearch) ConvNeXt weights file into ``model``; see ``load_convnext_weights``."""
    state_dict = _from_facebook_keys(read_state_dict(path), model, Path(path))
    return load_convnext_weights(model, state_dict, str(path))


def load_pretrained_hub(model: nn.Module, size: str | None) -> dict:
    """Download timm's ImageNet ConvNeXt weights for ``size`` (see ``PRETRAINED_WEIGHTS``) and load them."""
    name = PRETRAINED_WEIGHTS.get(size or "")
    if name is None:
        raise PretrainedWeightsError(
            f"no ImageNet weights for ConvNeXt size {size!r}; sizes with weights: {', '.join(PRETRAINED_WEIGHTS)}")
    import timm

    try:
        source = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - network/cache errors come in many types
        url = HUB_URL.format(name=name)
        raise PretrainedWeightsError(
            f"could not get the ImageNet weights {name!r} from the Hugging Face Hub ({url}): {exc}\n"
            f"Without internet: download model.safetensors from {url} on another machine (or run "
            f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` there and copy the "
            f"Hugging Face cache) and pass the file with --pretrained-path FILE.") from exc
    return load_convnext_weights(model, source.state_dict(), f"{name} ({HUB_URL.format(name=name)})")
