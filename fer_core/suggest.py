"""The "did you mean" hint of every error about an unknown name (model, setting, dataset kind, provider, emotion)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """``" Did you mean 'x'?"`` (or ``'x' or 'y'``) for the closest of ``choices``, ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
