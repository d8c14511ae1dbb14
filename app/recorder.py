"""Recording: the annotated video as MP4 plus one CSV row per face per frame (the ``fer-run`` format).

Used by the worker thread (the UI thread never writes frames)::

    rec = Recorder("out/session1", fps=30, labels=pipeline.labels)   # out/session1.mp4 + .csv
    rec.write(annotated_bgr, result, frame_index, time_ms)
    rec.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_core.records import FaceRecordWriter


class RecorderError(RuntimeError):
    """The video file cannot be written; the message names it."""


class Recorder:
    """Writes ``<base>.mp4`` (annotated frames) and ``<base>.csv`` (per-face probabilities).

    Args:
        base_path: output path without suffix (a ``.mp4`` / ``.csv`` suffix is replaced).
        fps: frame rate written into the video.
        labels: class names in the model's output order (``Pipeline.labels``).
    """

    def __init__(self, base_path: str | Path, fps: float, labels: Sequence[str] | None = None) -> None:
        base = Path(base_path)
        if base.suffix.lower() in (".mp4", ".csv"):
            base = base.with_suffix("")
        self.video_path = base.with_name(base.name + ".mp4")
        self.csv_path = base.with_name(base.name + ".csv")
        self.fps = float(fps)
        self.frames = 0
        self.frame_size: tuple[int, int] | None = None
        self._video: cv2.VideoWriter | None = None
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        self._records = FaceRecordWriter(self.csv_path, list(labels) if labels else None)

    def _open_video(self, width: int, height: int) -> None:
        self.frame_size = (width, height)
        self._video = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                      (width, height))
        if not self._video.isOpened():
            self._video = None
            raise RecorderError(f"cannot write video {self.video_path} (no MP4 encoder or folder not writable)")

    def write(self, frame_bgr: np.ndarray, result: Any, frame_index: int, time_ms: float) -> None:
        """Append one annotated frame and its faces (frames of another size are resized to the first's)."""
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        h, w = frame_bgr.shape[:2]
        if self._video is None:
            self._open_video(w, h)
        if (w, h) != self.frame_size:
            frame_bgr = cv2.resize(frame_bgr, self.frame_size, interpolation=cv2.INTER_AREA)
        self._video.write(np.ascontiguousarray(frame_bgr[:, :, :3]))
        self._records.write(frame_index, time_ms, result.faces)
        self.frames += 1

    def close(self) -> None:
        """Finish both files."""
        if self._video is not None:
            self._video.release()
            self._video = None
        self._records.close()
