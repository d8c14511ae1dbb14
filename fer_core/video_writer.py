"""Writing annotated frames to a video file: the one place ``fer-run --out`` and the app's recorder open a writer.

The codec, probed once per process:

- ``.mp4`` / ``.m4v`` / ``.mov``: H.264 (what browsers play) in a *fragmented* MP4, written by PyAV (FFmpeg with
  libx264, ``preset=ultrafast``, a key frame and a fragment every second). Without PyAV: H.264 through OpenCV where
  its build has an encoder, else MPEG-4 Part 2 (``mp4v``: desktop players play it, browsers do not).
- ``.mkv``: OpenCV, H.264 where it can, else ``mp4v``; ``.avi``: Motion JPEG.

:attr:`VideoWriter.codec` says which codec a file got, :func:`describe_codec` in words.

What a crash leaves: a fragmented MP4 (PyAV), Matroska and AVI are written as they go, so a killed process leaves a
playable file missing only its last second or so; a plain MP4 (OpenCV) gets its index only at
:meth:`VideoWriter.close`, so a killed process leaves one that does not play. :func:`crash_safe_suffix` is the
suffix to record to. :meth:`VideoWriter.close` reads the finished file back and raises :class:`VideoWriteError`
when it is incomplete (a full disk, a file size limit), since OpenCV itself only logs such failures.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from fer_core.errors import WriteError, os_reason, write_error
from fer_core.opencv_quiet import quiet_opencv


log = logging.getLogger(__name__)

#: Video suffixes and the codec written for each when H.264 is not available.
VIDEO_SUFFIXES = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
#: Suffixes written as H.264 where this OpenCV build has an encoder for it.
H264_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
#: Suffixes written as fragmented H.264 MP4 by PyAV where it is installed with libx264.
FRAGMENTED_SUFFIXES = (".mp4", ".m4v", ".mov")
#: FFmpeg options of those files: an empty index up front, then a fragment at every key frame (every second).
_FRAGMENTED_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
CODEC_NAMES = {"avc1": "H.264", "mp4v": "MPEG-4 Part 2", "MJPG": "Motion JPEG"}
_LOW_SPACE = 1 << 20  # bytes: less free space than this after a failed write means the disk is full


class VideoWriteError(WriteError, RuntimeError):
    """The video file cannot be written (no encoder for it, a folder that is not writable, a full disk)."""


@functools.cache
def h264_available() -> bool:
    """Whether this OpenCV build can write H.264 (``avc1``) into an MP4: two tiny frames into a temporary file,
    once per process (about a millisecond where it cannot)."""
    with tempfile.TemporaryDirectory() as tmp, quiet_opencv():
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


@functools.cache
def fragmented_mp4_available() -> bool:
    """Whether PyAV is installed with an H.264 encoder (libx264), for fragmented MP4 files."""
    try:
        import av
    except ImportError:
        log.debug("PyAV not installed: MP4 files are written by OpenCV")
        return False
    return "libx264" in av.codecs_available


def crash_safe_suffix() -> str:
    """The suffix to record to so that a killed process leaves a playable file: ``.mp4`` (fragmented H.264) where
    PyAV can write it, else ``.mkv``."""
    return ".mp4" if fragmented_mp4_available() else ".mkv"


def through_pyav(path: str | Path) -> bool:
    """Whether :class:`VideoWriter` writes ``path`` through PyAV (fragmented H.264 MP4), not OpenCV."""
    return Path(path).suffix.lower() in FRAGMENTED_SUFFIXES and fragmented_mp4_available()


def codec_for(path: str | Path) -> str:
    """The fourcc :class:`VideoWriter` uses for ``path``: ``avc1`` where possible, else by :data:`VIDEO_SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if through_pyav(path):
        return "avc1"
    if suffix in H264_SUFFIXES and h264_available():
        return "avc1"
    return VIDEO_SUFFIXES.get(suffix, "mp4v")


def describe_codec(codec: str) -> str:
    """``"H.264"``, or for a fallback a few words saying why it is not H.264."""
    name = CODEC_NAMES.get(codec, codec)
    if codec == "mp4v":
        return f"{name} ('mp4v'; no H.264 encoder here (pip install av), so browsers will not play it)"
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

    def _open(self, w: int, h: int) -> "cv2.VideoWriter | _FragmentedMp4":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoWriteError(f"cannot write {self.path}: cannot create its folder ({os_reason(exc)})") from exc
        if through_pyav(self.path):
            try:
                return _FragmentedMp4(self.path, self.fps, w, h)
            except OSError as exc:
                raise write_error(self.path, exc, VideoWriteError) from exc
        for codec in dict.fromkeys([self.codec, VIDEO_SUFFIXES.get(self.path.suffix.lower(), "mp4v")]):
            with quiet_opencv():
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
        try:
            with quiet_opencv():  # a failed OpenCV write only logs a warning per frame; close() checks the file
                self._writer.write(np.ascontiguousarray(frame[:, :, :3]))
        except OSError as exc:  # PyAV raises (a full disk, a size limit)
            self._abandon()
            raise write_error(self.path, exc, VideoWriteError) from exc
        self.frames += 1

    def _abandon(self) -> None:
        writer, self._writer = self._writer, None
        with contextlib.suppress(Exception):
            writer.release()

    def close(self) -> None:
        """Finish the file and check that it plays to its last frame.

        Raises:
            VideoWriteError: the file is incomplete (a full disk, a file size limit, a removed drive).
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.release()
        except OSError as exc:
            raise write_error(self.path, exc, VideoWriteError) from exc
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


class _FragmentedMp4:
    """H.264 into a fragmented MP4 through PyAV, with OpenCV's ``write`` / ``release`` (see the module docstring).

    The size is cut to even numbers (4:2:0 colour needs them); x264 uses two threads and no look-ahead, so a frame
    costs a few milliseconds at 640x480 and reaches the file within a second.
    """

    def __init__(self, path: Path, fps: float, w: int, h: int) -> None:
        import av

        self.size = (max(2, w - w % 2), max(2, h - h % 2))
        self._container = av.open(str(path), "w", options=dict(_FRAGMENTED_OPTIONS))
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self._stream = self._container.add_stream(
                "libx264", rate=rate,
                options={"preset": "ultrafast", "tune": "zerolatency", "g": str(max(1, round(fps))), "threads": "2"})
            self._stream.width, self._stream.height = self.size
            self._stream.pix_fmt = "yuv420p"
        except Exception:
            self._container.close()
            raise
        self._frame_type = av.VideoFrame
        self._pts = 0

    def write(self, frame: np.ndarray) -> None:
        w, h = self.size
        video_frame = self._frame_type.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="bgr24")
        video_frame.pts = self._pts
        self._pts += 1
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def release(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


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
