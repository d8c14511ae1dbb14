"""Tracker: stable ids under motion, exact smoothing, dropping after max_missed."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.tracking import Tracker, iou


def _p(*values) -> np.ndarray:
    return np.array([values], np.float32)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_ids_stable_for_moving_boxes_in_any_order():
    tracker = Tracker(iou_threshold=0.3, smoothing=0.0)
    probs = np.eye(2, dtype=np.float32)
    for step in range(30):
        a = (10 + 4 * step, 50, 80, 80)  # moves right
        b = (400 - 3 * step, 60 + step, 90, 90)  # moves left and down
        boxes = [a, b] if step % 2 == 0 else [b, a]  # detector order changes from frame to frame
        tracks = tracker.update(boxes, probs if step % 2 == 0 else probs[::-1])
        ids = {box: t.track_id for box, t in zip(boxes, tracks)}
        assert ids[a] == 1 and ids[b] == 2
        assert [t.box for t in tracks] == boxes
    assert [t.hits for t in tracker.tracks] == [30, 30]


def test_far_away_box_gets_a_new_id():
    tracker = Tracker()
    assert tracker.update([(0, 0, 50, 50)], _p(1, 0))[0].track_id == 1
    assert tracker.update([(300, 300, 50, 50)], _p(1, 0))[0].track_id == 2


def test_smoothing_is_exponential():
    s = 0.6
    tracker = Tracker(smoothing=s)
    p1, p2, p3 = _p(1, 0, 0), _p(0, 1, 0), _p(0, 0, 1)
    box = [(10, 10, 50, 50)]
    np.testing.assert_array_equal(tracker.update(box, p1)[0].probs, p1[0])  # a new track starts unsmoothed
    expected = s * p1[0] + (1 - s) * p2[0]
    np.testing.assert_allclose(tracker.update(box, p2)[0].probs, expected, rtol=0, atol=1e-7)
    expected = s * expected + (1 - s) * p3[0]
    np.testing.assert_allclose(tracker.update(box, p3)[0].probs, expected, rtol=0, atol=1e-7)


def test_smoothing_off_and_validation():
    tracker = Tracker(smoothing=0.0)
    box = [(10, 10, 50, 50)]
    tracker.update(box, _p(1, 0))
    np.testing.assert_array_equal(tracker.update(box, _p(0.2, 0.8))[0].probs, _p(0.2, 0.8)[0])
    tracker.smoothing = 0.9
    assert tracker.smoothing == 0.9
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="smoothing"):
            tracker.smoothing = bad


def test_track_dropped_after_max_missed():
    tracker = Tracker(max_missed=2)
    box = [(10, 10, 50, 50)]
    assert tracker.update(box, _p(1, 0))[0].track_id == 1
    for missed in (1, 2):
        assert tracker.update([], np.zeros((0, 2), np.float32)) == []
        assert tracker.tracks[0].missed == missed  # still kept
    assert tracker.update(box, _p(1, 0))[0].track_id == 1  # came back in time: same id
    for _ in range(3):
        tracker.update([], np.zeros((0, 2), np.float32))
    assert tracker.tracks == []
    assert tracker.update(box, _p(1, 0))[0].track_id == 2  # too late: a new id


def test_reset():
    tracker = Tracker()
    tracker.update([(0, 0, 10, 10)], _p(1, 0))
    tracker.reset()
    assert tracker.tracks == []
    assert tracker.update([(0, 0, 10, 10)], _p(1, 0))[0].track_id == 1
