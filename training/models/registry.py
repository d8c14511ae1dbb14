"""The model names ``fer-train --model`` accepts: each factory function registers itself where it is defined
(as timm's ``@register_model``), so a new size is one function in its model file."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: make ``fn`` available to ``create_model`` under its function name."""
    if fn.__name__ in MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    MODELS[fn.__name__] = fn
    return fn
