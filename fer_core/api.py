"""The Python API: faces and their emotions from your own code, the same path ``fer-run``, ``fer-bench`` and the
app use.

    from fer_core import EmotionRecognizer

    with EmotionRecognizer() as rec:                # the shipped default model, the best available provider
        for face in rec.predict(image_bgr):         # numpy BGR image -> list of Face
            print(face.label, face.score, face.box, face.probs["happy"])
        for frame in rec.stream("clip.mp4"):        # also a camera index, a folder of photos or a URL
            print(frame.index, frame.time_ms, [f.to_dict() for f in frame.faces])

    EmotionRecognizer(model="models/fer_ferplus.onnx", provider="cpu", small_faces=True, smoothing=0.6)

Errors a user can fix (a missing model, a provider that is not there, a source that cannot be read) are
:class:`fer_core.errors.FerError` with a one-line message, as the command-line tools print them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.errors import FerError
from fer_core.image_input import as_bgr_uint8
from fer_core.pipeline import FaceResult, FrameResult, Pipeline
from fer_core.sources import FrameSource, ImageSource, open_source


@dataclass
class Face:
    """One face: where it is, what it shows and how sure the model is.

    Attributes:
        box: (x, y, w, h) in pixels of the image.
        label: the most likely emotion.
        score: its probability.
        probs: every emotion's probability, in the model's label order.
        track_id: the face's id across the frames of a stream; ``None`` for a still image.
        eyes: the two eye centres (x, y) when the detector gives them, else ``None``.
        uncertain: the top probability is below the recogniser's ``uncertain_below``.
    """

    box: tuple[int, int, int, int]
    label: str
    score: float
    probs: dict[str, float]
    track_id: int | None = None
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    uncertain: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (JSON-ready)."""
        d = asdict(self)
        d["box"] = list(self.box)
        d["eyes"] = [list(e) for e in self.eyes] if self.eyes else None
        return d


@dataclass
class StreamFrame:
    """One frame of :meth:`EmotionRecognizer.stream`.

    Attributes:
        index: frame number in the source.
        time_ms: its time (video time for files, wall clock for live sources).
        faces: the faces found.
        image: the frame itself (BGR).
        source: the file a photo of a folder came from, else ``None``.
        result: the pipeline's raw result, with the stage timings (``result.timings``).
    """

    index: int
    time_ms: float
    faces: list[Face]
    image: np.ndarray = field(repr=False)
    source: str | None
    result: FrameResult = field(repr=False)


class EmotionRecognizer(Pipeline):
    """Detect faces and read their emotions in images and streams.

    Args:
        model: ONNX emotion model; ``None`` = the shipped default (``models/fer_realtime.onnx``).
        provider: ONNX Runtime provider: ``"auto"`` (the best available), ``"cpu"``, ``"cuda"``, ...
        face_model: BlazeFace ``.tflite``; ``None`` finds it (``$FER_FACE_MODEL``, the user cache, a download).
        small_faces: also search tiles of each frame for faces far from the camera (slower).
        smoothing: per-face smoothing of the probabilities across the frames of a stream, 0 = off.
        align: turn faces upright by their eyes before reading them.
        min_confidence: minimum face-detection score.
        uncertain_below: a face whose top probability is below this is marked ``uncertain``.
        equalize: histogram equalisation of the face crops (as in training).

    Raises:
        FerError: the model or the provider cannot be used (a one-line message).
    """

    def __init__(self, model: str | Path | None = None, provider: str = "auto", face_model: str | Path | None = None,
                 small_faces: bool = False, smoothing: float = 0.6, align: bool = True, min_confidence: float = 0.5,
                 uncertain_below: float = 0.4, equalize: bool = True, running_mode: str = "video") -> None:
        self._closed = False
        super().__init__(model_path=model, provider=provider, face_model=face_model, min_confidence=min_confidence,
                         smoothing=smoothing, equalize=equalize, running_mode=running_mode, small_faces=small_faces,
                         align=align, uncertain_below=uncertain_below)

    def faces(self, result: FrameResult, still: bool = False) -> list[Face]:
        """The :class:`Face` objects of a pipeline result."""
        return [self._face(f, still) for f in result.faces]

    def _face(self, f: FaceResult, still: bool) -> Face:
        return Face(box=tuple(int(v) for v in f.box), label=f.label, score=float(f.score),
                    probs={name: float(p) for name, p in zip(self.labels, f.probs)},
                    track_id=None if still else int(f.track_id),
                    eyes=tuple((float(x), float(y)) for x, y in f.eyes) if f.eyes else None,
                    uncertain=bool(f.uncertain))

    def predict(self, image: np.ndarray) -> list[Face]:
        """The faces of one image, on its own: no tracking, no smoothing.

        Args:
            image: a numpy image, BGR (H, W, 3), BGRA (H, W, 4) or grey (H, W); uint8, float in [0, 1] (x255),
                float in [0, 255], uint16 (>> 8) or other integers in 0..255 (see :mod:`fer_core.image_input`).

        Raises:
            TypeError: not a numpy array.
            FerError: an array that is no image (bool, NaN or inf, not 2-D / 3-D, empty, out of range), or the
                recogniser is closed.
        """
        self._check_open()
        return self.faces(self.process(as_bgr_uint8(image), still=True), still=True)

    def close(self) -> None:
        """Release the face detector; :meth:`predict` and :meth:`stream` raise :class:`FerError` afterwards."""
        self._closed = True
        super().close()

    def _check_open(self) -> None:
        if self._closed:
            raise FerError("this EmotionRecognizer is closed (after close() or its with-block); make a new one")

    def stream(self, source: str | int | Path | FrameSource) -> Iterator[StreamFrame]:
        """Frames and their faces from a camera index, a video file, an image, a folder of photos or a URL.

        Photos of a folder are independent (no tracking or smoothing across them); the frames of a video or
        a camera are tracked (``Face.track_id``) and smoothed. A source opened here is closed at the end.

        Raises:
            FerError: the source does not exist or cannot be read, or the recogniser is closed.
        """
        self._check_open()
        src = source if isinstance(source, FrameSource) else open_source(source)
        still = isinstance(src, ImageSource)
        self.reset()
        try:
            for index, time_ms, image in src:
                result = self.process(image, int(time_ms), still=still)
                yield StreamFrame(index=index, time_ms=float(time_ms), faces=self.faces(result, still),
                                  image=image, source=str(src.last_path) if still else None, result=result)
        finally:
            if src is not source:
                src.close()
