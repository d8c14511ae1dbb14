"""The app's worker and its parts (issues 22, 23): the frame rates, the session log's temporary files, recording
only what can be recorded, and pacing in screenshot mode. Real video, real MediaPipe, conftest's tiny model."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

import app  # noqa: F401  (the OpenCV / Qt plugin-path fix, before pytest-qt creates the QApplication)
from app import session_log
from app.feed import RateMeter, frame_rates
from app.frame_stats import FrameStats
from app.worker import InferenceWorker
from test_app import write_two_face_video


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> Path:
    return write_two_face_video(tmp_path_factory.mktemp("video") / "short.mp4", 12)


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """The temporary folder the worker's session logs go to (a fresh one per test)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


class Running:
    """A worker in a QThread with every signal it sends collected."""

    def __init__(self, qtbot, worker: InferenceWorker) -> None:
        from PySide6.QtCore import QThread

        self.qtbot, self.worker, self.thread = qtbot, worker, QThread()
        self.stats: list[FrameStats] = []
        self.errors, self.statuses, self.saved, self.recording = [], [], [], []
        self.ended = False
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        worker.frame_ready.connect(lambda img, res, stats: (self.stats.append(stats), worker.frame_shown()))
        worker.error.connect(lambda message, kind: self.errors.append((message, kind)))
        worker.status.connect(self.statuses.append)
        worker.recording_saved.connect(self.saved.append)
        worker.recording_changed.connect(self.recording.append)
        worker.ended.connect(lambda: setattr(self, "ended", True))
        self.thread.start()

    def wait(self, condition, timeout_ms: int = 20000) -> None:
        self.qtbot.waitUntil(condition, timeout=timeout_ms)

    def stop(self) -> None:
        with self.qtbot.waitSignal(self.worker.finished, timeout=10000):
            self.worker.stop()
        self.thread.quit()
        assert self.thread.wait(5000)


# ----- frame rates (issue 23) -----------------------------------------------------------------------------
def test_processed_rate_of_a_slow_consumer_is_below_the_capture_rate():
    captured, processed = RateMeter(window_s=1.0), RateMeter(window_s=1.0)
    for i in range(60):  # 30 fps for 2 s; every other frame processed, counted at its capture time
        captured.tick(now=i / 30)
        if i % 2:
            processed.tick(now=i / 30)
    capture_fps, processed_fps = frame_rates(captured, processed, now=2.0)
    assert capture_fps == pytest.approx(30, rel=0.1) and processed_fps == pytest.approx(15, rel=0.15)


def test_processed_fps_never_reads_above_capture_fps(qtbot, settings, tmp_path, own_tmp):
    video = write_two_face_video(tmp_path / "clip.mp4", 40)
    run = Running(qtbot, InferenceWorker(str(video), settings))
    run.wait(lambda: run.ended)
    run.stop()
    rates = [(s.capture_fps, s.processed_fps) for s in run.stats if s.state == "running"]
    assert len(rates) >= 30 and all(c > 0 for c, _ in rates[2:])
    assert all(p <= c for c, p in rates), [r for r in rates if r[1] > r[0]][:5]


# ----- the session log's temporary files (issue 23) ----------------------------------------------------------
def session_folders(root: Path) -> list[Path]:
    return sorted(root.glob("fer-session-*"))


def test_a_source_closed_before_its_end_leaves_no_session_log(qtbot, settings, short_video, own_tmp):
    run = Running(qtbot, InferenceWorker(str(short_video), settings))
    run.wait(lambda: len(run.stats) >= 3)
    assert len(session_folders(own_tmp)) == 1  # the log exists while the video plays
    run.stop()
    assert session_folders(own_tmp) == [] and run.saved == []


def test_the_log_of_an_ended_video_stays_for_its_report_until_the_app_exits(qtbot, settings, short_video, own_tmp):
    run = Running(qtbot, InferenceWorker(str(short_video), settings))
    run.wait(lambda: run.ended)
    run.stop()
    assert len(run.saved) == 1 and Path(run.saved[0]).is_file()  # the report of the session can still be made
    assert Path(run.saved[0]).parent.name.startswith(f"fer-session-{os.getpid()}-")
    session_log._remove_kept()  # what runs at exit
    assert session_folders(own_tmp) == []


def test_stale_session_folders_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has just ended
    folders = {name: tmp_path / name for name in (
        f"fer-session-{gone}-abc", f"fer-session-{os.getpid()}-abc", f"fer-session-{os.getppid()}-abc",
        "fer-session-old_xyz", "fer-session-new_xyz")}
    for folder in folders.values():
        folder.mkdir()
        (folder / "clip_faces.csv").write_text("frame\n")
    old = time.time() - 2 * session_log.STALE_AFTER_S
    os.utime(folders["fer-session-old_xyz"], (old, old))
    (tmp_path / "fer-session-file").write_text("not a folder")
    assert session_log.remove_stale_session_folders(tmp_path) == 2
    assert sorted(p.name for p in session_folders(tmp_path)) == sorted(
        [f"fer-session-{os.getpid()}-abc", f"fer-session-{os.getppid()}-abc", "fer-session-file",
         "fer-session-new_xyz"])


# ----- recording only what can be recorded (issue 23) ------------------------------------------------------
def test_record_on_an_ended_video_is_refused_and_writes_nothing(qtbot, settings, short_video, tmp_path, own_tmp):
    run = Running(qtbot, InferenceWorker(str(short_video), settings))
    run.wait(lambda: run.ended and run.stats and run.stats[-1].state == "ended")
    assert not run.stats[-1].can_record and all(s.can_record for s in run.stats if s.state == "running")
    saved = list(run.saved)
    run.worker.start_recording(tmp_path / "rec")
    run.wait(lambda: run.recording == [False], 5000)
    run.stop()
    assert any("Nothing to record" in e and kind == "recording" for e, kind in run.errors)
    assert list(tmp_path.glob("rec*")) == [] and run.saved == saved
    assert not any(s.startswith("Saved") for s in run.statuses)


def test_a_recording_that_got_no_frame_is_deleted_not_claimed(qtbot, settings, short_video, tmp_path, own_tmp):
    from dataclasses import replace

    run = Running(qtbot, InferenceWorker(str(short_video), replace(settings, paused=True)))
    run.wait(lambda: run.worker.pipeline is not None)
    run.worker.start_recording(tmp_path / "rec")
    run.wait(lambda: run.recording == [True], 5000)
    run.worker.stop_recording()
    run.wait(lambda: run.recording == [True, False], 5000)
    run.stop()
    assert list(tmp_path.glob("rec*")) == [] and run.saved == []
    assert any("Nothing recorded" in s for s in run.statuses)
    assert not any(s.startswith("Saved") for s in run.statuses)


# ----- screenshot mode plays like the live view (issue 23) ---------------------------------------------------
def test_screenshot_mode_paces_video_like_the_live_view(qapp, monkeypatch, tmp_path):
    from app import main as app_main
    from app import main_window

    class Built(Exception):
        pass

    def fake_window(**kwargs):
        raise Built(kwargs)

    monkeypatch.setattr(main_window, "MainWindow", fake_window)
    for extra, paced in (([], True), (["--no-pace"], False)):
        with pytest.raises(Built) as built:
            app_main.main(["--source", "clip.mp4", "--screenshot", str(tmp_path / "s.png"),
                           "--quit-after-frames", "5", *extra])
        assert built.value.args[0]["pace_video"] is paced


# ----- memory (issue 23) ------------------------------------------------------------------------------------
def test_a_replaced_pipeline_is_freed_and_its_memory_given_back(qtbot, settings, short_video, tmp_path, own_tmp,
                                                                 monkeypatch):
    """The old model's session must not outlive a switch (benchmarks/app_reopen.py measures the memory)."""
    import gc
    import shutil
    import weakref
    from dataclasses import replace

    from app import worker as worker_mod

    trims = []
    monkeypatch.setattr(worker_mod, "release_freed_memory", lambda: trims.append(1) or True)
    copy = tmp_path / "copy.onnx"
    shutil.copy(settings.model_path, copy)
    run = Running(qtbot, InferenceWorker(str(short_video), replace(settings, paused=True)))
    run.wait(lambda: run.worker.pipeline is not None)
    first = weakref.ref(run.worker.pipeline)
    run.worker.update_settings(model_path=str(copy))
    # the new pipeline is in place before the old one is closed and the memory trimmed: wait for the trim
    run.wait(lambda: run.worker.pipeline is not None and run.worker.pipeline.model_path == copy and bool(trims))
    gc.collect()
    dead = first() is None
    run.stop()
    assert dead and trims
