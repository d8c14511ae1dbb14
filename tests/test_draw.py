"""The overlay: sizes that follow the frame, an FPS box clear of faces, and no FPS burned into fer-run's files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_core import cli_run
from fer_core.draw import draw_results, overlay_unit
from fer_core.labels import FER2013_CLASSES, class_color
from fer_core.results import FrameResult, make_face
from fer_core.synthetic import face_photos, paste

LABELS = list(FER2013_CLASSES)
HAPPY = np.array(class_color("happy"), np.uint8)


def frame_and_result(size: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, FrameResult]:
    """A flat grey ``size`` (width, height) frame and a result with one "happy" face per box."""
    frame = np.full((size[1], size[0], 3), 90, np.uint8)
    probs = np.array([0.05, 0.02, 0.03, 0.7, 0.05, 0.05, 0.1], np.float32)
    faces = [make_face(i + 1, box, probs, LABELS) for i, box in enumerate(boxes)]
    return frame, FrameResult(faces=faces, frame_shape=frame.shape)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)


def label_height(size: tuple[int, int], side: int) -> int:
    """Height in pixels of the drawn label of one ``side`` x ``side`` face in a frame of ``size``."""
    x, y = size[0] // 10, size[1] // 2
    frame, result = frame_and_result(size, [(x, y, side, side)])
    out = draw_results(frame, result, LABELS)
    rows = np.flatnonzero((out[:y, x - 1] == HAPPY).all(axis=1))  # the label's left padding, then the box line
    return int(np.argmax(np.diff(rows, append=y) > 1)) + 1  # the first run of rows: the label


def test_overlay_unit():
    assert overlay_unit((360, 640, 3)) == overlay_unit((48, 48)) == overlay_unit((1000, 800)) == 1.0
    assert overlay_unit((4000, 6000, 3)) == overlay_unit((6000, 4000)) == 6.0


def test_label_keeps_its_share_of_the_frame():
    small = label_height((1000, 700), 150)
    assert 15 <= small <= 30
    for width in (4000, 6000, 8000):
        scale = width / 1000
        big = label_height((width, int(700 * scale)), int(150 * scale))
        assert big == pytest.approx(small * scale, rel=0.1)  # same share of the frame
    assert label_height((640, 360), 150) == small  # small frames keep the face-based size


def test_label_size_limits():
    # Shown 1000 px across, even a tiny face's label is at least 10 px high...
    for size in [(640, 360), (1920, 1080), (6000, 4000), (8000, 6000)]:
        assert label_height(size, 20) * 1000 / max(size) >= 10, size
    # ...and a huge face's label stops growing.
    assert label_height((6000, 4000), 3000) == label_height((6000, 4000), 1400) < 0.05 * 6000
    assert label_height((640, 480), 400) == label_height((640, 480), 250)


CORNERS = {"top-left": (0, 0), "top-right": (1, 0), "bottom-left": (0, 1), "bottom-right": (1, 1)}


@pytest.mark.parametrize("scale", [1, 5])
@pytest.mark.parametrize("free", list(CORNERS))
def test_fps_box_takes_the_free_corner(free, scale):
    """Faces in three corners: the FPS box goes to the fourth, over no face, label or bar panel."""
    W, H, side = 800 * scale, 600 * scale, 150 * scale
    boxes = [(cx * (W - side), cy * (H - side), side, side) for name, (cx, cy) in CORNERS.items() if name != free]
    frame, result = frame_and_result((W, H), boxes)
    plain = draw_results(frame, result, LABELS)
    hud = changed(draw_results(frame, result, LABELS, fps=29.7, latency_ms=18.3), plain)
    overlay = changed(plain, frame)
    for x, y, w, h in boxes:
        overlay[y:y + h, x:x + w] = True
    assert hud.any() and not (hud & overlay).any()
    ys, xs = np.nonzero(hud)
    cx, cy = CORNERS[free]
    assert (xs.max() == W - 1 if cx else xs.min() == 0) and (ys.max() == H - 1 if cy else ys.min() == 0)


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (6000, 4000)])
def test_fps_box_is_small_and_readable(size):
    frame, result = frame_and_result(size, [])
    hud = changed(draw_results(frame, result, LABELS, fps=29.7, latency_ms=18.3), frame)
    ys, xs = np.nonzero(hud)
    height, width = ys.max() + 1, xs.max() + 1
    assert ys.min() == 0 and xs.min() == 0  # top-left when nothing is in the way
    assert height * width < 0.02 * size[0] * size[1]
    assert height * 1000 / max(size) >= 10  # readable when shown 1000 px across
    only_fps = changed(draw_results(frame, result, LABELS, fps=29.7), frame)
    assert only_fps.any() and only_fps.sum() < hud.sum()


def test_no_fps_box_without_fps_or_latency():
    frame, result = frame_and_result((640, 480), [(300, 200, 120, 120)])
    np.testing.assert_array_equal(draw_results(frame, FrameResult(frame_shape=frame.shape), LABELS), frame)
    out = draw_results(frame, result, LABELS, fps=None, latency_ms=None)
    corners = [out[:40, :200], out[:40, -200:], out[-40:, :200], out[-40:, -200:]]
    assert all((c == 90).all() for c in corners)


def test_fer_run_burns_fps_only_when_asked(tiny_onnx, face_model_path, tmp_path, capsys):
    """Files written with --out carry no FPS text unless --burn-fps; the --show window always has it."""
    src = tmp_path / "src"
    src.mkdir()
    frame = np.full((480, 640, 3), 90, np.uint8)
    paste(frame, cv2.resize(face_photos()[0], (260, 260)), 190, 110)
    cv2.imwrite(str(src / "face.png"), frame)
    outs = {}
    for burn in (False, True):
        out_dir = tmp_path / f"out_{burn}"
        args = ["--source", str(src), "--model", str(tiny_onnx), "--face-model", str(face_model_path),
                "--out", str(out_dir)] + (["--burn-fps"] if burn else [])
        assert cli_run.main(args) == 0, capsys.readouterr().err
        outs[burn] = cv2.imread(str(out_dir / "face.png"))
    plain, burned = outs[False], outs[True]
    assert changed(plain, frame).any()  # the face is drawn
    assert (plain[:40, :200] == frame[:40, :200]).all()  # but no FPS text in the free corner
    hud = changed(burned, plain)
    ys, xs = np.nonzero(hud)
    assert hud.any() and ys.max() < 40 and xs.max() < 200  # the FPS box, top-left, and nothing else
    assert "--burn-fps" in cli_run.build_parser().format_help()


def test_fer_run_window_shows_fps(tiny_onnx, face_model_path, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cli_run.Window, "show", lambda self, image: shown.append(image))
    monkeypatch.setattr(cli_run.Window, "close", lambda self: None)
    frame = np.full((240, 320, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "flat.png"), frame)
    args = ["--source", str(tmp_path / "flat.png"), "--model", str(tiny_onnx), "--face-model", str(face_model_path),
            "--show"]
    assert cli_run.main(args) == 0
    assert len(shown) == 1 and changed(shown[0], frame)[:20, :60].any()
