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

import numpy as np

from fer_core.records import FaceRecordWriter
from fer_core.video_writer import VideoWriter, VideoWriteError

__all__ = ["Recorder", "VideoWriteError"]


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
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        self._video = VideoWriter(self.video_path, self.fps)
        self._records = FaceRecordWriter(self.csv_path, list(labels) if labels else None)

    @property
    def frames(self) -> int:
        return self._video.frames

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return self._video.size

    def write(self, frame_bgr: np.ndarray, result: Any, frame_index: int, time_ms: float) -> None:
        """Append one annotated frame and its faces (frames of another size are resized to the first's).

        Raises:
            VideoWriteError: the video cannot be written.
        """
        self._video.write(frame_bgr)
        self._records.write(frame_index, time_ms, result.faces)

    def close(self) -> None:
        """Finish both files."""
        self._video.close()
        self._records.close()
