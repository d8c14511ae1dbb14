"""The window fits the screen it opens on, down to 1024x600 (issue 23)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import app  # noqa: F401  (the OpenCV / Qt plugin-path fix, before pytest-qt creates the QApplication)
from test_app import make_window

REPO = Path(__file__).resolve().parents[1]

# Opens the window on an offscreen screen of the given size and says where its parts are, in screen pixels.
PROBE = """
import json, sys
import app
from PySide6.QtWidgets import QApplication
qt = QApplication([])
from app.main_window import MainWindow
window = MainWindow(source=None, model=sys.argv[1], scan_cameras=False)
window.show()
qt.processEvents()
def box(w):
    top_left = w.mapToGlobal(w.rect().topLeft())
    return [top_left.x(), top_left.y(), w.width(), w.height()]
print(json.dumps({"available": list(qt.primaryScreen().availableGeometry().getRect()), "window": box(window),
                  "readouts": box(window.readouts), "face_panel": box(window.face_panel),
                  "controls": box(window.controls_scroll)}))
window.close()
"""


def test_initial_size_fits_the_available_area():
    from PySide6.QtCore import QRect, QSize

    from app.main_window import PREFERRED_SIZE, initial_size

    minimum = QSize(860, 480)
    assert initial_size(QRect(0, 0, 2560, 1400), minimum) == PREFERRED_SIZE
    for w, h in ((1280, 720), (1366, 768), (1024, 600), (1024, 560)):
        size = initial_size(QRect(0, 30, w, h), minimum)
        assert minimum.width() <= size.width() <= w and minimum.height() <= size.height() <= h, (w, h)
    # A screen smaller than the minimum: the screen's size, not more.
    assert initial_size(QRect(0, 0, 800, 450), minimum) == QSize(800, 450)


def test_window_minimum_fits_1024x600(qtbot, tiny_onnx):
    window = make_window(qtbot, source=None, model=str(tiny_onnx))
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 600, hint
    window.resize(1024, 600)  # the control column scrolls instead of pushing the window taller
    assert window.width() == 1024 and window.height() == 600
    assert window.controls_scroll.verticalScrollBar().maximum() > 0


@pytest.mark.parametrize("screen", [(1280, 720), (1024, 600)])
def test_window_opens_inside_a_small_screen(tmp_path, tiny_onnx, screen):
    """On a 1280x720 or 1024x600 screen the readouts bar and the face panel are on the screen (the window
    opened at 1360x860 whatever the screen)."""
    w, h = screen
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "small", "x": 0, "y": 0, "width": w, "height": h,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tiny_onnx)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    ax, ay, aw, ah = parts["available"]
    assert (aw, ah) == (w, h)
    for name in ("window", "readouts", "face_panel", "controls"):
        x, y, pw, ph = parts[name]
        assert ax <= x and ay <= y and x + pw <= ax + aw and y + ph <= ay + ah, (name, parts[name], screen)
