"""Knowledge kept in one place: the image file suffixes and the softmax live in ``fer_core``; training uses them."""

from __future__ import annotations

import numpy as np

from fer_core.probs import softmax
from fer_core.sources import IMAGE_EXTS


def test_softmax_sums_to_one_along_the_class_axis_and_survives_large_logits():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 990.0]], np.float32)
    p = softmax(z)
    assert p.dtype == np.float32 and np.allclose(p.sum(1), 1.0) and np.isfinite(p).all()
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(softmax(z.T, axis=0), p.T, rtol=1e-6)


def test_training_uses_the_core_definitions():
    from training import calibrate, teacher_logits
    from training.data import listing

    assert listing.IMAGE_EXTS is IMAGE_EXTS
    assert {".jpg", ".jpeg", ".png", ".webp", ".pgm", ".jp2"} <= IMAGE_EXTS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTS)
    assert calibrate.softmax is softmax and teacher_logits.softmax is softmax
