"""Frame in, faces with emotion probabilities out: detect -> crop -> preprocess -> classify -> track.

::

    with Pipeline("models/fer_realtime.onnx") as pipe:
        result = pipe.process(frame)            # BGR frame
        for face in result.faces:
            print(face.track_id, face.label, face.score, face.box)
        print(result.timings)                   # detect / preprocess / inference / total, in ms

``process`` never raises on a bad frame (None, empty, 1x1, odd shapes): it returns an empty result.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_core.crop import CROP_MARGIN, CROP_SHIFT, crop_face
from fer_core.detector import FaceDetector
from fer_core.model_zoo import default_model_path
from fer_core.session import EmotionClassifier
from fer_core.tracking import Tracker

logger = logging.getLogger(__name__)

#: The stages every result times, in milliseconds (``FrameResult.timings``): the one list the benchmark, the
#: command-line summary and the app's readouts use.
STAGES = ("detect", "preprocess", "inference", "total")


@dataclass
class FaceResult:
    """One face in one frame: track id, box (x, y, w, h), smoothed probabilities, top label and its score, the eye
    centres when the detector gives them, and whether the top probability is below the pipeline's threshold."""

    track_id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray
    label: str
    score: float
    eyes: tuple | None = None
    uncertain: bool = False


@dataclass
class FrameResult:
    """All faces of a frame, the stage timings in ms and the frame's shape (``()`` for a non-image)."""

    faces: list[FaceResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frame_shape: tuple[int, ...] = ()


def _valid_frame(frame) -> bool:
    return (isinstance(frame, np.ndarray) and frame.ndim in (2, 3) and frame.size > 0
            and (frame.ndim == 2 or frame.shape[2] in (1, 3, 4)))


class Pipeline:
    """Face detection + emotion classification + tracking for a stream of frames.

    Attributes:
        classifier: the :class:`EmotionClassifier`.
        detector: the :class:`FaceDetector`.
        tracker: the :class:`Tracker`.
        margin, shift: crop framing around the detector box (see :func:`fer_core.crop.crop_face`; the defaults
            are calibrated to FER2013's framing).
        align: turn each face upright (eyes level) before classifying it (settable).
        uncertain_below: faces whose top probability is below this are marked ``uncertain`` (settable).
        max_faces: at most this many faces per frame, largest first.
        equalize: histogram equalisation of the face crops (settable).
    """

    def __init__(self, model_path: str | Path | None = None, provider: str = "auto",
                 face_model: str | Path | None = None, min_confidence: float = 0.5, smoothing: float = 0.6,
                 equalize: bool = True, margin: float = CROP_MARGIN, max_faces: int = 32,
                 running_mode: str = "video", small_faces: bool = False, align: bool = True,
                 shift: float = CROP_SHIFT, uncertain_below: float = 0.4) -> None:
        """Load the classifier and the detector.

        Args:
            model_path: ONNX emotion model; ``None`` = :func:`fer_core.model_zoo.default_model_path`.
            provider: ONNX Runtime provider choice (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
            face_model: BlazeFace ``.tflite``; ``None`` resolves it (env, cache, download, else Haar).
            min_confidence: minimum face-detection score (settable later).
            smoothing: probability smoothing in [0, 1), 0 = off (settable later).
            equalize: histogram equalisation of the crops (settable later).
            margin: crop margin around the detector box.
            align: rotate faces upright using the eye keypoints (settable later).
            shift: crop centre offset along the face's vertical axis, in box widths.
            uncertain_below: top probability under which a face is marked uncertain (settable later).
            max_faces: faces per frame, largest kept.
            running_mode: ``"video"`` for streams (default) or ``"image"`` for unrelated images.
            small_faces: also search overlapping tiles for small (far) faces; slower (settable later).

        Raises:
            ModelLoadError: the model cannot be found or loaded (clear message with the path).
            ProviderError: the provider cannot be used.
        """
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.classifier = EmotionClassifier(self.model_path, provider)
        self.tracker = Tracker(smoothing=smoothing)
        self.detector = FaceDetector(face_model, min_confidence=min_confidence, running_mode=running_mode,
                                     small_faces=small_faces)
        self.equalize = bool(equalize)
        self.margin = float(margin)
        self.shift = float(shift)
        self.align = bool(align)
        self.uncertain_below = float(uncertain_below)
        self.max_faces = int(max_faces)

    # ------------------------------------------------------------------ settings
    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    @property
    def provider(self) -> str:
        return self.classifier.provider

    @property
    def detector_backend(self) -> str:
        return self.detector.backend

    @property
    def detector_warning(self) -> str | None:
        """Set when the Haar fallback is in use."""
        return self.detector.warning

    @property
    def smoothing(self) -> float:
        return self.tracker.smoothing

    @smoothing.setter
    def smoothing(self, value: float) -> None:
        self.tracker.smoothing = value

    @property
    def min_confidence(self) -> float:
        return self.detector.min_confidence

    @min_confidence.setter
    def min_confidence(self, value: float) -> None:
        self.detector.min_confidence = value

    @property
    def small_faces(self) -> bool:
        return self.detector.small_faces

    @small_faces.setter
    def small_faces(self, value: bool) -> None:
        self.detector.small_faces = bool(value)

    def reset(self) -> None:
        """Forget the tracks (call when switching to another source)."""
        self.tracker.reset()

    # ------------------------------------------------------------------ processing
    def process(self, frame: np.ndarray, timestamp_ms: int | None = None, still: bool = False) -> FrameResult:
        """Detect, classify and track the faces of one frame (BGR, BGRA or grey uint8, any size).

        Args:
            frame: the image.
            timestamp_ms: the frame time for the video-mode detector; ``None`` uses a clock.
            still: an image on its own (a photo of a folder, or one processed again): no tracking or smoothing
                across frames, ids from 1, and the stream's tracks are left as they are.

        Returns:
            A :class:`FrameResult`; empty (no faces) for an unusable frame. Never raises for bad frames.
        """
        t0 = time.perf_counter()
        result = FrameResult(frame_shape=tuple(getattr(frame, "shape", ())))
        if not _valid_frame(frame):
            result.timings["total"] = (time.perf_counter() - t0) * 1000
            return result
        try:
            detections = self.detector.detect(frame, timestamp_ms)
            detections.sort(key=lambda d: -(d.box[2] * d.box[3]))
            detections = detections[: self.max_faces]
            t1 = time.perf_counter()
            boxes = [d.box for d in detections]
            crops = [crop_face(frame, d.box, self.margin, shift=self.shift, eyes=d.eyes if self.align else None)
                     for d in detections]
            batch = self.classifier.preprocess(crops, self.equalize)
            t2 = time.perf_counter()
            probs = self.classifier.predict_batch(batch)
            t3 = time.perf_counter()
        except Exception as e:  # a bad frame must not stop a stream
            logger.warning("frame %s skipped: %s", result.frame_shape, e)
            result.timings["total"] = (time.perf_counter() - t0) * 1000
            return result
        tracker = Tracker(smoothing=0.0) if still else self.tracker
        tracks = tracker.update(boxes, probs)
        labels = self.labels
        for d, track in zip(detections, tracks):
            k = int(np.argmax(track.probs))
            score = float(track.probs[k])
            result.faces.append(FaceResult(track.track_id, d.box, track.probs.copy(), labels[k], score, d.eyes,
                                           score < self.uncertain_below))
        t4 = time.perf_counter()
        result.timings.update(detect=(t1 - t0) * 1000, preprocess=(t2 - t1) * 1000,
                              inference=(t3 - t2) * 1000, total=(t4 - t0) * 1000)
        return result

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the detector (the ONNX session is freed with the object)."""
        self.detector.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
