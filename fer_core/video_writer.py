"""Writing annotated frames to a video file: the one place ``fer-run --out`` and the app's recorder open a writer.

The codec: H.264 (``avc1``, what browsers play) where this OpenCV build can encode it, probed once per process;
otherwise MPEG-4 Part 2 (``mp4v``), which desktop players play but browsers do not; Motion JPEG for ``.avi``.
:attr:`VideoWriter.codec` says which one a file got.

What a crash leaves: Matroska (``.mkv``, :data:`CRASH_SAFE_SUFFIX`) and AVI are written as they go, so a killed
process leaves a playable file missing only its last moments (what was still in the muxer's buffer, about
256 KB); an MP4 gets its index only at :meth:`VideoWriter.close`, so a killed process leaves an MP4 that does not
play. :meth:`VideoWriter.close` reads the finished file back and raises :class:`VideoWriteError` when it is
incomplete (a full disk, a file size limit), since OpenCV itself only logs such failures.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from fer_core.errors import WriteError, os_reason

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg quiet (read when OpenCV first loads it)

log = logging.getLogger(__name__)

#: Video suffixes and the codec written for each when H.264 is not available.
VIDEO_SUFFIXES = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
#: Suffixes written as H.264 where this OpenCV build has an encoder for it.
H264_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
#: The container that survives a killed process (see the module docstring).
CRASH_SAFE_SUFFIX = ".mkv"
CODEC_NAMES = {"avc1": "H.264", "mp4v": "MPEG-4 Part 2", "MJPG": "Motion JPEG"}
_LOW_SPACE = 1 << 20  # bytes: less free space than this after a failed write means the disk is full


class VideoWriteError(WriteError, RuntimeError):
    """The video file cannot be written (no encoder for it, a folder that is not writable, a full disk)."""


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV's own log lines off (a failed open logs errors; we report them ourselves)."""
    old = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


@functools.cache
def h264_available() -> bool:
    """Whether this OpenCV build can write H.264 (``avc1``) into an MP4: two tiny frames into a temporary file,
    once per process (about a millisecond where it cannot)."""
    with tempfile.TemporaryDirectory() as tmp, _quiet_opencv():
        path = os.path.join(tmp, "probe.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"avc1"), 10.0, (64, 64))
        ok = writer.isOpened()
        if ok:
            for _ in range(2):
                writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.release()
        ok = ok and os.path.isfile(path) and os.path.getsize(path) > 0
    log.debug("H.264 (avc1) encoder %s", "available" if ok else "not available in this OpenCV build")
    return ok


def codec_for(path: str | Path) -> str:
    """The fourcc :class:`VideoWriter` uses for ``path``: ``avc1`` where possible, else by :data:`VIDEO_SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if suffix in H264_SUFFIXES and h264_available():
        return "avc1"
    return VIDEO_SUFFIXES.get(suffix, "mp4v")


def describe_codec(codec: str) -> str:
    """``"H.264"``, or for a fallback a few words saying why it is not H.264."""
    name = CODEC_NAMES.get(codec, codec)
    if codec == "mp4v":
        return f"{name} ('mp4v'; no H.264 encoder in this OpenCV build, so browsers will not play it)"
    return name


class VideoWriter:
    """A video file opened at the first frame, whose size all later frames are resized to.

    Args:
        path: the file; its suffix picks the container and the codec (:func:`codec_for`).
        fps: frame rate written into the file.

    Attributes:
        codec: the fourcc written (``"avc1"``, ``"mp4v"`` or ``"MJPG"``); see :func:`describe_codec`.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.codec = codec_for(self.path)
        self._writer: cv2.VideoWriter | None = None

    def _open(self, w: int, h: int) -> cv2.VideoWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoWriteError(f"cannot write {self.path}: cannot create its folder ({os_reason(exc)})") from exc
        for codec in dict.fromkeys([self.codec, VIDEO_SUFFIXES.get(self.path.suffix.lower(), "mp4v")]):
            with _quiet_opencv():
                writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps, (w, h))
            if writer.isOpened():
                if codec != self.codec:
                    log.info("%s: %s did not open at %dx%d; writing %s", self.path, self.codec, w, h, codec)
                self.codec = codec
                return writer
            writer.release()
        raise VideoWriteError(f"cannot write {self.path} (no encoder for it, or the folder is not writable)")

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR (or grey) frame."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = frame.shape[:2]
        if self._writer is None:
            self._writer = self._open(w, h)
            self.size = (w, h)
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        with _quiet_opencv():  # a failed write only logs a warning per frame; close() checks the file instead
            self._writer.write(np.ascontiguousarray(frame[:, :, :3]))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and check that it plays to its last frame.

        Raises:
            VideoWriteError: the file is incomplete (a full disk, a file size limit, a removed drive).
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.release()
        if not plays_to_the_end(self.path, self.frames):
            raise VideoWriteError(f"cannot write {self.path}: {self._why_incomplete()}")

    def _why_incomplete(self) -> str:
        try:
            if shutil.disk_usage(self.path.parent).free < _LOW_SPACE:
                return "no space left on device"
        except OSError:
            pass
        return (f"the file is incomplete: it does not play to its last frame ({self.frames} frames were sent "
                "to it; is the disk full, or a file size limit set?)")


def plays_to_the_end(path: str | Path, frames: int) -> bool:
    """Whether the video at ``path`` opens and its frame ``frames - 1`` can be read (seek, then one read)."""
    if frames <= 0:
        return True
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return False
        if frames > 1 and not cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1):
            return False
        ok, _ = cap.read()
        return bool(ok) and int(round(cap.get(cv2.CAP_PROP_POS_FRAMES))) == frames
    finally:
        cap.release()
