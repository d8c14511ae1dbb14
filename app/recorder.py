"""Recording: the annotated video plus one CSV row per face per frame (the ``fer-run`` format).

The video is a fragmented H.264 MP4 (Matroska without PyAV; :func:`~fer_core.video_writer.crash_safe_suffix`):
written as it goes, so an app that crashes or is killed leaves a playable file missing only its last second; the
CSV reaches the disk at least once a second (:mod:`fer_core.records`). Used by the worker thread (the UI thread
never writes frames)::

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
from fer_core.video_writer import VIDEO_SUFFIXES, VideoWriter, VideoWriteError, crash_safe_suffix, describe_codec

__all__ = ["Recorder", "VideoWriteError"]


class Recorder:
    """Writes ``<base>.mp4`` (``.mkv`` without PyAV; annotated frames) and ``<base>.csv`` (per-face probabilities).

    Args:
        base_path: output path without suffix (a video or ``.csv`` suffix, such as ``.mp4``, is replaced).
        fps: frame rate written into the video.
        labels: class names in the model's output order (``Pipeline.labels``).

    Raises:
        WriteError: the CSV cannot be created (from the constructor).
    """

    def __init__(self, base_path: str | Path, fps: float, labels: Sequence[str] | None = None) -> None:
        base = Path(base_path)
        if base.suffix.lower() in (*VIDEO_SUFFIXES, ".csv"):
            base = base.with_suffix("")
        self.video_path = base.with_name(base.name + crash_safe_suffix())
        self.csv_path = base.with_name(base.name + ".csv")
        self.fps = float(fps)
        self._video = VideoWriter(self.video_path, self.fps)
        self._records = FaceRecordWriter(self.csv_path, list(labels) if labels else None)

    @property
    def frames(self) -> int:
        return self._video.frames

    @property
    def codec(self) -> str:
        """The video's codec in words (``"H.264"``, or MPEG-4 Part 2 and why), for a status line."""
        return describe_codec(self._video.codec)

    def write(self, frame_bgr: np.ndarray, result: Any, frame_index: int, time_ms: float) -> None:
        """Append one annotated frame and its faces (frames of another size are resized to the first's).

        Raises:
            WriteError: the video or the CSV cannot be written (``VideoWriteError`` for the video).
        """
        self._video.write(frame_bgr)
        self._records.write(frame_index, time_ms, result.faces)

    def close(self) -> None:
        """Finish both files (both are closed even when one fails).

        Raises:
            WriteError: a file is incomplete (a full disk, ...): the first such failure.
        """
        try:
            self._video.close()
        finally:
            self._records.close()
