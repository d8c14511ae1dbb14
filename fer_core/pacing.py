"""Playing a video file at its own speed: wait until each frame's timestamp is due.

The app's live view, its screenshot mode and ``fer-run --show`` pace files this way; ``fer-run`` without a window
and ``fer-bench`` read as fast as they can. A player that falls behind (slow processing) restarts its clock at the
late frame instead of catching up in a burst.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    """Waits until file frames are due, by their timestamps.

    Args:
        stop: an event that ends a wait early (a stop request); ``None``: waits are never cut short.
        slack_s: how late a frame may be before the clock restarts at it.
    """

    def __init__(self, stop: threading.Event | None = None, slack_s: float = 0.25) -> None:
        self._stop = stop or threading.Event()
        self.slack_s = slack_s
        self._anchor: tuple[float, float] | None = None  # (wall clock, frame time in ms) of the clock's start

    def reset(self) -> None:
        """Start the clock again at the next frame (after a pause, a seek, another source)."""
        self._anchor = None

    def wait(self, t_ms: float) -> None:
        """Return when the frame at ``t_ms`` (ms into the video) is due."""
        now = time.perf_counter()
        if self._anchor is None:
            self._anchor = (now, t_ms)
            return
        due = self._anchor[0] + (t_ms - self._anchor[1]) / 1000.0
        if due < now - self.slack_s:  # behind: restart the clock here
            self._anchor = (now, t_ms)
            return
        while not self._stop.is_set() and (left := due - time.perf_counter()) > 0:
            self._stop.wait(min(left, 0.05))
