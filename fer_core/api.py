"""The Python API: faces and their emotions from your own code, the same path ``fer-run``, ``fer-bench`` and the
app use.

    from fer_core import EmotionRecognizer

    with EmotionRecognizer() as rec:                # the shipped default model, the best available provider
        for face in rec.predict(image_bgr):         # numpy BGR image -> list of Face
            print(face.label, face.score, face.box, face.probs["happy"])
        for frame in rec.stream("clip.mp4"):        # also a camera index, a folder of photos or a URL
            print(frame.index, frame.time_ms, [f.to_dict() for f in frame.faces])

    EmotionRecognizer(model="models/fer_ferplus.onnx", provider="cpu", small_faces=True, smoothing=0.6)
    EmotionRecognizer(settings=PipelineSettings(quality="fastest"))     # the same, as one settings object

The faces are :class:`fer_core.results.Face` (the one face type of every tool); the settings are
:class:`fer_core.settings.PipelineSettings`, whose defaults every front door shares.

Errors a user can fix (a missing model, a provider that is not there, a source that cannot be read) are
:class:`fer_core.errors.FerError` with a one-line message, as the command-line tools print them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.errors import FerError
from fer_core.image_input import as_bgr_uint8
from fer_core.pipeline import Pipeline
from fer_core.results import Face, FrameResult
from fer_core.settings import PipelineSettings
from fer_core.sources import FrameSource, ImageSource, open_source


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
    """Detect faces and read their emotions in images and streams: the front door of :class:`Pipeline`.

    Args:
        model: ONNX emotion model; ``None`` = the shipped default (``models/fer_realtime.onnx``). The model's own
            metadata decides its preprocessing (grey, equalisation, size).
        settings: a :class:`PipelineSettings`; ``None`` = the defaults.
        provider: ONNX Runtime provider: ``"auto"`` (the best available), ``"cpu"``, ``"cuda"``, ...
        face_model: BlazeFace ``.tflite``; ``None`` finds it (``$FER_FACE_MODEL``, the user cache, a download).
        running_mode: ``"video"`` (default) or ``"image"`` for the face detector.
        **changes: settings to change from ``settings`` by name: ``small_faces``, ``smoothing``, ``align``,
            ``min_confidence``, ``uncertain_below``, ``max_faces``, ``quality`` (see :class:`PipelineSettings`).

    Raises:
        FerError: the model or the provider cannot be used, or a setting is out of range (a one-line message).
    """

    def __init__(self, model: str | Path | None = None, settings: PipelineSettings | None = None, *,
                 provider: str = "auto", face_model: str | Path | None = None, running_mode: str = "video",
                 **changes: Any) -> None:
        self._closed = False
        settings = (settings or PipelineSettings()).replace(**changes) if changes else settings
        super().__init__(model, settings, provider=provider, face_model=face_model, running_mode=running_mode)

    def predict(self, image: np.ndarray) -> list[Face]:
        """The faces of one image, on its own: searched for small faces too, no tracking, no smoothing (ids from 1).

        Args:
            image: a numpy image, BGR (H, W, 3), BGRA (H, W, 4) or grey (H, W); uint8, float in [0, 1] (x255),
                float in [0, 255], uint16 (>> 8) or other integers in 0..255 (see :mod:`fer_core.image_input`).

        Raises:
            TypeError: not a numpy array.
            FerError: an array that is no image (bool, NaN or inf, not 2-D / 3-D, empty, out of range), or the
                recogniser is closed.
        """
        self._check_open()
        return self.process(as_bgr_uint8(image), still=True).faces

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
                yield StreamFrame(index=index, time_ms=float(time_ms), faces=result.faces,
                                  image=image, source=str(src.last_path) if still else None, result=result)
        finally:
            if src is not source:
                src.close()
