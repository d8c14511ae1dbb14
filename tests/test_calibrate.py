"""Temperature scaling: the fit finds a known temperature, the folded model divides its logits by it (same
predictions), the calibration error is measured as defined, and the metadata carries T. Mirror averaging folded
into a model gives the mean of both views' probabilities."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from conftest import make_tiny_onnx
from fer_core.session import EmotionClassifier
from training.calibrate import fit_temperature, fold_temperature, reliability, softmax


def test_fit_recovers_the_temperature_of_overconfident_logits():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1.5, (4000, 7))
    labels = np.array([rng.choice(7, p=p) for p in softmax(true)])
    t = fit_temperature(true * 2.5, labels)  # logits 2.5x too sharp
    assert abs(t - 2.5) < 0.25


def test_reliability_of_a_known_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])  # 90% bin: half right; 60% bin: all right
    r = reliability(probs, labels, bins=10)
    assert abs(r["ece"] - (0.5 * 0.4 + 0.5 * 0.4)) < 1e-9 and r["accuracy"] == 0.75


def test_folded_model_divides_its_logits_and_keeps_its_answers(tmp_path):
    src = make_tiny_onnx(tmp_path / "m.onnx")
    out = tmp_path / "cal.onnx"
    fold_temperature(src, out, 2.0, {"test": {"before": {"ece": 0.1}, "after": {"ece": 0.02}}})
    x = np.random.default_rng(1).uniform(-1, 1, (6, 3, 48, 48)).astype(np.float32)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(run(out), run(src) / 2.0, rtol=1e-6)
    meta = EmotionClassifier(out).meta
    assert meta.temperature == 2.0 and "0.1000 -> 0.0200" in meta.extra["calibration"]
    fold_temperature(out, out, 1.5, {"test": {"before": {"ece": 0.1}, "after": {"ece": 0.02}}})
    assert EmotionClassifier(out).meta.temperature == 3.0
    np.testing.assert_allclose(run(out), run(src) / 3.0, rtol=1e-5)


def test_folded_flip_averages_each_face_with_its_mirror_image(tmp_path):
    from training.onnx_graph import fold_flip

    src = make_tiny_onnx(tmp_path / "m.onnx")
    out = tmp_path / "flip.onnx"
    fold_flip(src, out)
    x = np.random.default_rng(2).uniform(-1, 1, (5, 3, 48, 48)).astype(np.float32)
    x[:, :, :, :24] += 0.5  # left and right halves differ, so the mirror image gives other logits
    run = lambda p, a: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": a})[0]
    want = (softmax(run(src, x)) + softmax(run(src, np.ascontiguousarray(x[..., ::-1])))) / 2
    np.testing.assert_allclose(softmax(run(out, x)), want, rtol=1e-5, atol=1e-6)
    clf = EmotionClassifier(out)
    assert clf.meta.extra["tta"] == "flip" and clf.predict_batch(x).shape == (5, 7)
    with pytest.raises(ValueError, match="already"):
        fold_flip(out, tmp_path / "twice.onnx")
