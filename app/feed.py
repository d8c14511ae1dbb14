"""Reading a source for the worker: the newest frame of a live one, the next of a file (paced), and the rates.

:class:`Feed` owns one opened source. A live source (camera, stream) is read by a :class:`LatestFrameGrabber`
thread that keeps only the newest frame; a file or photo folder is read one frame after the other, optionally
paced to its timestamps. Both rates come from :meth:`Feed.rates`: every processed frame is counted at the time
it was captured, over the same window as the captured ones, so the processed rate can never read above the
capture rate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.errors import FerError
from fer_core.pacing import Pacer
from fer_core.sources import open_source

log = logging.getLogger(__name__)

Item = tuple[int, float, np.ndarray]  # (frame index, time in ms, frame)


def describe_source(spec: str | int) -> str:
    """Human-readable name of a source spec."""
    if isinstance(spec, int):
        return f"camera {spec}"
    return Path(spec).name if "://" not in str(spec) else str(spec)


class FeedError(FerError):
    """A source that cannot be opened, in one line for the user."""


def open_feed(spec: str | int, stop_event: threading.Event) -> Feed:
    """Open a camera index, video, image, folder or URL (``fer_core.sources.open_source``) as a :class:`Feed`.

    Raises:
        FeedError: it cannot be opened (the message names it and, for a camera, what to do instead).
    """
    name = describe_source(spec)
    try:
        source = open_source(spec)
    except Exception as exc:  # SourceError, or anything unexpected: a message either way
        text = str(exc).rstrip(".")
        text = text[0].upper() + text[1:] if text.lower().startswith(name.lower()) else f"Cannot open {name}: {text}"
        hint = " Open a video or an image instead." if isinstance(spec, int) else ""
        raise FeedError(f"{text}.{hint}") from exc
    return Feed(source, stop_event, name, camera=isinstance(spec, int))


class RateMeter:
    """Events per second over a sliding window of wall-clock time (thread-safe)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        """Record one event (at ``now``; events come in time order)."""
        with self._lock:
            now = time.perf_counter() if now is None else now
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window; 0 with fewer than two events."""
        count, span, _ = self.window(now)
        return (count - 1) / span if count >= 2 and span > 0 else 0.0

    def window(self, now: float | None = None) -> tuple[int, float, float]:
        """(events in the window, seconds from the oldest of them to now, now); now is read under the lock."""
        with self._lock:
            now = time.perf_counter() if now is None else now
            self._trim(now)
            if not self._times:
                return 0, 0.0, now
            return len(self._times), max(now, self._times[-1]) - self._times[0], now

    def count(self, now: float) -> int:
        """Events in the window that ends at ``now``."""
        with self._lock:
            self._trim(now)
            return sum(1 for t in self._times if t <= now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


def frame_rates(captured: RateMeter, processed: RateMeter, now: float | None = None) -> tuple[float, float]:
    """(capture fps, processed fps) over one window and one time span.

    ``processed`` must be ticked with the capture times of the frames it counts: its events are then some of
    ``captured``'s, so it counts no more of them in the window and its rate is at most the capture rate.
    """
    n_captured, span, now = captured.window(now)
    if n_captured < 2 or span <= 0:
        return 0.0, 0.0
    return (n_captured - 1) / span, max(0, processed.count(now) - 1) / span


class LatestFrameGrabber(threading.Thread):
    """Reads a live source as fast as it delivers and keeps only the newest frame."""

    def __init__(self, source: Any) -> None:
        super().__init__(name="fer-frame-grabber", daemon=True)
        self._source = source
        self._cond = threading.Condition()
        self._latest: Item | None = None
        self._latest_at = 0.0
        self._fresh = False
        self._stop_event = threading.Event()
        self.meter = RateMeter()
        self.dropped = 0
        self.ended = False
        self.error: Exception | None = None
        self.taken_at = 0.0  # when the frame last taken was captured (perf_counter)

    def run(self) -> None:
        try:
            for item in self._source:
                if self._stop_event.is_set():
                    break
                now = time.perf_counter()
                with self._cond:
                    if self._fresh:
                        self.dropped += 1
                    self._latest, self._latest_at, self._fresh = item, now, True
                    self.meter.tick(now)
                    self._cond.notify_all()
        except Exception as exc:  # reported by the worker as a message
            self.error = exc
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def take(self, timeout: float) -> Item | None:
        """The newest frame not taken yet, waiting up to ``timeout`` seconds; ``None`` if none came."""
        with self._cond:
            if not self._fresh and not self.ended:
                self._cond.wait(timeout)
            if not self._fresh:
                return None
            self._fresh = False
            self.taken_at = self._latest_at
            return self._latest

    def stop(self) -> None:
        """Ask the thread to end after the frame being read."""
        self._stop_event.set()


class Feed:
    """One opened source for the worker: :meth:`next` frame, :meth:`processed` marks, :meth:`rates`, :meth:`close`.

    Args:
        source: an opened ``fer_core.sources`` source (``is_live``, iterable, ``close()``).
        stop_event: set when the worker is asked to stop (ends a pacing wait at once).
        name: the source in words (:func:`describe_source`).
        camera: the source is a camera (its end is "Camera lost").
    """

    def __init__(self, source: Any, stop_event: threading.Event, name: str = "the source",
                 camera: bool = False) -> None:
        self.source = source
        self.name, self.camera = name, camera
        self._stop_event = stop_event
        self.grabber: LatestFrameGrabber | None = None
        self._frames: Any = None
        self._captured = RateMeter()
        self._processed = RateMeter()
        self._taken_at = 0.0
        self._pacer = Pacer(stop_event)
        self.ended = False
        self.error: Exception | None = None
        if source.is_live:
            self.grabber = LatestFrameGrabber(source)
            self._captured = self.grabber.meter
            self.grabber.start()
        else:
            self._frames = iter(source)

    @property
    def is_live(self) -> bool:
        return bool(self.source.is_live)

    def opened_message(self) -> str:
        """``Opened clip.mp4 (640x360, 25 fps)`` (size and rate where the source says them)."""
        fps, size = getattr(self.source, "fps", None), getattr(self.source, "frame_size", None)
        details = ", ".join(x for x in (f"{size[0]}x{size[1]}" if size else "", f"{fps:.0f} fps" if fps else "")
                            if x)
        return f"Opened {self.name}" + (f" ({details})" if details else "")

    def end_message(self, frames_processed: int) -> tuple[bool, str]:
        """(is it an error, the words) for the end of the source."""
        exc = self.error or getattr(self.source, "error", None)  # a live source that stopped sets .error
        if exc:
            lost = "Camera lost" if self.camera else "Reading stopped"
            return True, f"{lost}: {exc}" if self.name in str(exc) else f"{lost}: {self.name}: {exc}"
        if self.is_live:
            return False, f"{self.name}: the stream stopped"
        n = frames_processed
        return False, f"End of {self.name} ({n} frame{'s' if n != 1 else ''} processed)"

    @property
    def dropped(self) -> int:
        """Frames a live source delivered that were never taken."""
        return self.grabber.dropped if self.grabber is not None else 0

    def next(self, pace: bool) -> Item | None:
        """The next frame to process; ``None`` when none came within 0.1 s or the source ended (:attr:`ended`,
        with :attr:`error` when reading failed). ``pace``: wait until a file frame's timestamp is due."""
        if self.grabber is not None:
            item = self.grabber.take(timeout=0.1)
            if item is None and self.grabber.ended:
                self.ended, self.error = True, self.grabber.error
            self._taken_at = self.grabber.taken_at
            return item
        try:
            item = next(self._frames)
        except StopIteration:
            self.ended = True
            return None
        except Exception as exc:
            self.ended, self.error = True, exc
            return None
        if pace:
            self._pacer.wait(item[1])
        self._taken_at = time.perf_counter()
        self._captured.tick(self._taken_at)
        return item

    def processed(self) -> None:
        """The frame last returned by :meth:`next` was processed."""
        self._processed.tick(self._taken_at)

    def rates(self) -> tuple[float, float]:
        """(capture fps, processed fps); the second is never above the first."""
        return frame_rates(self._captured, self._processed)

    def restart_rates(self) -> None:
        """Count from now on (after a pause); a live source's capture goes on counting in its thread."""
        if self.grabber is None:
            self._captured = RateMeter()
        self._processed = RateMeter()

    def hold(self) -> None:
        """Nothing is read for a while (paused): pacing starts again from the next frame."""
        self._pacer.reset()

    def stop(self) -> None:
        """Ask a grabber thread to end (any thread)."""
        if self.grabber is not None:
            self.grabber.stop()

    def close(self) -> None:
        """Stop the grabber and close the source (left open, with a log line, if the grabber does not let go of
        it within 3 s); never raises."""
        grabber, self.grabber = self.grabber, None
        if grabber is not None:
            grabber.stop()
            grabber.join(timeout=3.0)
            if grabber.is_alive():
                log.warning("the frame grabber did not stop within 3 s; leaving %s open", self.source)
                return
        self._frames = None
        try:
            self.source.close()
        except Exception:
            log.exception("closing the source failed")
