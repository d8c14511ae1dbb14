"""Progress bars of the training tools, drawn on a terminal only.

A tqdm bar redraws itself with carriage returns; a log file or a pipe keeps every redraw, so a long run would
write thousands of them. Where stderr is not a terminal the bars are off, and ``fer-train`` logs a status line
every ``--log-every`` seconds instead.
"""

from __future__ import annotations

import sys
from typing import Any


def on_terminal(progress: bool = True) -> bool:
    """``progress``, but False when stderr is not a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(progress) and callable(isatty) and bool(isatty())


def progress_bar(total: int, desc: str, enabled: bool, **kwargs: Any):
    """A tqdm bar over ``total`` items, shown when ``enabled`` and stderr is a terminal; cleared when done.

    Args:
        total: number of items.
        desc: label.
        enabled: the caller's progress setting.
        **kwargs: more tqdm options (``unit``, ``initial``, ``mininterval``, ...).
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, disable=not on_terminal(enabled), **kwargs)
