"""What the UI thread hands the worker thread: :class:`WorkerSettings` and the locked :class:`Inbox` they travel in.

The window changes settings, asks for a recording and acknowledges shown frames from its own thread; the worker
reads a snapshot once per loop. Everything goes through one lock, and :attr:`Inbox.wake` ends the worker's wait.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

from fer_core.settings import PipelineSettings


@dataclass
class WorkerSettings:
    """What the user can change while the worker runs.

    Attributes:
        model_path: ONNX classifier; ``None`` = the shipped default model.
        provider: execution provider request (``auto``, ``cpu``, ``cuda``, ...).
        face_model: MediaPipe face-detector model; ``None`` = found by ``fer_core``.
        pipeline: the processing settings (detection threshold, smoothing, small faces, upright faces, unsure
            threshold, quality); the model file decides its own preprocessing.
        paused: hold the current frame (settings changes still re-process it).
        selected_track: the face shown in the side panel; ``None`` = the largest face.
        pace_video: play video files at their own frame rate instead of as fast as possible.
        burn_fps: draw the frame rate and latency into the picture (and so into snapshots and recordings).
    """

    model_path: str | None = None
    provider: str = "auto"
    face_model: str | None = None
    pipeline: PipelineSettings = PipelineSettings()
    paused: bool = False
    selected_track: int | None = None
    pace_video: bool = True
    burn_fps: bool = False

    def processing_key(self) -> tuple:
        """The settings that change a result (a held frame is re-processed when they change)."""
        return (self.model_path, self.provider, self.pipeline)


class Inbox:
    """The settings (with a version that counts changes), a recording request and the frames in flight.

    Args:
        settings: the initial settings (copied).
        max_in_flight: send a frame only while fewer than this many are unacknowledged; ``None``: send every one.
    """

    def __init__(self, settings: WorkerSettings | None, max_in_flight: int | None) -> None:
        self._lock = threading.Lock()
        self._settings = dataclasses.replace(settings or WorkerSettings())
        self._version = 0
        self._request: tuple[str, str | None] | None = None
        self._in_flight = 0
        self.max_in_flight = max_in_flight
        self.wake = threading.Event()

    def settings(self) -> WorkerSettings:
        """A copy of the current settings."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[WorkerSettings, int]:
        """(a copy of the settings, their version)."""
        with self._lock:
            return dataclasses.replace(self._settings), self._version

    def update(self, **changes: Any) -> None:
        """Change settings (names of :class:`WorkerSettings` fields)."""
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            self._version += 1
        self.wake.set()

    def request(self, action: str, base: str | None = None) -> None:
        """Ask for ``("start", base)`` or ``("stop", None)`` of a recording (the latest request wins)."""
        with self._lock:
            self._request = (action, base)
        self.wake.set()

    def take_request(self) -> tuple[str, str | None] | None:
        """The pending recording request, if any (it is then gone)."""
        with self._lock:
            request, self._request = self._request, None
            return request

    def shown(self) -> None:
        """One frame sent was shown."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def ui_has_room(self) -> bool:
        """Whether a new frame may be sent now (fewer than ``max_in_flight`` unacknowledged)."""
        with self._lock:
            return self.max_in_flight is None or self._in_flight < self.max_in_flight

    def sent(self) -> None:
        """One frame was sent."""
        with self._lock:
            self._in_flight += 1
