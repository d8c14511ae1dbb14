"""FaceDetector on a real photo (MediaPipe and the Haar fallback) and face-model resolution/download."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

import fer_core.face_model as face_model
from fer_core.detector import FaceDetector, downscale, merge_same_faces, tile_boxes
from fer_core.face_model import FACE_MODEL_NAME, resolve_face_model

# The astronaut's face in skimage.data.astronaut() (512x512), checked by eye: about x 175-275, y 75-180.
FACE_CENTER = (225, 128)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR


@pytest.fixture(scope="module")
def detector(face_model_path):
    with FaceDetector(face_model_path) as det:
        yield det


def _assert_face(box, center=FACE_CENTER, scale=1.0, offset=(0, 0)):
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    ex, ey = center[0] * scale + offset[0], center[1] * scale + offset[1]
    assert abs(cx - ex) < 25 * scale and abs(cy - ey) < 30 * scale, (box, (ex, ey))
    assert 70 * scale < w < 140 * scale and 70 * scale < h < 140 * scale, box


def test_finds_the_astronaut(detector, astronaut):
    faces = detector.detect(astronaut)
    assert detector.backend == "mediapipe" and detector.warning is None
    assert len(faces) == 1
    assert faces[0].score > 0.7
    assert all(isinstance(v, int) for v in faces[0].box)
    _assert_face(faces[0].box)


def test_grey_bgra_and_single_channel_frames(detector, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    for frame in (grey, grey[:, :, None], cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)):
        faces = detector.detect(frame)
        assert len(faces) == 1, frame.shape
        _assert_face(faces[0].box)


def test_8k_frame_is_downscaled_and_boxes_scaled_back(detector, astronaut):
    # The top 512x288 (16:9) of the photo upscaled 15x: 7680x4320. (Padding the square photo into a 16:9
    # frame instead makes the face too small for the short-range model, which letterboxes to 128x128.)
    frame = cv2.resize(astronaut[:288], (7680, 4320), interpolation=cv2.INTER_LINEAR)
    faces = detector.detect(frame)
    assert len(faces) == 1
    _assert_face(faces[0].box, scale=15.0)


def test_tiny_and_invalid_frames(detector):
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.detect(np.zeros((0, 0, 3), np.uint8)) == []
    assert detector.detect(np.zeros((4, 4), np.uint8)) == []
    assert detector.detect(np.zeros((64, 64, 2), np.uint8)) == []
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_boxes_are_clipped_to_the_frame(detector, astronaut):
    frame = np.ascontiguousarray(astronaut[100:, 200:])  # the face is cut by the left and top edges
    faces = detector.detect(frame)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert x == 0 and y == 0  # the box the detector saw reached past both edges
    assert x + w <= frame.shape[1] and y + h <= frame.shape[0] and w > 40 and h > 40


def test_min_confidence_is_settable(face_model_path, astronaut):
    with FaceDetector(face_model_path, min_confidence=0.5) as det:
        assert len(det.detect(astronaut)) == 1
        det.min_confidence = 0.99
        assert det.detect(astronaut) == []
        det.min_confidence = 0.3
        assert len(det.detect(astronaut)) == 1


def test_video_mode_accepts_non_increasing_timestamps(face_model_path, astronaut):
    with FaceDetector(face_model_path, running_mode="video") as det:
        for ts in (100, 100, 50, 0, None, 200):
            assert len(det.detect(astronaut, ts)) == 1


def test_close_is_idempotent(face_model_path, astronaut):
    det = FaceDetector(face_model_path)
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(astronaut)


def _far_faces_frame(astronaut: np.ndarray) -> np.ndarray:
    """1100x618 frame with the astronaut photo in two corners: faces about 9% of the frame width."""
    frame = np.full((618, 1100, 3), 90, np.uint8)
    frame[40:552, 60:572] = astronaut
    frame[98:610, 540:1052] = astronaut
    return frame


@pytest.mark.parametrize("mode", ["image", "video"])
def test_small_faces_finds_far_faces_the_whole_frame_pass_misses(face_model_path, astronaut, mode):
    frame = _far_faces_frame(astronaut)
    with FaceDetector(face_model_path, running_mode=mode) as det:
        assert det.detect(frame, 0) == []
        det.small_faces = True
        faces = det.detect(frame, 40)
        assert len(faces) == 2
        for face, offset in zip(sorted(faces, key=lambda f: f.box[0]), ((60, 40), (540, 98))):
            _assert_face(face.box, offset=offset)
        det.min_confidence = 0.55  # recreates the detectors, tiles included
        assert len(det.detect(frame, 80)) == 2
        # A near face is still found once, not once per tile.
        assert len(det.detect(astronaut, 120)) == 1
    det.close()


def test_tiles_cover_the_frame_with_overlap():
    tiles = tile_boxes(640, 360)
    assert len(tiles) == 4
    covered = np.zeros((360, 640), bool)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert tiles[0][2] > tiles[1][0] and tiles[0][3] > tiles[2][1]  # neighbours overlap


def test_merge_same_faces_keeps_the_best_box_of_each_face():
    whole = ((100, 100, 80, 80), 0.9)
    part = ((100, 100, 40, 80), 0.7)  # a tile that saw half of the same face
    other = ((300, 100, 60, 60), 0.6)
    assert merge_same_faces([part, other, whole]) == [whole, other]
    assert merge_same_faces([]) == []


def test_downscale_keeps_small_frames():
    frame = np.zeros((480, 640, 3), np.uint8)
    assert downscale(frame, 640)[0] is frame
    small, scale = downscale(np.zeros((4320, 7680, 3), np.uint8), 640)
    assert small.shape == (360, 640, 3) and scale == pytest.approx(1 / 12)


# ---------------------------------------------------------------------- face model resolution + Haar fallback
@pytest.fixture
def no_model(monkeypatch, tmp_path):
    """No env variable, an empty cache and an unreachable download URL."""
    monkeypatch.delenv(face_model.ENV_VAR, raising=False)
    monkeypatch.setattr(face_model, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(face_model, "FACE_MODEL_URL", (tmp_path / "offline" / FACE_MODEL_NAME).as_uri())
    return tmp_path


def test_resolve_explicit_and_env(face_model_path, monkeypatch, tmp_path, caplog):
    monkeypatch.delenv(face_model.ENV_VAR, raising=False)
    assert resolve_face_model(face_model_path) == face_model_path
    monkeypatch.setenv(face_model.ENV_VAR, str(face_model_path))
    assert resolve_face_model() == face_model_path
    with caplog.at_level("WARNING"):
        assert resolve_face_model(tmp_path / "missing.tflite") == face_model_path  # reported, then env
    assert "missing.tflite" in caplog.text


def test_download_from_file_url_into_cache(face_model_path, no_model):
    cache = no_model / "cache"
    path = resolve_face_model(url=face_model_path.as_uri(), cache=cache, progress=False)
    assert path == cache / FACE_MODEL_NAME
    assert path.read_bytes() == face_model_path.read_bytes()
    assert [p.name for p in cache.iterdir()] == [FACE_MODEL_NAME]  # no temporary files left
    # Second call: found in the cache, no download needed.
    assert resolve_face_model(url=(no_model / "gone.tflite").as_uri(), cache=cache) == path


def test_download_failures_return_none(no_model, caplog):
    cache = no_model / "cache"
    with caplog.at_level("WARNING"):
        assert resolve_face_model(url=(no_model / "nothing.tflite").as_uri(), cache=cache, progress=False) is None
    assert "could not download the face-detector model" in caplog.text
    junk = no_model / "junk.tflite"
    junk.write_bytes(b"not a tflite model" * 100)
    assert resolve_face_model(url=junk.as_uri(), cache=cache, progress=False) is None
    assert list(cache.iterdir()) == []  # the bad download was deleted
    assert resolve_face_model(download=False, cache=cache) is None


def test_haar_fallback_when_no_model_can_be_found(no_model, astronaut, caplog):
    with caplog.at_level("WARNING"), FaceDetector() as det:
        faces = det.detect(astronaut)
    assert det.backend == "haar"
    assert det.warning and "Haar" in det.warning
    assert "Haar" in caplog.text
    assert len(faces) == 1
    _assert_face(faces[0].box)


def test_broken_model_file_falls_back_to_haar(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 256)
    with FaceDetector(bad) as det:
        assert det.backend == "haar" and "does not load" in det.warning


def test_download_failures_are_said_in_plain_words():
    """No '<urlopen error [Errno -2] Name or service not known>' in the warning a user reads."""
    import socket
    import urllib.error

    from fer_core.face_model import download_reason

    offline = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    assert download_reason(offline) == "no connection to the internet (the server's name could not be looked up)"
    assert download_reason(urllib.error.URLError(TimeoutError())) == "the connection timed out"
    assert download_reason(urllib.error.HTTPError("u", 404, "Not Found", {}, None)) == \
        "the server answered HTTP 404 Not Found"
    missing = urllib.error.URLError(FileNotFoundError(2, "No such file or directory"))
    assert "Errno" not in download_reason(missing) and "no such file" in download_reason(missing).lower()
