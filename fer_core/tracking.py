"""Stable face ids across frames (greedy IoU matching) and per-face smoothing of the probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Track:
    """One face followed over frames.

    Attributes:
        track_id: stable id, counting up from 1.
        box: last matched (x, y, w, h).
        probs: exponentially smoothed class probabilities.
        hits: frames the face was seen in.
        missed: consecutive frames it was not seen (0 when seen this frame).
    """

    track_id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray
    hits: int = 1
    missed: int = 0


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """Match each frame's boxes to the previous tracks and smooth their probabilities.

    Matching is greedy: box-track pairs are taken in order of decreasing IoU, each pair needing at least
    ``iou_threshold``. Smoothing: ``new = s * old + (1 - s) * current`` with ``s = smoothing``; 0 turns
    it off. A track survives up to ``max_missed`` frames without its face and is dropped on the next.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10, smoothing: float = 0.6) -> None:
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    @property
    def smoothing(self) -> float:
        """Smoothing strength in [0, 1)."""
        return self._smoothing

    @smoothing.setter
    def smoothing(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {value}")
        self._smoothing = value

    def reset(self) -> None:
        """Forget all tracks (e.g. for a new video); ids start at 1 again."""
        self.tracks = []
        self._next_id = 1

    def update(self, boxes: list[tuple[int, int, int, int]], probs: np.ndarray) -> list[Track]:
        """Feed one frame.

        Args:
            boxes: this frame's face boxes (x, y, w, h).
            probs: (len(boxes), C) class probabilities of those faces.

        Returns:
            One track per input box, in the order of ``boxes``, with smoothed probabilities.
        """
        probs = np.asarray(probs, np.float32)
        if len(boxes):
            probs = probs.reshape(len(boxes), -1)
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        matched: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or bi in matched:
                continue
            used_tracks.add(ti)
            matched[bi] = self.tracks[ti]

        result = []
        s = self._smoothing
        for bi, box in enumerate(boxes):
            current = probs[bi].copy()
            track = matched.get(bi)
            if track is None:
                track = Track(self._next_id, tuple(box), current)
                self._next_id += 1
                self.tracks.append(track)
            else:
                if track.probs.shape == current.shape:
                    track.probs = s * track.probs + (1.0 - s) * current
                else:  # the model changed: start over
                    track.probs = current
                track.box, track.hits, track.missed = tuple(box), track.hits + 1, 0
            result.append(track)
        seen = {id(t) for t in result}
        for track in self.tracks:
            if id(track) not in seen:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return result
