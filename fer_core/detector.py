"""Face detection: MediaPipe Tasks ``FaceDetector`` (BlazeFace short range), Haar cascade as the fallback.

The BlazeFace short-range model is made for faces within about 2 m of the camera (webcam, selfie
distance); faces further away may be missed. It sees the frame at 128x128, so frames larger than
``max_side`` pixels on the long side are downscaled before detection (cheaply, also for 8K frames) and
the boxes are scaled back to the frame. With ``small_faces`` on, four overlapping tiles of the frame are
searched as well (five detector runs instead of one), which finds faces down to about a tenth of the
frame width instead of about a quarter; boxes found twice are merged, and a face found only in a tile
needs a higher score (``TILE_EXTRA_CONFIDENCE``) because zoomed-in textures fool the detector more often.

When no model file can be found or loaded (see :func:`fer_core.face_model.resolve_face_model`), the
detector uses OpenCV's bundled Haar cascade and sets :attr:`FaceDetector.warning` so that user
interfaces can show it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_core.errors import FerError
from fer_core.face_model import resolve_face_model
from fer_core.native_stderr import native_stderr

logger = logging.getLogger(__name__)

DETECT_MAX_SIDE = 640  # the network input is 128x128: larger detection images only cost time
HAAR_MAX_SIDE = 320  # the Haar cascade is far slower (tens of ms); it scans a smaller image
MIN_FRAME_SIDE = 8  # smaller frames cannot hold a detectable face
HAAR_FILE = "haarcascade_frontalface_default.xml"
TILE_FRACTION = 0.6  # small_faces: 2x2 tiles, each 60% of the frame's width and height (20% overlap)
SAME_FACE_OVERLAP = 0.5  # boxes whose intersection covers half of the smaller one are one face
# Zoomed-in tiles make BlazeFace see faces in textures (clothes, hair) with scores up to about 0.6, so a face
# found only in a tile must clear min_confidence by this much.
TILE_EXTRA_CONFIDENCE = 0.15


class DetectorError(FerError, RuntimeError):
    """No face detector at all could be created."""


Eyes = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` = (x, y, w, h) integer pixels inside the frame, ``score`` in [0, 1], and ``eyes``: the
    two eye centres (x, y) in frame pixels, the one on the image's left first (``None`` from the Haar fallback)."""

    box: tuple[int, int, int, int]
    score: float
    eyes: Eyes | None = None


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """BGR, BGRA or grey uint8 frame -> contiguous RGB uint8."""
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def downscale(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink a frame so its long side is at most ``max_side``. Returns (image, scale = new / old)."""
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return frame, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 0.5:  # bilinear to twice the size first (cheap), then 2x area averaging (OpenCV's fast path)
        frame = cv2.resize(frame, (size[0] * 2, size[1] * 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), size[0] / w


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Route what native code writes to stderr (MediaPipe/LiteRT start-up and shut-down chatter) to the log: its
    DEBUG log, or its WARNING log when the block raises, so nothing useful is lost."""
    said: list[str] = []
    try:
        with native_stderr() as said:
            yield
    except BaseException:
        _log_native(said, logging.WARNING)
        raise
    _log_native(said, logging.DEBUG)


def _log_native(said: list[str], level: int) -> None:
    text = "".join(said).strip()
    if text:
        logger.log(level, "MediaPipe said: %s", text)


def tile_boxes(width: int, height: int, fraction: float = TILE_FRACTION) -> list[tuple[int, int, int, int]]:
    """The four overlapping tiles (x0, y0, x1, y1) that ``small_faces`` searches: 2x2, each ``fraction`` of a side."""
    tw, th = int(round(width * fraction)), int(round(height * fraction))
    return [(x0, y0, x0 + tw, y0 + th) for y0 in (0, height - th) for x0 in (0, width - tw)]


def merge_same_faces(raw: list) -> list:
    """Keep the best-scoring box of each face among ``[((x, y, w, h), score, ...), ...]`` found more than once.

    Two boxes are the same face when their intersection covers at least ``SAME_FACE_OVERLAP`` of the
    smaller box (a tile may see only part of a face that the whole frame sees entirely).
    """
    kept: list = []
    for item in sorted(raw, key=lambda r: -r[1]):
        (x, y, w, h), same = item[0], False
        for (kx, ky, kw, kh), *_ in kept:
            iw = min(x + w, kx + kw) - max(x, kx)
            ih = min(y + h, ky + kh) - max(y, ky)
            if iw > 0 and ih > 0 and iw * ih >= SAME_FACE_OVERLAP * min(w * h, kw * kh):
                same = True
                break
        if not same:
            kept.append(item)
    return kept


def _clip_box(x: float, y: float, w: float, h: float, scale: float, width: int, height: int
              ) -> tuple[int, int, int, int] | None:
    """Scale a box back to the frame and clip it; ``None`` when nothing is left."""
    x0 = max(0, int(round(x / scale)))
    y0 = max(0, int(round(y / scale)))
    x1 = min(width, int(round((x + w) / scale)))
    y1 = min(height, int(round((y + h) / scale)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


class FaceDetector:
    """Find faces in frames (BGR by convention; BGRA and grey work too).

    Use as a context manager or call :meth:`close`::

        with FaceDetector(running_mode="video") as det:
            for t_ms, frame in frames:
                faces = det.detect(frame, t_ms)

    Attributes:
        backend: ``"mediapipe"`` or ``"haar"``.
        warning: a user-visible message when the Haar fallback is in use, else ``None``.
        model_path: the MediaPipe model file, or ``None`` for Haar.
    """

    def __init__(self, model_path: str | Path | None = None, min_confidence: float = 0.5,
                 running_mode: str = "image", max_side: int = DETECT_MAX_SIDE, backend: str = "auto",
                 download: bool = True, small_faces: bool = False) -> None:
        """Create the detector.

        Args:
            model_path: BlazeFace ``.tflite``; ``None`` resolves it (env ``FER_FACE_MODEL``, cache, download).
            min_confidence: minimum detection score (MediaPipe only; Haar has no score). Settable later.
            running_mode: ``"image"`` for independent images, ``"video"`` for frames of one stream.
            max_side: frames with a longer side are downscaled for detection.
            backend: ``"auto"`` (MediaPipe, else Haar), ``"mediapipe"`` (error if unavailable) or ``"haar"``.
            download: allow downloading the model into the user cache when it is not found.
            small_faces: also search four overlapping tiles for faces too small for the whole-frame pass
                (MediaPipe only; about five times the detection time). Settable later.

        Raises:
            ValueError: unknown ``running_mode`` or ``backend``.
            DetectorError: ``backend="mediapipe"`` without a usable model, or no Haar cascade either.
        """
        if running_mode not in ("image", "video"):
            raise ValueError(f"running_mode must be 'image' or 'video', not {running_mode!r}")
        if backend not in ("auto", "mediapipe", "haar"):
            raise ValueError(f"backend must be 'auto', 'mediapipe' or 'haar', not {backend!r}")
        self.running_mode = running_mode
        self.max_side = int(max_side)
        self._min_confidence = float(min_confidence)
        self._stale = False  # the threshold changed since the MediaPipe detectors were built
        self._mp_detector = None
        self._mp_tiles = None  # an image-mode detector for the tiles (video mode needs increasing timestamps)
        self._ran: set[int] = set()  # ids of the MediaPipe detectors that have run once
        self.small_faces = bool(small_faces)
        self._haar: cv2.CascadeClassifier | None = None
        self._last_ts = -1
        self.warning: str | None = None
        self.model_path: Path | None = None
        self.backend = "haar"

        problem = "backend 'haar' requested"
        if backend != "haar":
            path = resolve_face_model(model_path, download=download)
            if path is None:
                problem = "no face-detector model file found"
            else:
                try:
                    self._mp_detector = self._create_mediapipe(path)
                    self.model_path, self.backend = path, "mediapipe"
                except Exception as e:  # MediaPipe raises RuntimeError/ValueError for bad model files
                    problem = f"face-detector model {path} does not load ({e})"
            if self._mp_detector is None and backend == "mediapipe":
                raise DetectorError(problem)
        if self._mp_detector is None:
            self._haar = self._create_haar()
            if backend == "auto":
                self.warning = (f"Using OpenCV's Haar cascade face detector (less accurate): {problem}. "
                                "Pass --face-model or set FER_FACE_MODEL to blaze_face_short_range.tflite.")
                logger.warning(self.warning)

    # ------------------------------------------------------------------ creation
    def _create_mediapipe(self, path: Path, running_mode: str | None = None):
        from mediapipe.tasks.python import BaseOptions, vision

        video = (running_mode or self.running_mode) == "video"
        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=mode,
            min_detection_confidence=self._min_confidence,
        )
        with _native_stderr_to_log():
            return vision.FaceDetector.create_from_options(options)

    @staticmethod
    def _create_haar() -> cv2.CascadeClassifier:
        path = Path(cv2.data.haarcascades) / HAAR_FILE
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise DetectorError(f"OpenCV Haar cascade {path} cannot be loaded")
        return cascade

    @property
    def min_confidence(self) -> float:
        """Minimum detection score. Changing it recreates the MediaPipe detector (a few ms) at the next
        :meth:`detect`, so a slider dragged over many values costs one rebuild per frame at most.

        Why not one detector built at a low floor, filtered in Python (as insightface's ``det_thresh``)? MediaPipe
        merges overlapping candidates by a score-weighted average, so a lower floor lets weak candidates move
        the boxes: up to 15 px on 640x480 frames of real faces (25 frames, 64 faces) against a detector built
        at the threshold itself.
        """
        return self._min_confidence

    @min_confidence.setter
    def min_confidence(self, value: float) -> None:
        value = float(value)
        if value != self._min_confidence:
            self._min_confidence = value
            self._stale = True

    def _rebuild(self) -> None:
        """Recreate the MediaPipe detectors for the current threshold."""
        self._stale = False
        old = None
        if self._mp_detector is not None:
            old, self._mp_detector = self._mp_detector, self._create_mediapipe(self.model_path)
            old.close()
            self._last_ts = -1
            self._ran.clear()
        tiles, self._mp_tiles = self._mp_tiles, None
        if tiles is not None and tiles is not old:
            tiles.close()

    # ------------------------------------------------------------------ detection
    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None,
               small_faces: bool | None = None) -> list[Detection]:
        """Detect faces, best score first.

        Args:
            frame: uint8 image (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA, any size.
            timestamp_ms: frame time for ``"video"`` mode; ``None`` uses a monotonic clock. Timestamps
                that do not increase (a looping video, a repeated frame) are moved just past the last one.
            small_faces: search the tiles too for this frame; ``None`` = the detector's :attr:`small_faces`.

        Returns:
            Boxes clipped to the frame; ``[]`` for empty or tiny frames.

        Raises:
            RuntimeError: when :meth:`close` was called.
        """
        if self._mp_detector is None and self._haar is None:
            raise RuntimeError("FaceDetector is closed")
        if self._stale:
            self._rebuild()
        if frame is None or frame.ndim not in (2, 3) or min(frame.shape[:2]) < MIN_FRAME_SIDE:
            return []
        if frame.ndim == 3 and frame.shape[2] not in (1, 3, 4):
            return []
        height, width = frame.shape[:2]
        tiles = self.small_faces if small_faces is None else bool(small_faces)
        if self._mp_detector is not None:
            small, scale = downscale(frame, self.max_side)
            raw = self._detect_mediapipe(small, timestamp_ms)
            if tiles:
                raw = merge_same_faces(raw + self._detect_tiles(small))
        else:
            small, scale = downscale(frame, min(self.max_side, HAAR_MAX_SIDE))
            raw = self._detect_haar(small)
        faces = []
        for (x, y, w, h), score, eyes in raw:
            box = _clip_box(x, y, w, h, scale, width, height)
            if box is not None:
                if eyes is not None:
                    eyes = tuple((ex / scale, ey / scale) for ex, ey in eyes)
                faces.append(Detection(box, float(score), eyes))
        faces.sort(key=lambda d: -d.score)
        return faces

    def _detect_tiles(self, image: np.ndarray) -> list:
        """Detections in the 2x2 overlapping tiles of ``image``, in ``image`` coordinates."""
        if self._mp_tiles is None:
            self._mp_tiles = (self._mp_detector if self.running_mode == "image"
                              else self._create_mediapipe(self.model_path, "image"))
        out = []
        threshold = min(0.95, self._min_confidence + TILE_EXTRA_CONFIDENCE)
        for x0, y0, x1, y1 in tile_boxes(image.shape[1], image.shape[0]):
            tile = np.ascontiguousarray(image[y0:y1, x0:x1])
            for (x, y, w, h), score, eyes in self._detect_mediapipe(tile, None, self._mp_tiles):
                if score >= threshold:
                    if eyes is not None:
                        eyes = tuple((ex + x0, ey + y0) for ex, ey in eyes)
                    out.append(((x + x0, y + y0, w, h), score, eyes))
        return out

    def _detect_mediapipe(self, image: np.ndarray, timestamp_ms: int | None, detector=None) -> list:
        import mediapipe as mp

        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=to_rgb(image))
        detector = detector or self._mp_detector
        # The first run of a detector prints a LiteRT memory-alignment note on stderr: send it to the log.
        first = id(detector) not in self._ran
        self._ran.add(id(detector))
        with _native_stderr_to_log() if first else contextlib.nullcontext():
            if self.running_mode == "video" and detector is self._mp_detector:
                ts = int(timestamp_ms) if timestamp_ms is not None else int(time.monotonic() * 1000)
                ts = max(ts, self._last_ts + 1)
                self._last_ts = ts
                result = detector.detect_for_video(mp_image, ts)
            else:
                result = detector.detect(mp_image)
        out = []
        height, width = image.shape[:2]
        for d in result.detections:
            b = d.bounding_box
            score = d.categories[0].score if d.categories else 1.0
            if score is not None and score >= self._min_confidence:
                eyes = None
                if len(d.keypoints or []) >= 2:  # BlazeFace: right eye, left eye, nose, mouth, ears
                    eyes = tuple(sorted((k.x * width, k.y * height) for k in d.keypoints[:2]))
                out.append(((b.origin_x, b.origin_y, b.width, b.height), score, eyes))
        return out

    def _detect_haar(self, image: np.ndarray) -> list:
        gray = cv2.cvtColor(to_rgb(image), cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(gray)
        min_side = max(20, min(gray.shape) // 8)  # faces of at least 1/8 of the short side, like BlazeFace's range
        boxes = self._haar.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=5, minSize=(min_side, min_side))
        return [((int(x), int(y), int(w), int(h)), 1.0, None) for x, y, w, h in np.reshape(boxes, (-1, 4))]

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the MediaPipe graph (safe to call twice)."""
        detectors = {id(d): d for d in (self._mp_detector, self._mp_tiles) if d is not None}
        self._mp_detector = self._mp_tiles = None
        self._haar = None
        for detector in detectors.values():
            try:
                with _native_stderr_to_log():
                    detector.close()
            except Exception as e:  # closing during interpreter shutdown can fail; nothing to do then
                logger.debug("closing the MediaPipe detector failed: %s", e)

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
