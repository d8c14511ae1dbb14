"""Pipeline end to end on real photos with the tiny ONNX model, bad frames, drawing and the model zoo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

import fer_core.model_zoo as model_zoo
from fer_core.draw import draw_results
from fer_core.pipeline import FrameResult, Pipeline
from fer_core.settings import PipelineSettings, SettingsError
from fer_core.session import ModelLoadError

TIMINGS = {"detect", "preprocess", "inference", "total"}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def four_faces(astronaut) -> np.ndarray:
    """460x460 frame with four copies of the astronaut's head at different sizes."""
    head = astronaut[20:250, 110:340]
    frame = np.zeros((460, 460, 3), np.uint8)
    frame[:230, :230] = head
    frame[:230, 230:] = cv2.flip(head, 1)
    frame[250:440, 20:210] = cv2.resize(head, (190, 190))
    frame[270:430, 260:420] = cv2.resize(head, (160, 160))
    return frame


@pytest.fixture(scope="module")
def pipe(tiny_onnx, face_model_path):
    with Pipeline(tiny_onnx, PipelineSettings(smoothing=0.0), provider="cpu", face_model=face_model_path) as p:
        yield p


def test_end_to_end_on_a_real_photo(pipe, astronaut):
    pipe.reset()
    result = pipe.process(astronaut)
    assert pipe.detector_backend == "mediapipe" and pipe.provider == "CPUExecutionProvider"
    assert result.frame_shape == (512, 512, 3)
    assert len(result.faces) == 1
    face = result.faces[0]
    x, y, w, h = face.box
    assert 190 < x + w / 2 < 260 and 95 < y + h / 2 < 160
    assert face.track_id == 1
    assert list(face.probs) == pipe.labels and sum(face.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probs, key=face.probs.get) and face.score == face.probs[face.label]
    assert set(result.timings) == TIMINGS
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings["total"] >= result.timings["detect"]


@pytest.mark.parametrize("frame", [
    None, "not an image", np.zeros((0, 0, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8),
    np.zeros((10, 10, 7), np.uint8), np.zeros((2, 3, 4, 5), np.uint8), np.zeros((480, 640, 3), np.uint8),
], ids=["none", "str", "empty", "1x1", "1x1grey", "7ch", "4d", "black"])
def test_bad_frames_give_empty_results(pipe, frame):
    result = pipe.process(frame)
    assert isinstance(result, FrameResult) and result.faces == []
    assert set(result.timings) == TIMINGS


def test_grey_bgra_float_and_8k_frames(pipe, astronaut):
    frames = [cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA),
              astronaut.astype(np.float32), cv2.resize(astronaut[:288], (7680, 4320))]
    for frame in frames:
        result = pipe.process(frame)
        assert len(result.faces) == 1, frame.shape
        assert result.frame_shape == frame.shape


def test_face_cut_by_the_frame_edge(pipe, astronaut):
    result = pipe.process(np.ascontiguousarray(astronaut[100:, 200:]))  # the face cut by the top and left edges
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.box[0] == 0 and face.box[1] == 0  # padded crop, not an error
    assert face.vector().sum() == pytest.approx(1.0, abs=1e-5) and np.isfinite(face.vector()).all()


def test_several_faces_keep_their_ids_while_moving(pipe, four_faces):
    pipe.reset()
    first = None
    for step in range(8):
        frame = np.roll(four_faces, shift=(3 * step, 2 * step), axis=(0, 1))
        result = pipe.process(frame, timestamp_ms=33 * step)
        assert len(result.faces) == 4
        ids = {f.track_id: (f.box[0] - 2 * step, f.box[1] - 3 * step) for f in result.faces}
        if first is None:
            first = ids
            assert sorted(ids) == [1, 2, 3, 4]
        assert sorted(ids) == sorted(first)
        for tid, (x, y) in ids.items():
            assert abs(x - first[tid][0]) < 10 and abs(y - first[tid][1]) < 10


def test_max_faces_keeps_the_largest(tiny_onnx, face_model_path, four_faces):
    with Pipeline(tiny_onnx, PipelineSettings(max_faces=2), provider="cpu", face_model=face_model_path) as p:
        faces = p.process(four_faces).faces
    assert len(faces) == 2
    assert all(f.box[1] < 230 for f in faces)  # the two full-size heads in the top row


def test_settings_change_at_run_time(pipe, astronaut):
    before = pipe.settings
    pipe.settings = before.replace(min_confidence=0.99)
    assert pipe.process(astronaut).faces == [] and pipe.detector.min_confidence == 0.99
    pipe.settings = before
    first = pipe.process(astronaut).faces[0].vector()
    pipe.settings = before.replace(align=False)
    unaligned = pipe.process(astronaut).faces[0].vector()
    assert not np.allclose(first, unaligned)  # align reaches the crop
    pipe.settings = before.replace(smoothing=0.5)
    assert pipe.tracker.smoothing == 0.5
    smoothed = pipe.process(astronaut).faces[0].vector()
    np.testing.assert_allclose(smoothed, 0.5 * unaligned + 0.5 * first, atol=1e-6)
    pipe.settings = before.replace(uncertain_below=1.0)
    assert pipe.process(astronaut).faces[0].uncertain
    pipe.settings = before
    with pytest.raises(TypeError):
        pipe.settings = {"smoothing": 0.1}


def test_settings_are_checked_once_for_every_front_door():
    assert PipelineSettings().replace(quality="fastest").quality == "fastest"
    for bad in (dict(smoothing=1.0), dict(min_confidence=-0.1), dict(uncertain_below=2), dict(quality="turbo"),
                dict(max_faces=0), dict(colour=True)):
        with pytest.raises(SettingsError):
            PipelineSettings().replace(**bad)


@pytest.mark.parametrize("equalize", [True, False])
def test_the_model_file_governs_equalisation(tmp_path, face_model_path, astronaut, equalize):
    """What the pipeline feeds the model is what the model's ``fer.equalize`` metadata says (as in fer-eval)."""
    from conftest import make_tiny_onnx

    from fer_core.crop import crop_face
    from fer_core.preprocess import preprocess_face

    path = make_tiny_onnx(tmp_path / f"eq{int(equalize)}.onnx", equalize=equalize)
    with Pipeline(path, PipelineSettings(smoothing=0.0), provider="cpu", face_model=face_model_path) as p:
        face = p.process(astronaut).faces[0]
        det = p.detector.detect(astronaut)[0]
        crop = crop_face(astronaut, det.box, p.settings.margin, shift=p.settings.shift, eyes=det.eyes)
        meta = p.classifier.meta
        expected = {eq: p.classifier.predict_batch(preprocess_face(crop, meta.input_size, meta.native_size or None,
                                                                   eq, meta.mean, meta.std)[None])[0]
                    for eq in (True, False)}
    assert not np.allclose(expected[True], expected[False])
    np.testing.assert_allclose(face.vector(), expected[equalize], atol=1e-5)


# ---------------------------------------------------------------------- draw
def test_draw_results_marks_box_and_bars(pipe, astronaut):
    pipe.reset()
    result = pipe.process(astronaut)
    x, y, w, h = result.faces[0].box
    out = draw_results(astronaut, result, pipe.labels, fps=30.0, latency_ms=12.5)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, astronaut)
    diff = np.abs(out.astype(int) - astronaut.astype(int)).sum(axis=2) > 0
    assert diff[y:y + h, x].any()  # box edge
    assert diff[y:y + h, x + w + 5:x + w + 100].any()  # bars right of the face
    assert diff[:20, :60].any()  # FPS text
    assert not diff[400:, 400:].any()
    selected = draw_results(astronaut, result, pipe.labels, selected=result.faces[0].track_id)
    plain = draw_results(astronaut, result, pipe.labels)
    assert not np.array_equal(selected, plain)


def test_draw_results_other_layouts(pipe, astronaut):
    result = pipe.process(astronaut)
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert draw_results(grey, result, pipe.labels).shape == grey.shape
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    assert draw_results(bgra, result, pipe.labels).shape == bgra.shape
    # A face at the right edge gets its bars on the left.
    edge = np.zeros((400, 400, 3), np.uint8)
    edge[:, 100:] = astronaut[40:440, 0:300]
    r = pipe.process(edge)
    x, y, w, h = r.faces[0].box
    assert x + w > 330
    diff = np.abs(draw_results(edge, r, pipe.labels).astype(int) - edge.astype(int)).sum(axis=2) > 0
    assert diff[y:y + h, max(0, x - 100):x - 5].any()
    empty = FrameResult(frame_shape=astronaut.shape)
    np.testing.assert_array_equal(draw_results(astronaut, empty, pipe.labels), astronaut)


def test_bar_panels_avoid_neighbouring_faces():
    """Two faces side by side: the left face's bars go elsewhere instead of over its neighbour."""
    from fer_core.draw import _overlap_area, _panel_place

    left, right = (100, 100, 120, 120), (235, 100, 120, 120)
    taken = [(x, y, x + w, y + h) for x, y, w, h in (left, right)]
    px, py, covered = _panel_place(left, (90, 80), (640, 480), taken)
    assert covered == 0 and all(_overlap_area((px, py, px + 90, py + 80), t) == 0 for t in taken)
    assert 0 <= px and px + 90 <= 640 and 0 <= py and py + 80 <= 480
    # A lone face keeps the default: right of the box, top-aligned.
    assert _panel_place(left, (90, 80), (640, 480), [taken[0]]) == (226, 100, 0)
    # No free place at all: the place that covers the least of the others.
    crowded = [(0, 0, 640, 480)]
    px, py, covered = _panel_place((500, 10, 130, 130), (90, 80), (640, 480), crowded + [(400, 0, 500, 480)])
    assert (px, py, covered) == (500, 146, 90 * 80)  # below the face: left of it would also cover the second panel


# ---------------------------------------------------------------------- model zoo
def test_default_model_from_env_and_clear_error(monkeypatch, tmp_path, tiny_onnx, face_model_path):
    monkeypatch.setattr(model_zoo, "MODELS_DIR", tmp_path / "models")
    monkeypatch.delenv(model_zoo.ENV_VAR, raising=False)
    with pytest.raises(ModelLoadError, match="fer_realtime.onnx.*fer-export.*--model"):
        model_zoo.default_model_path()
    assert model_zoo.list_shipped_models() == []
    monkeypatch.setenv(model_zoo.ENV_VAR, str(tiny_onnx))
    assert model_zoo.default_model_path() == tiny_onnx
    with Pipeline(provider="cpu", face_model=face_model_path) as p:
        assert p.model_path == tiny_onnx
    with pytest.raises(ModelLoadError, match="nope.onnx"):
        Pipeline(tmp_path / "nope.onnx")


@pytest.mark.parametrize("package, forbidden", [("fer_core", ("torch", "PySide6", "training", "app")),
                                                ("app", ("torch", "training"))])
def test_imports_flow_one_way(package, forbidden):
    """Every module of ``fer_core`` imports neither torch, Qt nor the other packages; ``app`` never training."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    modules = sorted(f"{package}.{p.stem}" for p in (root / package).glob("*.py") if p.stem != "__init__")
    assert len(modules) > 10
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(sorted(m for m in {forbidden!r} if m in sys.modules))")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         env=env).stdout
    assert out.strip() == "[]"


def test_still_images_leave_the_stream_alone(face_model_path):
    """``still=True``: the same photo gives the same answer every time, and the stream's tracks are untouched."""
    from fer_core.synthetic import face_photos, paste

    frame = np.full((480, 640, 3), 80, np.uint8)
    paste(frame, cv2.resize(face_photos()[0], (300, 300)), 170, 90)
    with Pipeline(None, PipelineSettings(smoothing=0.9), face_model=face_model_path, running_mode="image") as pipe:
        first = pipe.process(frame, still=True)
        again = pipe.process(frame, still=True)
        assert len(first.faces) == 1 and first.faces[0].track_id == 1
        np.testing.assert_allclose(first.faces[0].vector(), again.faces[0].vector(), atol=1e-6)
        assert pipe.tracker.tracks == []
