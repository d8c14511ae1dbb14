"""EmotionClassifier: loading, metadata, providers, batching, and clear errors for bad model files."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import make_tiny_onnx
from onnx import TensorProto, helper, numpy_helper

from fer_core.labels import FER2013_CLASSES
from fer_core.session import (
    EmotionClassifier,
    ModelLoadError,
    ProviderError,
    available_providers,
    resolve_providers,
)


def _crops(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size=(40 + 10 * i, 40 + 10 * i, 3), dtype=np.uint8) for i in range(n)]


def _save(model: onnx.ModelProto, path) -> str:
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_loads_metadata_and_predicts_a_batch(tiny_onnx):
    clf = EmotionClassifier(tiny_onnx, provider="cpu")
    assert clf.labels == list(FER2013_CLASSES)
    assert clf.input_size == 48
    assert clf.provider == "CPUExecutionProvider"
    assert clf.meta.model == "tiny_test"
    batch = clf.preprocess(_crops(3))
    assert batch.shape == (3, 3, 48, 48) and batch.dtype == np.float32
    probs = clf.predict_batch(batch)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(clf.predict(_crops(3)), probs, atol=1e-6)
    assert clf.predict([]).shape == (0, 7)


def test_auto_provider_ends_on_a_working_provider_without_error_spam(tiny_onnx, capfd):
    clf = EmotionClassifier(tiny_onnx)  # onnxruntime-gpu lists CUDA/TensorRT even without a GPU
    out, err = capfd.readouterr()
    assert clf.provider in clf.session.get_providers()
    assert clf.provider == resolve_providers("auto")[0]
    assert "EP Error" not in out + err and "Failed to load library" not in err
    assert available_providers()[-1] == "cpu"


def test_unknown_and_unavailable_providers_give_clear_errors(tiny_onnx):
    with pytest.raises(ProviderError, match="unknown execution provider 'gpu'.*cpu"):
        EmotionClassifier(tiny_onnx, provider="gpu")
    for name in ("directml", "coreml", "cuda", "tensorrt"):
        if name in available_providers():
            continue
        with pytest.raises(ProviderError, match=f"'{name}'.*not available.*Usable here: .*cpu"):
            EmotionClassifier(tiny_onnx, provider=name)
    assert resolve_providers("CPUExecutionProvider") == ["CPUExecutionProvider"]


def test_model_without_metadata_loads_with_defaults(tmp_path, caplog):
    path = make_tiny_onnx(tmp_path / "bare.onnx", size=40, with_meta=False)
    with caplog.at_level("WARNING"):
        clf = EmotionClassifier(path, provider="cpu")
    assert clf.labels == list(FER2013_CLASSES)
    assert clf.input_size == 40  # from the graph
    assert "no fer.labels metadata" in caplog.text
    assert clf.predict(_crops(2)).shape == (2, 7)


def test_fixed_batch_of_one_is_fed_in_a_loop(tmp_path, tiny_onnx):
    path = make_tiny_onnx(tmp_path / "fixed.onnx")
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    clf = EmotionClassifier(_save(model, path), provider="cpu")
    reference = EmotionClassifier(tiny_onnx, provider="cpu")
    crops = _crops(3)
    np.testing.assert_allclose(clf.predict(crops), reference.predict(crops), atol=1e-6)


def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match="nope.onnx: model file not found"):
        EmotionClassifier(missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf \x00\x01\x02" * 10)
    with pytest.raises(ModelLoadError, match="corrupt.onnx: cannot load ONNX model"):
        EmotionClassifier(corrupt, provider="cpu")


def test_wrong_input_rank(tmp_path):
    w = numpy_helper.from_array(np.ones((10, 7), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits"])],
        "flat",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 7])],
        initializer=[w],
    )
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "rank2.onnx")
    with pytest.raises(ModelLoadError, match="rank2.onnx: input 'input' has rank 2"):
        EmotionClassifier(path, provider="cpu")


def test_label_count_mismatch(tmp_path):
    path = make_tiny_onnx(tmp_path / "eight.onnx", labels=list(FER2013_CLASSES) + ["contempt"])
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "fer.labels":
            prop.value = json.dumps(list(FER2013_CLASSES))  # 7 labels for 8 outputs
    with pytest.raises(ModelLoadError, match="eight.onnx: the model outputs 8 classes but its labels list 7"):
        EmotionClassifier(_save(model, path), provider="cpu")
    bare = make_tiny_onnx(tmp_path / "bare8.onnx", labels=list(FER2013_CLASSES) + ["contempt"], with_meta=False)
    with pytest.raises(ModelLoadError, match="outputs 8 classes"):
        EmotionClassifier(bare, provider="cpu")


def test_metadata_size_must_match_the_graph(tmp_path):
    path = make_tiny_onnx(tmp_path / "size.onnx", size=48)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "fer.input_size":
            prop.value = "64"
    with pytest.raises(ModelLoadError, match="metadata says input size 64 but the graph input is 48x48"):
        EmotionClassifier(_save(model, path), provider="cpu")


def test_equalize_override(tiny_onnx):
    clf = EmotionClassifier(tiny_onnx, provider="cpu")
    crop = np.full((50, 50), 60, np.uint8)
    crop[:, 25:] = 90
    on, off = clf.preprocess([crop], equalize=True), clf.preprocess([crop], equalize=False)
    assert not np.allclose(on, off)
    np.testing.assert_allclose(clf.preprocess([crop]), on)  # default follows the metadata (equalize=True)


def test_provider_that_fails_to_start_is_reported(tiny_onnx, monkeypatch):
    """Where onnxruntime lists CUDA but it cannot start (no GPU), even a passed probe must not hide it."""
    import onnxruntime as ort

    import fer_core.session as session

    if "CUDAExecutionProvider" not in ort.get_available_providers() or "cuda" in available_providers():
        pytest.skip("needs an onnxruntime that lists CUDA on a machine where it cannot run")
    monkeypatch.setattr(session, "provider_problem",
                        lambda ep: None if ep in ("CUDAExecutionProvider", "CPUExecutionProvider") else "absent")
    with pytest.raises(ProviderError, match="'cuda' could not be initialised.*CPUExecutionProvider"):
        EmotionClassifier(tiny_onnx, provider="cuda")
    clf = EmotionClassifier(tiny_onnx, provider="auto")  # auto: quietly ends on the CPU
    assert clf.provider == "CPUExecutionProvider"
