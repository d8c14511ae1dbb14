"""What the pipeline returns: :class:`Face` (one face in one frame) and :class:`FrameResult` (all of a frame's faces
with the stage timings). The one result type of ``fer-run``, ``fer-bench``, the Python API and the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The stages every result times, in milliseconds (``FrameResult.timings``): the one list the benchmark, the
#: command-line summary and the app's readouts use.
STAGES = ("detect", "preprocess", "inference", "total")


@dataclass
class Face:
    """One face: where it is, what it shows and how sure the model is.

    Attributes:
        track_id: the face's id across the frames of a stream; in a photo, 1, 2, ... from the largest face.
        box: (x, y, w, h) in pixels of the image.
        label: the most likely emotion.
        score: its probability.
        probs: every emotion's probability, in the model's label order (``probs["happy"]``).
        eyes: the two eye centres (x, y) when the detector gives them, else ``None``.
        uncertain: the top probability is below the settings' ``uncertain_below``.
        age_ms: how old the reading is: 0 when the face was read in this frame, else the time since it was last
            read (``balanced`` and ``fastest`` read the faces of a crowded frame in turn; the tracker holds the rest).
    """

    track_id: int
    box: tuple[int, int, int, int]
    label: str
    score: float
    probs: dict[str, float]
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    uncertain: bool = False
    age_ms: float = 0.0

    def vector(self) -> np.ndarray:
        """The probabilities as a float32 array, in label order."""
        return np.fromiter(self.probs.values(), np.float32, len(self.probs))

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (JSON-ready)."""
        return {"track_id": self.track_id, "box": list(self.box), "label": self.label, "score": self.score,
                "probs": dict(self.probs), "eyes": [list(e) for e in self.eyes] if self.eyes else None,
                "uncertain": self.uncertain, "age_ms": self.age_ms}


@dataclass
class FrameResult:
    """All faces of a frame, the stage timings in ms and the frame's shape (``()`` for a non-image)."""

    faces: list[Face] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frame_shape: tuple[int, ...] = ()


def make_face(track_id: int, box, probs: np.ndarray, labels: list[str], eyes=None, uncertain_below: float = 0.0,
              age_ms: float = 0.0) -> Face:
    """A :class:`Face` from a probability vector in ``labels`` order (the label is its argmax)."""
    k = int(np.argmax(probs))
    score = float(probs[k])
    return Face(track_id=int(track_id), box=tuple(int(v) for v in box), label=labels[k], score=score,
                probs={name: float(p) for name, p in zip(labels, probs)},
                eyes=tuple((float(x), float(y)) for x, y in eyes) if eyes else None,
                uncertain=score < uncertain_below, age_ms=float(age_ms))
