"""Desktop app (pytest-qt, offscreen): worker, window, overlay, readouts, selection, errors, closing, CLI.

A short real video is written from ``skimage.data.astronaut()`` (two faces of different sizes that
move); faces are found by the real MediaPipe detector (``FER_FACE_MODEL`` from conftest) and
classified by the tiny ONNX model from conftest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import app  # noqa: F401  (the OpenCV / Qt plugin-path fix, before pytest-qt creates the QApplication)
from app import feed as feed_mod
from app.qt_env import PLUGIN_VAR, check_pyside, fix_qt_env
from app.feed import LatestFrameGrabber, RateMeter
from app.worker import InferenceWorker
from fer_core.video_writer import crash_safe_suffix

REPO = Path(__file__).resolve().parents[1]
SIZE = (640, 360)


@pytest.fixture(autouse=True)
def _usable_pyside() -> None:
    """Fail with the fix, not a crash of the whole test run, on a PySide6 that corrupts refcounts."""
    check_pyside()


def write_two_face_video(path: Path, n_frames: int, fps: float = 25.0) -> Path:
    """Two copies of the astronaut's face (300 px and 220 px squares) drifting sideways."""
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:270, 95:355]
    big, small = cv2.resize(img, (300, 300)), cv2.resize(img[:, ::-1], (220, 220))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    assert writer.isOpened()
    for t in range(n_frames):
        frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        dx = int(20 * np.sin(t / 8))
        frame[30:330, 30 + dx:330 + dx] = big
        frame[90:310, 390 - dx:610 - dx] = small
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_two_face_video(tmp_path_factory.mktemp("video") / "two_faces.mp4", 100)


def qimage_to_bgr(image) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_BGR888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes()).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def read_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    for _ in range(index + 1):
        ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def make_window(qtbot, **kwargs):
    from app.main_window import MainWindow

    kwargs.setdefault("scan_cameras", False)
    kwargs.setdefault("pace_video", False)
    kwargs.setdefault("provider", "cpu")
    window = MainWindow(**kwargs)
    qtbot.addWidget(window)
    window.show()
    return window


class count_paints:
    """Counts paint events per widget class name inside a ``with`` block (the dict is empty when none came)."""

    def __init__(self, *widgets) -> None:
        self.widgets, self.counts = widgets, {}

    def __enter__(self) -> dict:
        from PySide6.QtCore import QEvent, QObject

        counts = self.counts

        class Filter(QObject):
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint:
                    counts[type(obj).__name__] = counts.get(type(obj).__name__, 0) + 1
                return False

        self.filter = Filter()
        for w in self.widgets:
            w.installEventFilter(self.filter)
            for child in w.findChildren(QObject):  # pyqtgraph paints in its viewport
                child.installEventFilter(self.filter)
        return counts

    def __exit__(self, *exc) -> None:
        for w in self.widgets:
            w.removeEventFilter(self.filter)


# ----- small pieces ------------------------------------------------------------------------------------
def test_qt_plugin_path_fix_removes_opencv_override(monkeypatch):
    cv2_plugins = str(Path(cv2.__file__).resolve().parent / "qt" / "plugins")
    monkeypatch.setenv(PLUGIN_VAR, cv2_plugins)
    assert fix_qt_env() == cv2_plugins
    assert PLUGIN_VAR not in os.environ
    monkeypatch.setenv(PLUGIN_VAR, "/somewhere/else")  # a user's own setting is left alone
    assert fix_qt_env() is None and os.environ[PLUGIN_VAR] == "/somewhere/else"


def test_rate_meter_counts_events_in_window():
    meter = RateMeter(window_s=1.0)
    for i in range(11):
        meter.tick(now=i * 0.05)  # 20 per second
    assert meter.rate(now=0.5) == pytest.approx(20.0)
    assert meter.rate(now=5.0) == 0.0  # nothing in the last second


def test_grabber_keeps_only_the_newest_frame():
    class FastLiveSource:
        is_live = True

        def __iter__(self):
            for i in range(200):
                time.sleep(0.001)
                yield i, float(i), np.full((4, 4, 3), i % 256, np.uint8)

    grabber = LatestFrameGrabber(FastLiveSource())
    grabber.start()
    taken = []
    while (item := grabber.take(timeout=1.0)) is not None:
        taken.append(item[0])
        time.sleep(0.02)  # a slow consumer
    grabber.join(2)
    assert taken == sorted(taken) and taken[-1] == 199
    assert grabber.dropped > 0 and len(taken) < 200  # stale frames were dropped, the newest one kept


# ----- the worker ------------------------------------------------------------------------------------
@pytest.fixture
def closed(monkeypatch) -> list:
    """The specs of the sources the worker closes, in order."""
    closed, real_open = [], feed_mod.open_source

    def tracking_open(spec):
        source = real_open(spec)
        original_close = source.close
        source.close = lambda: (closed.append(spec), original_close())
        return source

    monkeypatch.setattr(feed_mod, "open_source", tracking_open)
    return closed


def run_worker(qtbot, worker: InferenceWorker, n_frames: int) -> tuple[list, list]:
    """Run a worker in a QThread until it has sent ``n_frames`` frames, then stop it; (frames, error messages)."""
    from PySide6.QtCore import QThread

    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    frames, errors = [], []
    worker.frame_ready.connect(lambda img, res, stats: frames.append((img, res, stats)))
    worker.error.connect(lambda message, kind: errors.append((message, kind)))
    thread.start()
    try:
        qtbot.waitUntil(lambda: len(frames) >= n_frames, timeout=20000)
    finally:
        with qtbot.waitSignal(worker.finished, timeout=10000):
            worker.stop()
        thread.quit()
        assert thread.wait(5000)
    return frames, errors


def test_worker_processes_video_and_paints_overlay_in_face_box(qtbot, video, settings, closed):
    worker = InferenceWorker(str(video), settings)
    frames, errors = run_worker(qtbot, worker, 12)
    assert not errors
    image, result, stats = frames[-1]
    assert len(result.faces) == 2
    assert stats.faces == 2 and stats.model == Path(settings.model_path).name
    assert stats.provider == "CPUExecutionProvider" and stats.detector == "mediapipe"
    assert stats.capture_fps > 0 and stats.processed_fps > 0 and stats.total_ms > 0
    assert stats.selected_track == max(result.faces, key=lambda f: f.box[2] * f.box[3]).track_id
    # The overlay is painted inside each face box: pixels differ from the raw frame there.
    annotated = qimage_to_bgr(image)
    raw = read_frame(video, stats.frame_index)
    assert annotated.shape == raw.shape
    for face in result.faces:
        x, y, w, h = face.box
        diff = np.abs(annotated[y:y + h, x:x + w].astype(int) - raw[y:y + h, x:x + w].astype(int)).sum(axis=2)
        assert (diff > 60).mean() > 0.02, f"no overlay inside face box {face.box}"
    # No FPS text in the picture unless asked for: the frame is exactly the faces' overlay.
    from fer_core.draw import draw_results

    plain = draw_results(raw, result, stats.labels, selected=stats.selected_track)
    assert np.array_equal(annotated, plain)
    # Closing released the source and the pipeline.
    assert worker.released and closed == [str(video)]


def test_worker_burns_fps_into_the_picture_only_when_asked(qtbot, video, settings):
    from fer_core.draw import draw_results

    frames, _ = run_worker(qtbot, InferenceWorker(str(video), dataclasses.replace(settings, burn_fps=True)), 6)
    image, result, stats = frames[-1]
    annotated = qimage_to_bgr(image)
    plain = draw_results(read_frame(video, stats.frame_index), result, stats.labels,
                         selected=stats.selected_track)
    changed = np.abs(annotated.astype(int) - plain.astype(int)).sum(axis=2) > 0
    assert 0 < changed.mean() < 0.05  # a small HUD box, nothing else


# ----- the window --------------------------------------------------------------------------------------
def test_window_opens_with_all_parts(qtbot, tiny_onnx):
    window = make_window(qtbot, source=None, model=str(tiny_onnx))
    for part in (window.view, window.face_panel, window.readouts, window.controls, window.tabs):
        assert part.isVisible()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Live", "Benchmark FPS"]
    assert window.controls.model_combo.currentText() == tiny_onnx.name
    assert window.controls.provider_combo.currentText() == "cpu"
    assert window.bench.selected_models() == [str(tiny_onnx)]  # the benchmark starts with the live model
    window.resize(900, 600)  # the view keeps the frame's aspect ratio
    from PySide6.QtGui import QImage

    window.view.set_image(QImage(640, 360, QImage.Format.Format_RGB888))
    rect = window.view.image_rect()
    assert rect.width() / rect.height() == pytest.approx(640 / 360, rel=1e-3)


def test_window_readouts_selection_recording_and_close(qtbot, video, tiny_onnx, face_model_path, tmp_path,
                                                       closed):
    from PySide6.QtCore import Qt

    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path),
                         pace_video=True)
    qtbot.waitUntil(lambda: window.frames_shown >= 5 and len(window.last_result.faces) == 2, timeout=20000)
    assert not window.banner.isVisible(), window.banner.text

    # Readouts: non-zero rates and stage latencies, the model and the provider in use.
    rd = window.readouts
    assert float(rd.text("capture_fps").split()[0]) > 0
    assert float(rd.text("processed_fps").split()[0]) > 0
    assert float(rd.text("total_ms").split()[0]) > 0
    assert rd.text("faces") == "2" and rd.text("model") == tiny_onnx.name
    assert rd.text("provider") == "CPUExecutionProvider"

    # Default selection: the largest face; clicking the other one selects it and its chart fills.
    faces = sorted(window.last_result.faces, key=lambda f: f.box[2] * f.box[3])
    small, large = faces[0], faces[-1]
    assert window.face_panel.track_id == large.track_id
    x, y, w, h = small.box
    pos = window.view.to_widget_coords(x + w / 2, y + h / 2).toPoint()
    qtbot.mouseClick(window.view, Qt.MouseButton.LeftButton, pos=pos)
    assert window.face_panel.track_id == small.track_id
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.last_stats.selected_track == small.track_id
                    and window.frames_shown >= shown + 3, timeout=10000)
    chart = window.face_panel.chart
    history = window.face_panel.history(small.track_id)
    assert chart.point_count == len(history) >= 4
    assert np.allclose(chart.values[-1], history[-1][1])
    assert f"#{small.track_id}" in window.face_panel.title.text()

    # Snapshot, and a short recording (MKV + per-face CSV).
    assert window.save_snapshot(tmp_path / "snap.png")
    assert cv2.imread(str(tmp_path / "snap.png")).shape == (SIZE[1], SIZE[0], 3)
    panel_width = window.controls.width()
    assert not window.readouts.rec.isVisible()
    window.start_recording(tmp_path / "rec")
    qtbot.waitUntil(lambda: window.controls.record_button.isChecked(), timeout=5000)
    assert window.readouts.rec.isVisible() and "REC 0:0" in window.readouts.rec.text()
    assert window.controls.width() == panel_width  # the stop button does not widen the panel
    assert not window.controls_scroll.horizontalScrollBar().isVisible()
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= shown + 5, timeout=10000)
    window.stop_recording()
    qtbot.waitUntil(lambda: not window.controls.record_button.isChecked(), timeout=5000)
    assert not window.readouts.rec.isVisible()
    cap = cv2.VideoCapture(str(tmp_path / f"rec{crash_safe_suffix()}"))  # the crash-safe container (app/recorder.py)
    assert cap.isOpened() and cap.read()[0]
    cap.release()
    lines = (tmp_path / "rec.csv").read_text().splitlines()
    assert lines[0].startswith("frame,time_ms,track_id,x,y,w,h,label,score,uncertain,age_ms,p_angry")
    assert len(lines) >= 1 + 2 * 3  # two faces per frame

    # The session report of that recording, written in the background.
    window.open_reports = False
    qtbot.waitUntil(lambda: window.controls.report_button.isEnabled(), timeout=5000)
    with qtbot.waitSignal(window.report_ready, timeout=30000) as report:
        window.controls.report_button.click()
    html = Path(report.args[0]).read_text()
    assert Path(report.args[0]).parent == tmp_path and "Session report: rec.csv" in html and "base64" in html

    # Pause holds the frame, says so and repaints nothing; resume goes on.
    window.set_paused(True)
    qtbot.waitUntil(lambda: rd.text("processed_fps") == "paused", timeout=5000)
    assert rd.text("capture_fps") == "paused" and float(rd.text("total_ms").split()[0]) > 0
    held = window.last_stats.frames_processed
    from app.face_panel import DRAW_S

    # the paused frame itself is new data: let its repaint happen (the timeline draws it up to DRAW_S later)
    qtbot.wait(int(1000 * DRAW_S) + 250)
    with count_paints(window.view, window.face_panel.chart) as paints:
        qtbot.wait(400)
    assert window.last_stats.frames_processed == held and paints == {}
    window.set_paused(False)
    qtbot.waitUntil(lambda: window.last_stats.frames_processed > held, timeout=5000)
    qtbot.waitUntil(lambda: rd.text("processed_fps").endswith("fps"), timeout=5000)

    # Closing stops the thread and releases the source.
    worker, thread = window.worker, window.thread
    window.close()
    assert thread.isFinished() and worker.released
    assert closed == [str(video)]


def test_small_faces_checkbox_reaches_the_detector(qtbot, video, tiny_onnx, face_model_path):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path))
    qtbot.waitUntil(lambda: window.worker.pipeline is not None and window.frames_shown >= 2, timeout=20000)
    assert not window.controls.small_faces_check.isChecked() and not window.worker.pipeline.settings.small_faces
    window.controls.small_faces_check.setChecked(True)
    assert window.settings.pipeline.small_faces
    qtbot.waitUntil(lambda: window.worker.pipeline.settings.small_faces, timeout=10000)
    detector = window.worker.pipeline.detector
    asked, detect = [], detector.detect
    detector.detect = lambda *a, **kw: asked.append(kw.get("small_faces")) or detect(*a, **kw)
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= shown + 3, timeout=10000)  # still processing, tiles and all
    assert asked and all(asked)  # each frame's detection searched the tiles
    window.close()


def test_session_report_at_the_end_of_a_video(qtbot, video, tiny_onnx, face_model_path):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path))
    window.open_reports = False
    with qtbot.waitSignal(window.source_ended, timeout=60000):
        pass
    qtbot.waitUntil(lambda: window.controls.report_button.isEnabled(), timeout=5000)
    with qtbot.waitSignal(window.report_ready, timeout=30000) as report:
        window.make_report()
    summary = json.loads(Path(report.args[0]).with_suffix(".summary.json").read_text())
    assert summary["rows"] >= 2 * 90 and len(summary["faces"]) >= 2  # two faces through the 100 frames
    window.close()


def test_a_photo_reads_the_same_after_toggling_controls(qtbot, tiny_onnx, face_model_path, tmp_path):
    """Re-processing an unchanged photo (a control toggled off and on) gives the same probabilities: photos are
    not smoothed across re-runs."""
    from skimage import data

    photo = tmp_path / "photo.png"
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[60:360, 170:470] = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:270, 95:355], (300, 300))
    cv2.imwrite(str(photo), frame)
    window = make_window(qtbot, source=str(photo), model=str(tiny_onnx), face_model=str(face_model_path))
    qtbot.waitUntil(lambda: window.last_result is not None and len(window.last_result.faces) == 1, timeout=20000)
    first = window.last_result.faces[0].vector()
    for on in (True, False, True, False):
        before = window.last_result
        window.controls.smoothing_check.setChecked(not on)  # (small faces: photos always search for them)
        qtbot.waitUntil(lambda b=before: window.last_result is not b, timeout=10000)
    np.testing.assert_allclose(window.last_result.faces[0].vector(), first, atol=1e-5)
    window.close()


def test_a_photo_is_searched_for_small_faces_too(qtbot, tiny_onnx, face_model_path, tmp_path):
    """A group photo gets the tile search whatever the checkbox says (a photo has time for it)."""
    from fer_core.synthetic import synthetic_clip

    photo = tmp_path / "group.png"
    cv2.imwrite(str(photo), synthetic_clip(16, (640, 480), 1)[0])  # most of these faces are too small for one pass
    window = make_window(qtbot, source=str(photo), model=str(tiny_onnx), face_model=str(face_model_path))
    qtbot.waitUntil(lambda: window.last_result is not None, timeout=20000)
    check = window.controls.small_faces_check  # says so: checked, and not for changing
    assert check.isChecked() and not check.isEnabled() and "always" in check.toolTip()
    assert not window.settings.pipeline.small_faces  # the user's own choice, for the next video, is kept
    assert len(window.last_result.faces) == 16
    window.close()


def test_missing_camera_gives_message_and_app_stays_usable(qtbot, video, tiny_onnx):
    window = make_window(qtbot, source=9, model=str(tiny_onnx))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10000)
    text = window.banner.text.lower()
    assert "camera 9" in text and "open a video" in text
    assert window.banner.video_button.isVisible() and window.banner.image_button.isVisible()
    window.open_source(str(video))  # still responsive: another source works
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=20000)
    assert not window.banner.isVisible()


def test_switching_sources_quickly_keeps_one_worker(qtbot, video, tiny_onnx):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx))
    for spec in (str(video), 9, str(video), str(video)):
        qtbot.wait(30)
        window.open_source(spec)
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=20000)
    assert window.controls.source_label.text() == f"Now: {video.name}"
    assert sum(1 for _, thread, _ in window._alive if thread.isRunning()) == 1


def test_camera_lost_mid_stream_gives_message(qtbot, video, tiny_onnx, monkeypatch):
    frames = [frame for _, _, frame in feed_mod.open_source(str(video))][:5]

    class StoppingCamera:
        """A live source that delivers a few frames, then stops the way fer_core's sources report it."""

        is_live, fps, frame_size, error, closed = True, 30.0, SIZE, None, False

        def __iter__(self):
            for i, frame in enumerate(frames):
                time.sleep(0.02)
                yield i, i * 33.0, frame
            self.error = "camera 0 stopped delivering frames after 5 frames"

        def close(self):
            self.closed = True

    camera = StoppingCamera()
    monkeypatch.setattr(feed_mod, "open_source", lambda spec: camera)
    window = make_window(qtbot, source=0, model=str(tiny_onnx))
    qtbot.waitUntil(lambda: window.banner.isVisible() and window.frames_shown >= 1, timeout=20000)
    assert "camera lost" in window.banner.text.lower() and "stopped delivering" in window.banner.text
    assert window.view.image is not None  # the last frame stays on show
    window.close()
    assert camera.closed


def test_unreadable_video_gives_message(qtbot, video, tiny_onnx, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    window = make_window(qtbot, source=str(bad), model=str(tiny_onnx))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10000)
    assert "broken.mp4" in window.banner.text
    qtbot.waitUntil(lambda: window.thread.isFinished(), timeout=5000)  # the worker ended, the window did not
    window.open_source(str(video))
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=20000)


def test_corrupt_model_gives_message_and_keeps_working(qtbot, video, tiny_onnx, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00garbage" * 64)
    # At start: a message, and the video still shows (without emotions), with nothing timed or counted.
    window = make_window(qtbot, source=str(video), model=str(corrupt))
    qtbot.waitUntil(lambda: window.banner.isVisible() and window.frames_shown >= 1, timeout=20000)
    assert "corrupt.onnx" in window.banner.text and window.banner.model_button.isVisible()
    rd = window.readouts
    assert rd.text("model") == "not loaded"
    assert {rd.text(k) for k in ("capture_fps", "processed_fps", "total_ms", "inference_ms", "faces")} == {"–"}
    assert window.face_panel.title.text() == "No model loaded"
    combo = window.controls.model_combo
    assert combo.findText(corrupt.name) < 0  # a file that failed leaves the list
    # Switching to a good model recovers; switching back to the corrupt one keeps the good one, in the list too.
    window.set_model(str(tiny_onnx))
    qtbot.waitUntil(lambda: window.readouts.text("model") == tiny_onnx.name, timeout=20000)
    assert window.bench.selected_models() == [str(tiny_onnx)]  # the benchmark tab offers the live model
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=5000)  # it went once a model loaded
    window.set_model(str(corrupt))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10000)
    assert "corrupt.onnx" in window.banner.text and "still using" in window.banner.text.lower()
    qtbot.waitUntil(lambda: combo.currentText() == tiny_onnx.name, timeout=5000)
    assert combo.findText(corrupt.name) < 0
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown > shown, timeout=10000)
    assert window.readouts.text("model") == tiny_onnx.name


def test_readouts_say_ended_and_still_image(qtbot, video, tiny_onnx, face_model_path, tmp_path):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path))
    with qtbot.waitSignal(window.source_ended, timeout=60000):
        pass
    rd = window.readouts
    qtbot.waitUntil(lambda: rd.text("processed_fps") == "ended", timeout=5000)
    assert rd.text("capture_fps") == "ended" and rd.text("faces") == "2"
    photo = tmp_path / "frame.png"
    cv2.imwrite(str(photo), read_frame(video, 0))
    window.open_source(str(photo))
    qtbot.waitUntil(lambda: rd.text("processed_fps") == "still image", timeout=20000)
    assert float(rd.text("total_ms").split()[0]) > 0 and rd.text("faces") == "2"
    window.close()


def test_switching_to_a_model_with_other_classes_mid_video(qtbot, video, tiny_onnx, face_model_path, tmp_path):
    """The session log and a recording cannot mix class lists: the recording is saved, the log starts again."""
    from conftest import make_tiny_onnx
    from fer_core.labels import CANONICAL_CLASSES

    eight = make_tiny_onnx(tmp_path / "eight.onnx", labels=list(CANONICAL_CLASSES))
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path),
                         pace_video=True)
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=20000)
    window.start_recording(tmp_path / "rec")
    qtbot.waitUntil(lambda: window.controls.record_button.isChecked(), timeout=5000)
    window.set_model(str(eight))
    qtbot.waitUntil(lambda: len(window.last_stats.labels) == 8, timeout=20000)
    qtbot.waitUntil(lambda: not window.controls.record_button.isChecked(), timeout=5000)
    assert (tmp_path / "rec.csv").read_text().splitlines()[0].endswith("p_neutral")  # the 7 classes' file
    # Frames of the 8-class model were logged and shown (the old code died writing the first one's face row).
    assert window.last_error == "" and window.worker is not None and window.thread.isRunning()
    window.close()


# ----- command line ------------------------------------------------------------------------------------
def test_cli_screenshot_mode_writes_png_and_exits_0(tmp_path, video, tiny_onnx, face_model_path):
    out = tmp_path / "shot.png"
    args = ["--source", str(video), "--model", str(tiny_onnx), "--provider", "cpu", "--face-model",
            str(face_model_path), "--screenshot", str(out), "--quit-after-frames", "8", "--size", "1100x700",
            "--no-pace"]
    # Also checks that the app never imports torch or the training package.
    code = ("import sys; from app.main import main; rc = main(sys.argv[1:]); "
            "bad = [m for m in ('torch', 'training') if m in sys.modules]; "
            "sys.exit(rc if not bad else f'imported {bad}')")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "screenshot saved" in proc.stdout
    shot = cv2.imread(str(out))
    assert shot is not None and shot.shape[:2] == (700, 1100)


def _app_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "import sys; from app.main import main; sys.exit(main(sys.argv[1:]))", *args]


def test_cli_sigterm_closes_the_app_cleanly(tmp_path, tiny_onnx, face_model_path):
    import signal

    long_video = tmp_path / "long.avi"  # small frames, many of them: still playing when the signal comes
    writer = cv2.VideoWriter(str(long_video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(20000):
        writer.write(np.full((48, 64, 3), i % 200, np.uint8))
    writer.release()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(_app_cmd(["--source", str(long_video), "--model", str(tiny_onnx), "--provider", "cpu",
                                      "--face-model", str(face_model_path), "--quit-after-frames", "100000",
                                      "--timeout", "60"]),
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", ["folder", "model", "provider"])
def test_cli_screenshot_failures_are_one_line_and_non_zero(case, tmp_path, video, tiny_onnx, face_model_path):
    shot = tmp_path / "shot.png"
    model, provider = str(tiny_onnx), "cpu"
    if case == "folder":
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        shot = blocker / "sub" / "shot.png"
    elif case == "model":
        model = str(tmp_path / "broken.onnx")
        Path(model).write_bytes(b"not an onnx model")
    else:
        provider = "tensorrt"  # not available on this machine
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(_app_cmd(["--source", str(video), "--model", model, "--provider", provider,
                                    "--face-model", str(face_model_path), "--screenshot", str(shot),
                                    "--quit-after-frames", "3", "--timeout", "60", "--no-pace"]),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "fer-app:" in proc.stderr


def test_missing_x11_libraries_are_named_before_qt_starts(monkeypatch):
    from app.qt_env import missing_xcb_packages

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    if not sys.platform.startswith("linux"):
        pytest.skip("the xcb check is for Linux")
    found = {"xcb-icccm"}
    assert missing_xcb_packages(lambda lib: "lib.so" if lib in found else None) == ["libxcb-cursor0",
                                                                                    "libxcb-keysyms1"]
    assert missing_xcb_packages(lambda lib: "lib.so") == []
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert missing_xcb_packages(lambda lib: None) == []
