"""The Python API: ``EmotionRecognizer.predict`` / ``stream``, ``Face``, the ``FerError`` family."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fer_core import EmotionRecognizer, Face, FerError
from fer_core.synthetic import face_photos, paste, synthetic_clip


def _photo(x: int = 170) -> np.ndarray:
    frame = np.full((480, 640, 3), 80, np.uint8)
    paste(frame, cv2.resize(face_photos()[0], (300, 300)), x, 90)
    return frame


@pytest.fixture(scope="module")
def rec(face_model_path):
    with EmotionRecognizer(face_model=face_model_path, provider="cpu") as r:
        yield r


def test_predict_gives_faces(rec):
    faces = rec.predict(_photo())
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, Face) and face.track_id == 1
    assert list(face.probs) == rec.labels and abs(sum(face.probs.values()) - 1) < 1e-4
    assert face.label == max(face.probs, key=face.probs.get) and face.score == face.probs[face.label]
    x, y, w, h = face.box
    assert 170 <= x + w / 2 <= 470 and w > 100 and face.eyes is not None
    d = json.loads(json.dumps(face.to_dict()))
    assert d["label"] == face.label and d["box"] == list(face.box)
    assert rec.predict(np.zeros((480, 640, 3), np.uint8)) == []
    with pytest.raises(TypeError):
        rec.predict("photo.jpg")


def test_stream_tracks_a_video_and_keeps_photos_apart(rec, tmp_path):
    video = tmp_path / "clip.mp4"
    frames = synthetic_clip(1, n_frames=12)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for f in frames:
        writer.write(f)
    writer.release()
    out = list(rec.stream(str(video)))
    assert [f.index for f in out] == list(range(12)) and out[3].time_ms == pytest.approx(300.0)
    assert {face.track_id for f in out for face in f.faces} == {1} and out[0].source is None
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), _photo(150 + 30 * i))
    photos = list(rec.stream(folder))
    assert [p.source.endswith(f"{i}.png") for i, p in enumerate(photos)] == [True, True]
    assert all(f.track_id == 1 for p in photos for f in p.faces)  # each photo on its own


def test_uncertain_faces_are_marked(face_model_path):
    with EmotionRecognizer(face_model=face_model_path, provider="cpu", uncertain_below=1.0) as r:
        assert all(f.uncertain for f in r.predict(_photo()))
    with EmotionRecognizer(face_model=face_model_path, provider="cpu", uncertain_below=0.0) as r:
        assert not any(f.uncertain for f in r.predict(_photo()))


def test_errors_are_one_family(rec, tmp_path):
    with pytest.raises(FerError, match="not found"):
        EmotionRecognizer(model=tmp_path / "missing.onnx")
    with pytest.raises(FerError, match="not found"):
        list(rec.stream(tmp_path / "nope.mp4"))


@pytest.mark.parametrize("convert", [
    lambda im: im.astype(np.float32) / 255,              # float in [0, 1]
    lambda im: im.astype(np.float64),                    # float in [0, 255]
    lambda im: im.astype(np.uint16) * 257,               # uint16 (x257 maps 0..255 onto 0..65535)
    lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY),     # 2-D grey
    lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2BGRA),     # 4 channels
])
def test_predict_converts_what_it_can(rec, convert):
    faces = rec.predict(convert(_photo()))
    assert len(faces) == 1 and 170 <= faces[0].box[0] + faces[0].box[2] / 2 <= 470


def test_as_bgr_uint8_values():
    from fer_core.image_input import as_bgr_uint8

    assert as_bgr_uint8(np.array([[0.0, 0.5, 1.0]])).tolist() == [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]
    assert as_bgr_uint8(np.array([[0.0, 2.0, 254.6]])).tolist() == [[[0, 0, 0], [2, 2, 2], [255, 255, 255]]]
    assert as_bgr_uint8(np.array([[65535, 256]], np.uint16))[0, :, 0].tolist() == [255, 1]
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = 200
    assert as_bgr_uint8(bgra)[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("image, match", [
    (np.ones((48, 48), bool), "bool"),
    (np.full((48, 48, 3), np.nan, np.float32), "NaN"),
    (np.full((48, 48, 3), np.inf), "NaN"),
    (np.zeros((1, 48, 48, 3, 1), np.uint8), "5-D"),
    (np.zeros((48, 48, 2), np.uint8), "channels"),
    (np.zeros((0, 48, 3), np.uint8), "empty"),
    (np.full((48, 48), 300.0), "outside"),
])
def test_predict_refuses_what_it_cannot_read(rec, image, match):
    with pytest.raises(FerError, match=match) as info:
        rec.predict(image)
    assert "\n" not in str(info.value)


def test_predict_after_close_is_an_error(face_model_path):
    r = EmotionRecognizer(face_model=face_model_path, provider="cpu")
    r.close()
    with pytest.raises(FerError, match="closed"):
        r.predict(_photo())
