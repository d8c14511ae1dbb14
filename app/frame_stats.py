"""What the worker says about each frame it sends: :class:`FrameStats`, the third argument of ``frame_ready``.

One typed record instead of a dict of strings, so a reader cannot ask for a key nobody writes. The defaults
describe "nothing yet" (no model, no frame), which is what the window holds before the first frame comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_core.results import STAGES, FrameResult

# What the frame on show is: frames coming in, the user paused, the file or stream ended, a photo, or no model.
STATES = ("running", "paused", "ended", "still", "no model")
# Why Record is refused, by that state (see nothing_to_record).
_NOTHING_TO_RECORD = {"ended": "the video has ended", "still": "a photo is on show (Snapshot saves it)"}


def nothing_to_record(state: str) -> str:
    """The message that refuses Record when the frame on show is in ``state`` (no new frame will come)."""
    return f"Nothing to record: {_NOTHING_TO_RECORD.get(state, 'no new frame will come')}."


@dataclass(frozen=True)
class FrameStats:
    """The readouts of one frame.

    Attributes:
        state: one of :data:`STATES`.
        capture_fps: frames read from the source per second; ``None`` unless ``state`` is ``running``.
        processed_fps: frames processed per second, never above ``capture_fps``; ``None`` unless ``running``.
        detect_ms, preprocess_ms, inference_ms, total_ms: the frame's stage timings; ``None`` without a model.
        faces: faces found; ``None`` without a model (nothing was looked for).
        model: file name of the classifier in use, ``"none"`` without one.
        provider: ONNX Runtime provider in use, ``"none"`` without a model.
        detector: face-detector backend (``mediapipe`` or ``haar``), ``"none"`` without a model.
        selected_track: the face shown in the side panel (the chosen one, else the largest); ``None``: no face.
        frame_index: the frame's index in its source.
        time_ms: the frame's time in its source.
        frames_processed: new frames processed since the source opened.
        dropped: frames never processed (the camera was faster, or the window was behind).
        source: the source in words (``camera 0``, a file name, a URL).
        live: the source is a camera or a stream.
        recording: a recording is being written.
        can_record: a recording started now would get frames (not at the end of a file, a photo or a stream).
        labels: the model's class names in output order (empty without a model).
    """

    state: str = "no model"
    capture_fps: float | None = None
    processed_fps: float | None = None
    detect_ms: float | None = None
    preprocess_ms: float | None = None
    inference_ms: float | None = None
    total_ms: float | None = None
    faces: int | None = None
    model: str = "none"
    provider: str = "none"
    detector: str = "none"
    selected_track: int | None = None
    frame_index: int = 0
    time_ms: float = 0.0
    frames_processed: int = 0
    dropped: int = 0
    source: str = ""
    live: bool = False
    recording: bool = False
    can_record: bool = False
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")

    @classmethod
    def of(cls, state: str, result: FrameResult, pipeline: Any, rates: tuple[float, float] | None,
           **fields: Any) -> FrameStats:
        """The stats of a frame: ``state``, its ``result`` (faces, stage timings), the ``pipeline`` in use
        (``None``: no model), the ``(capture, processed)`` rates when running, and the other fields by name."""
        p = pipeline
        timings = {f"{stage}_ms": float(result.timings[stage]) if stage in result.timings else None
                   for stage in STAGES}
        return cls(state=state, capture_fps=rates[0] if rates else None, processed_fps=rates[1] if rates else None,
                   faces=len(result.faces) if p is not None else None,
                   model=Path(str(p.model_path)).name if p else "none", provider=p.provider if p else "none",
                   detector=p.detector_backend if p else "none", labels=list(p.labels) if p else [],
                   **timings, **fields)


def selected_face(result: FrameResult, wanted: int | None) -> int | None:
    """The face for the side panel: the ``wanted`` track when it is in the frame, else the largest face (``None``
    without faces)."""
    if wanted is not None and any(f.track_id == wanted for f in result.faces):
        return wanted
    if not result.faces:
        return None
    return max(result.faces, key=lambda f: f.box[2] * f.box[3]).track_id
