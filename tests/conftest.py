"""Shared test fixtures: paths to the real data in ../shared and a tiny ONNX model built without torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
FACE_MODEL = SHARED / "models" / "blaze_face_short_range.tflite"

if FACE_MODEL.exists():
    os.environ.setdefault("FER_FACE_MODEL", str(FACE_MODEL))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Root of the real datasets (``../shared/data``); skips when absent."""
    if not DATA.exists():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def fer2013_root(data_root: Path) -> Path:
    return data_root / "fer2013"


@pytest.fixture(scope="session")
def ferplus_root(data_root: Path) -> Path:
    return data_root / "ferplus"


@pytest.fixture(scope="session")
def face_model_path() -> Path:
    """MediaPipe BlazeFace short-range model from ../shared/models; skips when absent."""
    if not FACE_MODEL.exists():
        pytest.skip(f"face detector model not found at {FACE_MODEL}")
    return FACE_MODEL


def make_tiny_onnx(path: Path, labels: list[str] | None = None, size: int = 48, with_meta: bool = True,
                   equalize: bool = True) -> Path:
    """Write a tiny ONNX classifier (global mean of the 3 channels -> linear -> logits) with ``onnx.helper``;
    ``equalize`` is its ``fer.equalize`` metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fer_core.labels import FER2013_CLASSES
    from fer_core.model_meta import ModelMeta

    labels = list(labels or FER2013_CLASSES)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, len(labels))).astype(np.float32)
    b = np.linspace(-0.5, 0.5, len(labels)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_fer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if with_meta:
        meta = ModelMeta(labels=labels, input_size=size, model="tiny_test", data="synthetic", equalize=equalize)
        for k, v in meta.to_props().items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """Path to a tiny 7-class ONNX model with full metadata."""
    return make_tiny_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture
def settings(tiny_onnx, face_model_path):
    """The app worker's settings for tests: the tiny model on the CPU, the real detector, video unpaced."""
    from app.worker import WorkerSettings

    return WorkerSettings(model_path=str(tiny_onnx), provider="cpu", face_model=str(face_model_path),
                          pace_video=False)


def count_frames(path: Path) -> int:
    """How many frames of the video at ``path`` decode, from the start until the first that does not."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def write_video(path: Path, frames: list[np.ndarray], fps: float = 20.0) -> Path:
    """Write ``frames`` (BGR, all one size) to ``path``: Motion JPEG for ``.avi``, MPEG-4 Part 2 otherwise."""
    import cv2

    h, w = frames[0].shape[:2]
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
