"""Temperature scaling: the fit finds a known temperature, the folded model divides its logits by it (same
predictions), the calibration error is measured as defined, and the metadata carries T. Mirror averaging folded
into a model gives the mean of both views' probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from conftest import make_tiny_onnx
from fer_core.probs import softmax
from fer_core.session import EmotionClassifier
from training.calibrate import fit_temperature, fold_temperature, reliability


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


def _lopsided_onnx(path: Path) -> Path:
    """The tiny model with its pixels weighted by a left-to-right ramp before the mean: unlike the plain tiny
    model (a global mean, the same for a face and its mirror image), a mirror image gives it other logits."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(make_tiny_onnx(path)))
    graph = model.graph
    ramp = np.linspace(-2.0, 2.0, 48, dtype=np.float32).reshape(1, 1, 1, 48)
    graph.initializer.append(numpy_helper.from_array(ramp, "ramp"))
    graph.node[0].input[0] = "weighted"
    graph.node.insert(0, helper.make_node("Mul", ["input", "ramp"], ["weighted"]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _check_flip_fold(fold, tmp_path: Path) -> None:
    """``fold(src, dst)`` gives, for every face, the mean of the model's probabilities on it and on its mirror."""
    src = _lopsided_onnx(tmp_path / "m.onnx")
    out = tmp_path / "flip.onnx"
    fold(src, out)
    x = np.random.default_rng(2).uniform(-1, 1, (5, 3, 48, 48)).astype(np.float32)
    x[:, :, :, :24] += 1.0  # a brighter left half
    run = lambda p, a: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": a})[0]
    plain, mirrored = softmax(run(src, x)), softmax(run(src, np.ascontiguousarray(x[..., ::-1])))
    assert np.abs(plain - mirrored).max() > 0.1  # the model sees the mirror image differently
    got = softmax(run(out, x))
    np.testing.assert_allclose(got, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    assert np.abs(got - plain).max() > 0.05  # so the folded model is not the plain one
    clf = EmotionClassifier(out)
    assert clf.meta.extra["tta"] == "flip" and clf.predict_batch(x).shape == (5, 7)


def test_folded_flip_averages_each_face_with_its_mirror_image(tmp_path):
    from training.mirror_fold import fold_flip

    _check_flip_fold(fold_flip, tmp_path)
    with pytest.raises(ValueError, match="already"):
        fold_flip(tmp_path / "flip.onnx", tmp_path / "twice.onnx")


def test_a_temperature_after_the_fold_scales_the_averaged_path_only(tmp_path):
    """Calibrating a folded model divides the averaged logits, which it measured; one view keeps its own."""
    from training.calibrate import fold_temperature
    from training.mirror_fold import fold_flip

    src = _lopsided_onnx(tmp_path / "m.onnx")
    fold_flip(src, tmp_path / "flip.onnx")
    fold_temperature(tmp_path / "flip.onnx", tmp_path / "t.onnx", 2.0, {"test": {"before": {"ece": 0.2},
                                                                                  "after": {"ece": 0.1}}})
    x = np.random.default_rng(4).uniform(-1, 1, (3, 3, 48, 48)).astype(np.float32)

    def run(path: Path, mirror: bool) -> np.ndarray:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": x, "mirror": np.array(mirror)})[0]

    np.testing.assert_allclose(run(tmp_path / "t.onnx", True), run(tmp_path / "flip.onnx", True) / 2.0, rtol=1e-6)
    np.testing.assert_array_equal(run(tmp_path / "t.onnx", False), run(tmp_path / "flip.onnx", False))
    plain = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_array_equal(run(tmp_path / "t.onnx", False), plain)


def test_the_flip_check_fails_for_a_fold_that_only_sets_the_metadata(tmp_path):
    import onnx

    from training.onnx_graph import save_with_metadata

    def no_op(src: Path, dst: Path) -> None:
        model = onnx.load(str(src))
        save_with_metadata(model, dict({p.key: p.value for p in model.metadata_props}, tta="flip"), dst)

    with pytest.raises(AssertionError):
        _check_flip_fold(no_op, tmp_path)
