"""Frame sources: camera, video file, single image, folder of images, network stream.

``open_source(spec)`` picks the right kind from the spec and returns a :class:`FrameSource`;
iterate it to get ``(frame_index, timestamp_ms, frame)`` with ``frame`` a BGR uint8 array::

    with open_source("video.mp4") as src:
        for idx, t_ms, frame in src:
            ...

Opening fails fast with :class:`SourceError` (missing file, camera index that does not exist,
unreadable video). A live source that stops mid-stream ends the iteration and sets ``.error``
instead of raising or hanging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_core.errors import FerError, os_reason
from fer_core.native_stderr import native_stderr
from fer_core.opencv_quiet import quiet_opencv


log = logging.getLogger(__name__)

IMAGE_EXTS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".jp2"})
"""Image file suffixes (lower case) that OpenCV reads: the one list for sources, training readers and the app."""
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
OPEN_TIMEOUT_MS = 5000  # network streams: give up connecting after this
READ_TIMEOUT_MS = 3000  # network streams / cameras: a single read blocks at most this long (where supported)
MAX_FAILED_READS = 10  # live sources: this many failed reads in a row end the stream
FAILED_READ_PAUSE_S = 0.02
STALL_TIMEOUT_S = 5.0  # live sources: no frame for this long ends the stream


class SourceError(FerError, RuntimeError):
    """A source that cannot be opened or read; the message names it and says why."""


def read_image(path: str | Path, unchanged: bool = False) -> np.ndarray | None:
    """Read an image file as BGR uint8, or with ``unchanged`` as stored (grey, BGR or BGRA; 16-bit scaled to 8
    bits), as the training data readers want it. ``None`` when missing or unreadable; non-ASCII paths work
    (``np.fromfile`` + ``cv2.imdecode``)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return _decode(data, unchanged)


def _decode(data: np.ndarray, unchanged: bool = False) -> np.ndarray | None:
    """The bytes of an image file decoded as :func:`read_image` says; ``None`` for no or undecodable data."""
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR)
    if img is not None and img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    return img if img is not None and img.size else None


#: What libjpeg says on stderr about a JPEG whose data is damaged (it still decodes, with grey or garbled parts).
JPEG_DAMAGE_MESSAGES = ("Corrupt JPEG data", "Premature end of JPEG file")
DAMAGED = "damaged image data (the file is truncated or corrupt)"


def read_image_checked(path: str | Path) -> tuple[np.ndarray | None, str]:
    """Read an image file as BGR uint8 and say what is wrong with it: ``(image, "")`` when it is whole, else
    ``(None, why)`` with ``why`` in plain words: ``"permission denied"``, ``"empty file"``, :data:`DAMAGED` (a
    JPEG that libjpeg reports as corrupt, even though it decodes), ``"corrupt file or unsupported format"``."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        return None, os_reason(exc)
    if data.size == 0:
        return None, "empty file"
    text = ""
    if data[:2].tobytes() != b"\xff\xd8":  # not a JPEG: libjpeg is not involved
        img = _decode(data)
    else:
        with native_stderr() as said:
            img = _decode(data)
        text = "".join(said).strip()
        if text:
            log.debug("%s: libjpeg said: %s", path, text)
    if any(m in text for m in JPEG_DAMAGE_MESSAGES):
        return None, DAMAGED
    return (img, "") if img is not None else (None, "corrupt file or unsupported format")


SHORTFALL_FRAMES = 5  # containers' frame counts are estimates: a few frames short is a whole file
SHORTFALL_SHARE = 0.02


def ended_early(frames_read: int, expected: int | None) -> bool:
    """Whether a file that gave ``frames_read`` frames ended early (truncated or damaged), given the count its
    container announces: only a shortfall of more than ``max(SHORTFALL_FRAMES, SHORTFALL_SHARE * expected)``."""
    if not expected:
        return False
    return expected - frames_read > max(SHORTFALL_FRAMES, SHORTFALL_SHARE * expected)


class FrameSource:
    """Base class: an iterable of ``(frame_index, timestamp_ms, frame_bgr)``.

    Attributes:
        name: human-readable description (path, ``camera 0``, URL).
        fps: nominal frames per second (image sources: 1.0, one image per second).
        frame_size: ``(width, height)`` of the frames (of the first frame for image folders).
        frame_count: number of frames, ``None`` for live sources (approximate for some videos).
        is_live: camera or network stream (timestamps are wall-clock, no known length).
        error: set when a live source stopped unexpectedly mid-stream, or a file ended well before the frame
            count its container announces; ``None`` otherwise.
    """

    name: str = ""
    fps: float = 30.0
    frame_size: tuple[int, int] = (0, 0)
    frame_count: int | None = None
    is_live: bool = False
    error: str | None = None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying device or file."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps:.1f}, size={self.frame_size})"


class CaptureSource(FrameSource):
    """A source backed by an opened ``cv2.VideoCapture``-like object (camera, video file or stream).

    Reads the first frame on construction so that a device or file that opens but delivers nothing
    fails here with :class:`SourceError` rather than later.

    Args:
        cap: an opened capture (anything with ``read()``, ``get(prop)``, ``release()``).
        name: description used in messages.
        is_live: camera/stream (wall-clock timestamps, failed reads are retried then end the stream).
        max_failed_reads: consecutive failed reads after which a live source is considered stopped
            (so is a live source that gave no frame for ``STALL_TIMEOUT_S``).
    """

    def __init__(self, cap: Any, name: str, is_live: bool, max_failed_reads: int = MAX_FAILED_READS) -> None:
        self._cap = cap
        self.name = name
        self.is_live = is_live
        self.max_failed_reads = max(1, max_failed_reads)
        self.error = None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.5 < fps < 1000 else 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = None if is_live or count <= 0 else count
        self._first = self._read_first()
        h, w = self._first.shape[:2]
        self.frame_size = (w, h)
        self._used = False

    def _read_first(self) -> np.ndarray:
        tries = self.max_failed_reads if self.is_live else 1
        deadline = time.monotonic() + STALL_TIMEOUT_S
        for _ in range(tries):
            ok, frame = self._cap.read()
            if ok and frame is not None and frame.size:
                return frame
            if not self.is_live or time.monotonic() > deadline:
                break
            time.sleep(FAILED_READ_PAUSE_S)
        self.close()
        why = "it may be in use by another program" if self.is_live else "the file may be corrupt or empty"
        raise SourceError(f"{self.name}: opened but no frame could be read ({why})")

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        if self._used:
            raise SourceError(f"{self.name}: a capture source can be iterated only once")
        self._used = True
        start = last_ok = time.monotonic()
        idx, frame, self._first = 0, self._first, None
        failed = 0
        while frame is not None:
            t_ms = (time.monotonic() - start) * 1000.0 if self.is_live else idx * 1000.0 / self.fps
            yield idx, t_ms, frame
            idx += 1
            frame = None
            while self._cap is not None:
                ok, got = self._cap.read()
                if ok and got is not None and got.size:
                    frame, failed, last_ok = got, 0, time.monotonic()
                    break
                if not self.is_live:
                    self._check_complete(idx)
                    break  # end of file
                failed += 1
                if failed >= self.max_failed_reads or time.monotonic() - last_ok > STALL_TIMEOUT_S:
                    self.error = f"{self.name} stopped delivering frames after {idx} frames"
                    log.debug(self.error)
                    break
                time.sleep(FAILED_READ_PAUSE_S)

    def _check_complete(self, frames_read: int) -> None:
        """A file that ends well before the frame count its container announces is truncated or damaged."""
        expected = self.frame_count
        if ended_early(frames_read, expected):
            self.error = (f"{self.name} ended early: {frames_read} of the {expected} frames its container "
                          "announces could be read (the file is truncated or damaged)")
            log.warning(self.error)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource(FrameSource):
    """One image file or a sorted list of image files; unreadable or damaged files (:func:`read_image_checked`)
    are skipped with a warning and listed in ``skipped``; a single such file is a :class:`SourceError`.

    Timestamps are nominal: one image per second (``fps`` = 1.0). ``last_path`` is the file of the
    frame most recently yielded (for naming outputs).
    """

    def __init__(self, paths: list[Path], name: str) -> None:
        self.name = name
        self.paths = list(paths)
        self.fps = 1.0
        self.frame_count = len(self.paths)
        self.is_live = False
        self.error = None
        self.skipped: list[Path] = []
        self.last_path: Path | None = None
        first, why = None, ""
        for p in self.paths:
            first, why = read_image_checked(p)
            if first is not None:
                break
        if first is None:
            if len(self.paths) == 1:
                raise SourceError(f"{name}: {why}" if why == DAMAGED else f"cannot read image {name} ({why})")
            raise SourceError(f"no readable images in {name} ({len(self.paths)} files tried)")
        h, w = first.shape[:2]
        self.frame_size = (w, h)

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        idx = 0
        for p in self.paths:
            img, why = read_image_checked(p)
            if img is None:
                log.warning("skipping %s: %s", p, why)
                self.skipped.append(p)
                continue
            self.last_path = p
            yield idx, idx * 1000.0 / self.fps, img
            idx += 1


def _camera_missing(index: int) -> bool:
    """True when we can tell cheaply that a camera index does not exist (Linux: no /dev/videoN)."""
    return sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists()


def open_camera(index: int, max_failed_reads: int = MAX_FAILED_READS) -> CaptureSource:
    """Open camera ``index``; :class:`SourceError` quickly when it does not exist or is busy."""
    name = f"camera {index}"
    if index < 0:
        raise SourceError(f"{name}: camera indices start at 0")
    if _camera_missing(index):
        raise SourceError(f"{name} does not exist (no /dev/video{index}); available cameras: "
                          f"{list_cameras() or 'none'}")
    with quiet_opencv():
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{name} could not be opened (it does not exist or is in use by another program)")
        with contextlib.suppress(cv2.error):
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS)
        return CaptureSource(cap, name, is_live=True, max_failed_reads=max_failed_reads)


def open_stream(url: str) -> CaptureSource:
    """Open a network stream (RTSP, HTTP(S), ...) with connect and read timeouts."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
    with quiet_opencv():
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"stream {url} could not be opened (unreachable, wrong address or unsupported)")
        return CaptureSource(cap, f"stream {url}", is_live=True)


def open_video(path: Path) -> CaptureSource:
    """Open a video file; :class:`SourceError` naming the file when it is missing or unreadable."""
    if not path.is_file():
        raise SourceError(f"video file not found: {path}")
    with quiet_opencv():
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot read video {path} ({_unreadable(path) or 'unsupported format or corrupt file'})")
        return CaptureSource(cap, str(path), is_live=False)


def _unreadable(path: Path) -> str:
    """Why ``path`` cannot be opened for reading (``"permission denied"``), or ``""`` when it can."""
    try:
        with open(path, "rb"):
            return ""
    except OSError as exc:
        return os_reason(exc)


def open_folder(folder: Path) -> ImageSource:
    """All images in ``folder`` (not recursive), sorted by name."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in folder {folder}")
    return ImageSource(paths, str(folder))


def open_source(spec: str | int | Path) -> FrameSource:
    """Open a frame source from a spec.

    Args:
        spec: camera index (``0`` or ``"0"``), video file, image file, folder of images, or a stream
            URL (``rtsp://``, ``http(s)://``, ...).

    Raises:
        SourceError: the source does not exist or cannot be read; the message says which and why.
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return open_camera(int(spec))
    text = str(spec).strip()
    if not text:
        raise SourceError("empty source: give a camera index, a file, a folder or a URL")
    if text.isdigit():
        return open_camera(int(text))
    if text.lower().startswith(STREAM_PREFIXES):
        return open_stream(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return open_folder(path)
    if not path.exists():
        raise SourceError(f"source not found: {path} (not a file, folder, camera index or URL)")
    if path.suffix.lower() in IMAGE_EXTS:
        return ImageSource([path], str(path))
    return open_video(path)


def list_cameras(max_index: int = 5) -> list[int]:
    """Indices of cameras that open and deliver a frame, probing ``0 .. max_index - 1``.

    Quick and silent: on Linux, indices without ``/dev/videoN`` are skipped without opening.
    """
    found = []
    for index in range(max_index):
        if _camera_missing(index):
            continue
        with quiet_opencv():
            cap = cv2.VideoCapture(index)
            try:
                if cap.isOpened():
                    ok, frame = cap.read()
                    if ok and frame is not None:
                        found.append(index)
            finally:
                cap.release()
    return found
