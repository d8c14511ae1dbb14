"""Stable face ids across frames (greedy IoU matching), per-face smoothing of the probabilities, and which faces
to read when a frame cannot read them all in time (:class:`ReadScheduler`)."""

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
        read_ms: when its face was last read (classified), in the caller's clock; ``None`` before the first.
    """

    track_id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray | None
    hits: int = 1
    missed: int = 0
    read_ms: float | None = None


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
        """Feed one frame whose faces were all read: :meth:`match`, then :meth:`observe` for each.

        Args:
            boxes: this frame's face boxes (x, y, w, h).
            probs: (len(boxes), C) class probabilities of those faces.

        Returns:
            One track per input box, in the order of ``boxes``, with smoothed probabilities.
        """
        probs = np.asarray(probs, np.float32)
        if len(boxes):
            probs = probs.reshape(len(boxes), -1)
        tracks = self.match(boxes)
        for track, current in zip(tracks, probs):
            self.observe(track, current)
        return tracks

    def match(self, boxes: list[tuple[int, int, int, int]]) -> list[Track]:
        """Match one frame's boxes to the tracks; a box without a track starts one (``probs`` and ``read_ms``
        None until :meth:`observe`). Tracks not seen count a miss and are dropped after ``max_missed``.

        Returns:
            One track per box, in the order of ``boxes``; a matched track keeps the probabilities it holds.
        """
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
        for bi, box in enumerate(boxes):
            track = matched.get(bi)
            if track is None:
                track = Track(self._next_id, tuple(box), None)
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.box, track.hits, track.missed = tuple(box), track.hits + 1, 0
            result.append(track)
        seen = {id(t) for t in result}
        for track in self.tracks:
            if id(track) not in seen:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return result

    def observe(self, track: Track, probs: np.ndarray, now_ms: float = 0.0) -> None:
        """A new reading of a track's face: smooth it into the track's probabilities and note when it was read."""
        current = np.asarray(probs, np.float32).reshape(-1).copy()
        s = self._smoothing
        if track.probs is not None and track.probs.shape == current.shape:
            track.probs = s * track.probs + (1.0 - s) * current
        else:  # a new track, or the model changed: start over
            track.probs = current
        track.read_ms = float(now_ms)


class ReadScheduler:
    """Which of a frame's faces to read when reading them all would take the frame past its time budget.

    Faces without a reading yet (new tracks) are always read; the others are read oldest reading first, as many
    as the time left allows (at least one a frame), so in a crowded frame they take turns and each one's
    reading ages (``Face.age_ms``) until its turn comes. The tracker holds the last probabilities meanwhile.

    Attributes:
        budget_ms: the frame's time budget in ms; ``None`` reads every face every frame.
        face_ms: the estimated cost of reading one face (preprocessing and inference, ms): a running mean of
            :meth:`record`; ``None`` until the first reading, which reads every face.
    """

    def __init__(self, budget_ms: float | None = None) -> None:
        self.budget_ms = budget_ms
        self.face_ms: float | None = None

    def choose(self, tracks: list[Track], spent_ms: float = 0.0) -> list[int]:
        """The indices of the faces to read this frame, in order.

        Args:
            tracks: the frame's tracks (:meth:`Tracker.match`), largest face first.
            spent_ms: the frame's time already spent (detection, cropping).
        """
        everyone = list(range(len(tracks)))
        if self.budget_ms is None or self.face_ms is None or not tracks:
            return everyone
        new = [i for i in everyone if tracks[i].read_ms is None]
        room = max(int((self.budget_ms - spent_ms) // max(self.face_ms, 1e-3)), len(new), 1)
        if room >= len(tracks):
            return everyone
        held = sorted((i for i in everyone if tracks[i].read_ms is not None), key=lambda i: (tracks[i].read_ms, i))
        return sorted(new + held[: room - len(new)])

    def record(self, faces: int, ms: float) -> None:
        """Note that reading ``faces`` faces took ``ms`` (updates :attr:`face_ms`)."""
        if faces > 0:
            cost = ms / faces
            self.face_ms = cost if self.face_ms is None else 0.8 * self.face_ms + 0.2 * cost
