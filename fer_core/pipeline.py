"""Frame in, faces with emotion probabilities out: detect -> crop -> preprocess -> classify -> track.

::

    with Pipeline("models/fer_realtime.onnx", PipelineSettings(smoothing=0.5)) as pipe:
        result = pipe.process(frame)            # BGR frame
        for face in result.faces:
            print(face.track_id, face.label, face.score, face.box)
        print(result.timings)                   # detect / preprocess / inference / total, in ms
        pipe.settings = pipe.settings.replace(small_faces=True)   # applies from the next frame
        pipe.settings = pipe.settings.replace(quality="balanced")  # see QUALITY_PLANS

The model file governs its own preprocessing (grey, equalisation, size, normalisation: its ``fer.*`` metadata);
everything else is a :class:`fer_core.settings.PipelineSettings`. ``process`` never raises on a bad frame (None,
empty, 1x1, odd shapes): it returns an empty result. Most code uses the front door,
:class:`fer_core.api.EmotionRecognizer`, which is this pipeline with ``predict`` and ``stream``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.crop import crop_face
from fer_core.detector import FaceDetector
from fer_core.model_zoo import default_model_path
from fer_core.results import STAGES, Face, FrameResult, make_face
from fer_core.session import EmotionClassifier
from fer_core.settings import PipelineSettings
from fer_core.tracking import ReadScheduler, Tracker

__all__ = ["QUALITY_PLANS", "STAGES", "Face", "FrameResult", "Pipeline", "PipelineSettings", "QualityPlan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityPlan:
    """What a :attr:`PipelineSettings.quality` does.

    Attributes:
        mirror: average each face with its mirror image (models with it built in; twice the classifier's work).
        budget_ms: a video frame's time budget: when reading every face would go past it, the faces are read in
            turn (:class:`fer_core.tracking.ReadScheduler`); ``None`` reads every face every frame.
        detect_every: search a video for faces every this many frames; the frames between reuse the last boxes
            (each face is still read from its own frame's pixels). A frame after one without faces always searches.
    """

    mirror: bool
    budget_ms: float | None
    detect_every: int = 1


#: The qualities (README, "Speed and quality"): ``best`` reads every face with its mirror image every frame;
#: ``balanced`` reads each face once (half the work, PrivateTest -1.9 pt) and, when a frame would take longer than
#: 1/30 s, reads its faces in turn; ``fastest`` the same within 1/60 s, and searches for faces every other frame.
#: Photos (``still``) search and read every face.
QUALITY_PLANS: dict[str, QualityPlan] = {
    "best": QualityPlan(mirror=True, budget_ms=None),
    "balanced": QualityPlan(mirror=False, budget_ms=1000 / 30),
    "fastest": QualityPlan(mirror=False, budget_ms=1000 / 60, detect_every=2),
}


def _valid_frame(frame) -> bool:
    return (isinstance(frame, np.ndarray) and frame.ndim in (2, 3) and frame.size > 0
            and (frame.ndim == 2 or frame.shape[2] in (1, 3, 4)))


class Pipeline:
    """Face detection + emotion classification + tracking for a stream of frames.

    Args:
        model: ONNX emotion model; ``None`` = :func:`fer_core.model_zoo.default_model_path`.
        settings: the processing settings; ``None`` = the defaults. Settable later (:attr:`settings`).
        provider: ONNX Runtime provider choice (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
        face_model: BlazeFace ``.tflite``; ``None`` resolves it (env, cache, download, else Haar).
        running_mode: ``"video"`` for streams (default) or ``"image"`` for unrelated images.

    Raises:
        ModelLoadError: the model cannot be found or loaded (clear message with the path).
        ProviderError: the provider cannot be used.
    """

    def __init__(self, model: str | Path | None = None, settings: PipelineSettings | None = None, *,
                 provider: str = "auto", face_model: str | Path | None = None, running_mode: str = "video") -> None:
        s = settings or PipelineSettings()
        self.model_path = Path(model) if model is not None else default_model_path()
        self.classifier = EmotionClassifier(self.model_path, provider)
        self.tracker = Tracker(smoothing=s.smoothing)
        self.detector = FaceDetector(face_model, min_confidence=s.min_confidence, running_mode=running_mode)
        self.scheduler = ReadScheduler()
        self._held: list = []  # the last search's detections, reused while the plan's detect_every allows
        self._since_search = 0  # video frames since that search
        self._settings = s
        self._apply_quality(s.quality)

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> PipelineSettings:
        """The processing settings; assign a new :class:`PipelineSettings` to change them (next frame on)."""
        return self._settings

    @settings.setter
    def settings(self, value: PipelineSettings) -> None:
        if not isinstance(value, PipelineSettings):
            raise TypeError(f"settings must be a PipelineSettings, not {type(value).__name__}")
        self._settings = value
        self.tracker.smoothing = value.smoothing
        self.detector.min_confidence = value.min_confidence
        self._apply_quality(value.quality)

    def _apply_quality(self, quality: str) -> None:
        plan = QUALITY_PLANS[quality]
        if plan.mirror != self.classifier.mirror:
            self.scheduler.face_ms = None  # the cost of a reading changes: measure it again
        self.classifier.mirror = plan.mirror
        self.scheduler.budget_ms = plan.budget_ms

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

    def reset(self) -> None:
        """Forget the tracks (call when switching to another source)."""
        self.tracker.reset()
        self._held = []

    # ------------------------------------------------------------------ processing
    def process(self, frame: np.ndarray, timestamp_ms: int | None = None, still: bool = False) -> FrameResult:
        """Detect, classify and track the faces of one frame (BGR, BGRA or grey uint8, any size).

        Args:
            frame: the image.
            timestamp_ms: the frame time for the video-mode detector and the readings' ages (``Face.age_ms``);
                ``None`` uses a clock.
            still: an image on its own (a photo, or a frame processed again): always searched for small faces
                too, no tracking or smoothing across frames, ids from 1, and the stream's tracks are left as they are.

        Returns:
            A :class:`FrameResult`; empty (no faces) for an unusable frame. Never raises for bad frames.
        """
        s = self._settings
        t0 = time.perf_counter()
        now_ms = float(timestamp_ms) if timestamp_ms is not None else t0 * 1000
        result = FrameResult(frame_shape=tuple(getattr(frame, "shape", ())))
        if not _valid_frame(frame):
            result.timings["total"] = (time.perf_counter() - t0) * 1000
            return result
        tracker = Tracker(smoothing=0.0) if still else self.tracker
        try:
            detections = self._detections(frame, timestamp_ms, still)
            t1 = time.perf_counter()
            tracks = tracker.match([d.box for d in detections])
            # a photo has the time: every face is read; a video frame over its budget reads its faces in turn
            read = (list(range(len(tracks))) if still
                    else self.scheduler.choose(tracks, (time.perf_counter() - t0) * 1000))
            crops = [crop_face(frame, detections[i].box, s.margin, shift=s.shift,
                               eyes=detections[i].eyes if s.align else None) for i in read]
            batch = self.classifier.preprocess(crops)  # equalisation etc. as the model's metadata says
            t2 = time.perf_counter()
            probs = self.classifier.predict_batch(batch)
            t3 = time.perf_counter()
        except Exception as e:  # a bad frame must not stop a stream
            logger.warning("frame %s skipped: %s", result.frame_shape, e)
            result.timings["total"] = (time.perf_counter() - t0) * 1000
            return result
        for i, p in zip(read, probs):
            tracker.observe(tracks[i], p, now_ms)
        if read and not still:
            self.scheduler.record(len(read), (t3 - t1) * 1000)
        result.faces = [make_face(track.track_id, d.box, track.probs, self.labels, d.eyes, s.uncertain_below,
                                  age_ms=max(0.0, now_ms - track.read_ms))  # 0 also if time went back
                        for d, track in zip(detections, tracks)]
        t4 = time.perf_counter()
        result.timings.update(detect=(t1 - t0) * 1000, preprocess=(t2 - t1) * 1000,
                              inference=(t3 - t2) * 1000, total=(t4 - t0) * 1000)
        return result

    def _detections(self, frame: np.ndarray, timestamp_ms: int | None, still: bool) -> list:
        """The frame's faces, largest first: searched for, or the last search's where the quality plan allows."""
        s = self._settings
        if not still:
            self._since_search += 1
            if self._held and self._since_search < QUALITY_PLANS[s.quality].detect_every:
                return self._held
        detections = self.detector.detect(frame, timestamp_ms, small_faces=s.small_faces or still)
        detections.sort(key=lambda d: -(d.box[2] * d.box[3]))
        detections = detections[: s.max_faces]
        if not still:
            self._held, self._since_search = detections, 0
        return detections

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the detector (the ONNX session is freed with the object)."""
        self.detector.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
