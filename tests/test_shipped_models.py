"""Every model in ``models/`` loads with ``fer_core``, describes itself, has its card, and classifies real faces.

These tests check the prediction path of the shipped files, not an accuracy figure: the accuracies are in the
model cards, measured by the ``fer-eval`` commands written there.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fer_core import model_zoo
from fer_core.labels import CANONICAL_CLASSES, normalize_label
from fer_core.session import EmotionClassifier

SHIPPED = model_zoo.list_shipped_models()
MAX_BYTES = 60 * 1024 * 1024


def test_default_model_is_shipped(monkeypatch):
    monkeypatch.delenv(model_zoo.ENV_VAR, raising=False)
    path = model_zoo.default_model_path()
    assert path == model_zoo.MODELS_DIR / model_zoo.DEFAULT_MODEL_NAME and path in SHIPPED


@pytest.fixture(scope="module")
def private_test_faces(fer2013_root) -> tuple[list[np.ndarray], list[str]]:
    """Two PrivateTest faces of every FER2013 class, as the grey JPEGs users have."""
    faces, names = [], []
    for folder in sorted((fer2013_root / "test").iterdir()):
        for path in sorted(folder.glob("PrivateTest_*.jpg"))[:2]:
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            assert img is not None, path
            faces.append(img)
            names.append(normalize_label(folder.name))
    return faces, names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_card_and_metadata(path):
    assert path.stat().st_size <= MAX_BYTES
    card, metrics = path.with_suffix(".md"), path.with_suffix(".json")
    assert card.is_file() and metrics.is_file(), f"{path.name} needs its model card and metrics JSON"
    figures = json.loads(metrics.read_text())
    assert figures["model_file"] == path.name
    assert {s["split"] for s in figures["eval"]["splits"]} >= {"test", "val"}
    assert (path.parent / f"{path.stem}_confusion.png").is_file()
    clf = EmotionClassifier(path, provider="cpu", threads=1)
    assert clf.labels == figures["labels"] and set(clf.labels) <= set(CANONICAL_CLASSES)
    assert len(set(clf.labels)) == len(clf.labels) >= 7
    assert clf.input_size == figures["input_size"] and 32 <= clf.input_size <= 320
    assert clf.meta.model == figures["architecture"] and clf.meta.model.startswith(("emonext", "ctan"))
    assert clf.meta.data != "unknown" and clf.meta.gray and clf.meta.equalize


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_classifies_real_faces(path, private_test_faces):
    faces, _ = private_test_faces
    clf = EmotionClassifier(path, provider="cpu", threads=1)
    probs = clf.predict(faces)
    assert probs.shape == (len(faces), len(clf.labels)) and probs.dtype == np.float32
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    # The same face gives the same answer alone and in a batch, and a model that answers every face of
    # every class with one label is broken.
    np.testing.assert_allclose(clf.predict(faces[:1])[0], probs[0], atol=1e-4)
    assert len(set(probs.argmax(axis=1))) > 1


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_stores_weights_as_fp16(path, tmp_path):
    """Shipped files keep their weights as float16 (half the travel size) and ONNX Runtime folds the Casts back
    to float32 at load: the optimised graph holds no float16 tensor and no Cast of a weight."""
    import onnx
    import onnxruntime as ort

    from training.onnx_graph import fp16_stored

    model = onnx.load(str(path))
    assert fp16_stored(model)
    half = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert half >= 40 and {p.key: p.value for p in model.metadata_props}["weights_storage"] == "fp16"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # constant folding included
    opts.optimized_model_filepath = str(tmp_path / "optimised.onnx")  # not beside the shipped file
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    folded = onnx.load(opts.optimized_model_filepath)
    assert not any(t.data_type == onnx.TensorProto.FLOAT16 for t in folded.graph.initializer)
    assert not any(n.op_type == "Cast" and n.input[0].endswith("_fp16") for n in folded.graph.node)
