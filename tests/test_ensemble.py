"""The ensemble ONNX builder: one graph whose softmax is the average of its members' probabilities."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from conftest import make_tiny_onnx
from fer_core.probs import softmax
from fer_core.session import EmotionClassifier
from training.ensemble import EnsembleError, build_ensemble


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _other_weights(path):
    model = onnx.load(str(path))
    w = model.graph.initializer[0]
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * -2.0 + 0.3, w.name))
    onnx.save(model, str(path))
    return path


def test_ensemble_averages_member_probabilities(tmp_path):
    a = make_tiny_onnx(tmp_path / "a.onnx")
    b = _other_weights(make_tiny_onnx(tmp_path / "b.onnx"))
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 48, 48)).astype(np.float32)
    pa, pb = softmax(_run(a, x)), softmax(_run(b, x))
    assert not np.allclose(pa, pb)
    out = build_ensemble([a, b], tmp_path / "ens.onnx", weights=[3, 1])
    np.testing.assert_allclose(softmax(_run(out, x)), 0.75 * pa + 0.25 * pb, atol=1e-5)
    clf = EmotionClassifier(out)  # the inference core reads it like any model
    assert clf.meta.model == "ensemble(tiny_test+tiny_test)" and clf.meta.input_size == 48


def test_ensemble_refuses_members_that_disagree(tmp_path):
    a = make_tiny_onnx(tmp_path / "a.onnx")
    b = make_tiny_onnx(tmp_path / "b.onnx", labels=["happy", "sad", "neutral"])
    with pytest.raises(EnsembleError, match="labels"):
        build_ensemble([a, b], tmp_path / "x.onnx")
    with pytest.raises(EnsembleError, match="at least two"):
        build_ensemble([a], tmp_path / "x.onnx")
