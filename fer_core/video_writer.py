"""Writing annotated frames to a video file: the one place ``fer-run --out`` and the app's recorder open a writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_core.errors import FerError

#: Video suffixes and the OpenCV codec written for each.
VIDEO_SUFFIXES = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class VideoWriteError(FerError, RuntimeError):
    """The video file cannot be written (no encoder for it, or a folder that is not writable)."""


class VideoWriter:
    """A video file opened at the first frame, whose size all later frames are resized to.

    Args:
        path: the file; its suffix picks the codec (:data:`VIDEO_SUFFIXES`, ``mp4v`` otherwise).
        fps: frame rate written into the file.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR (or grey) frame."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = frame.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES.get(self.path.suffix.lower(), "mp4v"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise VideoWriteError(f"cannot write video {self.path} (no encoder for it, or the folder is not "
                                      "writable)")
            self.size = (w, h)
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(frame[:, :, :3]))
        self.frames += 1

    def close(self) -> None:
        """Finish the file (a playable video with every frame written)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
