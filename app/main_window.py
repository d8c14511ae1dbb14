"""The main window: controls | live view | selected face, readouts below, and a Benchmark FPS tab.

The window only wires widgets to the :class:`app.worker.InferenceWorker` (one per source, in a
``QThread``) and paints what it sends. Changing the source stops the worker and starts a new one
with the current settings; closing the window stops it cooperatively and waits for it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QRect, QSize, QThread, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QMainWindow, QScrollArea, QTabWidget, QVBoxLayout,
                               QWidget)

from fer_core.model_zoo import default_model_path, list_shipped_models
from fer_core.session import available_providers
from fer_core.sources import IMAGE_EXTS, list_cameras
from fer_core.video_writer import crash_safe_suffix

from app.banner import MessageBanner
from app.bench_panel import BenchPanel
from app.controls import ControlsPanel
from app.face_panel import FacePanel
from app.frame_stats import FrameStats, nothing_to_record
from app.memory import release_freed_memory
from app.qt_env import check_pyside
from app.readouts import Readouts
from app.report_job import ReportJob
from app.video_view import VideoView
from app.worker import InferenceWorker, WorkerSettings, describe_source

log = logging.getLogger(__name__)

STOP_TIMEOUT_MS = 5000
PREFERRED_SIZE = QSize(1360, 860)  # what the window opens at where the screen has room
SCREEN_SHARE = 0.95  # at most this share of the screen's free area (room for the title bar and frame)


def initial_size(available: QRect, minimum: QSize) -> QSize:
    """The size the window opens at on a screen whose free area is ``available``: :data:`PREFERRED_SIZE`,
    shrunk to fit, but never below ``minimum`` unless the screen is smaller still."""
    size = QSize(min(PREFERRED_SIZE.width(), int(available.width() * SCREEN_SHARE)),
                 min(PREFERRED_SIZE.height(), int(available.height() * SCREEN_SHARE)))
    return size.expandedTo(minimum.boundedTo(available.size()))


def output_folder(kind: str) -> Path:
    """Where snapshots (``kind="pictures"``) and recordings (``"videos"``) go by default: a ``FER`` folder in
    the user's Pictures or Videos folder, or in the home folder when that folder does not exist."""
    base = Path(platformdirs.user_pictures_dir() if kind == "pictures" else platformdirs.user_videos_dir())
    return (base if base.is_dir() else Path.home()) / "FER"


def _is_photo(spec: str | int) -> bool:
    """Whether a source spec names a photo or a folder of them (a guess until its frames say)."""
    if isinstance(spec, int) or "://" in spec:
        return False
    path = Path(spec)
    return path.suffix.lower() in IMAGE_EXTS or path.is_dir()




class CameraScan(QThread):
    """Lists cameras in the background (opening devices can take a while)."""

    found = Signal(object)

    def run(self) -> None:
        try:
            self.found.emit(list_cameras())
        except Exception:
            log.exception("camera scan failed")
            self.found.emit([])


def _shipped_models() -> list[Path]:
    try:
        return list_shipped_models()
    except Exception:  # no models/ folder: the window still opens and says so when loading
        log.exception("listing models failed")
        return []


def _default_model() -> Path | None:
    try:
        return default_model_path()
    except Exception:  # none shipped: loading says so in the window
        return None


class MainWindow(QMainWindow):
    """The ``fer-app`` window.

    Signals:
        frame_shown(int): a frame was shown; the count since the current source was opened.
        source_ended(): the current file source has no more frames.
        worker_finished(): the current worker released its source and stopped.
    """

    frame_shown = Signal(int)
    report_ready = Signal(str)  # a session report was written (its path)
    source_ended = Signal()
    worker_finished = Signal()

    def __init__(self, source: str | int | None = 0, model: str | None = None, provider: str = "auto",
                 face_model: str | None = None, pace_video: bool = True, scan_cameras: bool = True) -> None:
        """Args:
            source: opened at once (camera index, file, folder or URL); ``None`` opens nothing.
            model: ONNX classifier; ``None`` = the shipped default.
            provider: execution provider request.
            face_model: MediaPipe face-detector model path.
            pace_video: play video files at their frame rate (False: as fast as processing allows).
            scan_cameras: list the cameras in the background at start.
        """
        check_pyside()  # a clear error instead of a crash a few seconds later
        super().__init__()
        self.setWindowTitle("FER: live facial expression recognition")
        self.settings = WorkerSettings(model_path=model, provider=provider, face_model=face_model,
                                       pace_video=pace_video)
        self.worker: InferenceWorker | None = None
        self.thread: QThread | None = None
        # Every worker with its thread, and whether the thread's `finished` has been handled here.
        self._alive: list[list] = []
        self.frames_shown = 0
        self.last_result: Any = None
        self.last_stats = FrameStats()  # of the frame on show (the defaults: none yet)
        self.last_error = ""
        self.last_recording: str | None = None  # the CSV of the last finished recording
        self.last_report: str | None = None
        self.open_reports = True  # open a finished session report in the browser (off in tests)
        self._camera_scan: CameraScan | None = None
        self._paused_for_bench = False
        # What the error banner on show is about (the worker's error kind, or "warning"): "model" (cleared when a
        # model loads), "frame" (cleared by the next frame processed well), "recording" (cleared when a recording
        # starts), anything else or None (cleared by the next source).
        self._banner_kind: str | None = None
        self._save_dirs: dict[str, Path] = {}  # the folders last chosen for "pictures" and "videos"

        models = _shipped_models()
        providers = available_providers()
        first_model = model or _default_model()  # what the live view will run
        self.controls = ControlsPanel(models, providers, self.settings.pipeline)
        self.controls.set_model(first_model)
        self.controls.set_provider(provider)
        self.view = VideoView()
        self.banner = MessageBanner()
        self.face_panel = FacePanel()
        self.readouts = Readouts()
        self.bench = BenchPanel(models, providers, face_model=face_model)
        if first_model:  # checked before any source opens
            self.bench.set_live_model(first_model)
        self._shipped = {p.resolve() for p in models}
        self.model_in_use: str | None = None  # the classifier the live view runs (set when it has loaded)
        self._build_layout()
        self._build_menu()
        self._connect()
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            self.resize(initial_size(screen.availableGeometry(), self.minimumSizeHint()))
        else:
            self.resize(PREFERRED_SIZE)
        if scan_cameras:
            self.rescan_cameras()
        else:
            self.controls.set_cameras([])
        if source is not None:
            self.open_source(source)

    # ----- layout --------------------------------------------------------------------------------
    def _build_layout(self) -> None:
        self.controls_scroll = controls_scroll = QScrollArea()
        controls_scroll.setWidget(self.controls)
        controls_scroll.setWidgetResizable(True)
        # As narrow as the controls allow next to a vertical scroll bar (small screens), at most 300 px.
        narrow = (self.controls.minimumSizeHint().width() + controls_scroll.verticalScrollBar().sizeHint().width()
                  + 2 * controls_scroll.frameWidth())
        controls_scroll.setMinimumWidth(narrow)
        controls_scroll.setMaximumWidth(max(narrow, 300))
        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(0, 0, 0, 0)
        center_layout.addWidget(self.banner)
        center_layout.addWidget(self.view, 1)
        self.face_panel.setMinimumWidth(240)
        self.face_panel.setMaximumWidth(340)
        live = QWidget()
        live_layout = QHBoxLayout(live)
        live_layout.setContentsMargins(4, 4, 4, 4)
        live_layout.addWidget(controls_scroll)
        live_layout.addWidget(center, 1)
        live_layout.addWidget(self.face_panel)
        self.tabs = QTabWidget()
        self.tabs.addTab(live, "Live")
        bench_scroll = QScrollArea()  # the benchmark's table and chart scroll on a small screen
        bench_scroll.setWidget(self.bench)
        bench_scroll.setWidgetResizable(True)
        bench_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.tabs.addTab(bench_scroll, "Benchmark FPS")
        root = QWidget()
        root_layout = QVBoxLayout(root)
        root_layout.setContentsMargins(4, 4, 4, 0)
        root_layout.addWidget(self.tabs, 1)
        root_layout.addWidget(self.readouts)
        self.setCentralWidget(root)

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for text, shortcut, slot in (
            ("Open &video…", QKeySequence.StandardKey.Open, self.controls.choose_video),
            ("Open &image…", None, self.controls.choose_image),
            ("Open &model…", None, self.controls.choose_model),
            ("Save &snapshot…", QKeySequence("Ctrl+S"), self.choose_snapshot),
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        ):
            action = QAction(text, self)
            if shortcut is not None:
                action.setShortcut(shortcut)
            action.triggered.connect(slot)
            menu.addAction(action)

    def _connect(self) -> None:
        c = self.controls
        c.camera_requested.connect(self.open_source)
        c.file_requested.connect(self.open_source)
        c.cameras_refresh_requested.connect(self.rescan_cameras)
        c.model_requested.connect(self.set_model)
        c.provider_requested.connect(lambda name: self._change(provider=name))
        c.settings_changed.connect(lambda pipeline: self._change(pipeline=pipeline))
        c.pause_toggled.connect(self.set_paused)
        c.snapshot_requested.connect(self.choose_snapshot)
        c.record_toggled.connect(self._on_record_toggled)
        c.burn_fps_changed.connect(lambda on: self._change(burn_fps=on))
        c.report_requested.connect(self.make_report)
        self.banner.open_video.connect(c.choose_video)
        self.banner.open_image.connect(c.choose_image)
        self.banner.choose_model.connect(c.choose_model)
        self.view.clicked.connect(self.select_face_at)
        self.bench.run_started.connect(self._on_bench_started)
        self.bench.run_finished.connect(self._on_bench_finished)

    # ----- source and worker -----------------------------------------------------------------------
    @Slot(object)
    def open_source(self, spec: str | int) -> None:
        """Stop the current worker and start one on ``spec`` (camera index, file, folder or URL)."""
        if isinstance(spec, str) and spec.strip().isdigit():
            spec = int(spec)
        self.stop_worker()
        self.banner.hide()
        self._banner_kind = None
        self.frames_shown = 0
        self.last_result, self.last_stats = None, FrameStats()
        self.face_panel.clear()
        self.readouts.clear()
        self.view.set_image(None)
        self.view.set_placeholder(f"Opening {describe_source(spec)}…")
        self.controls.set_source_text(f"Now: {describe_source(spec)}")
        self.controls.set_still(_is_photo(spec))  # until its frames say
        self.controls.set_recording(False)
        self.controls.set_can_record(False)  # until frames come
        self.controls.set_record_text("")
        self.readouts.set_recording(False)
        self.controls.set_paused(False)
        self.settings = dataclasses.replace(self.settings, selected_track=None, paused=False)
        worker = InferenceWorker(spec, self.settings, max_in_flight=2)
        thread = QThread(self)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.frame_ready.connect(self._on_frame)
        worker.error.connect(self._on_error)
        worker.warning.connect(self._on_warning)
        worker.status.connect(self._on_status)
        worker.ended.connect(self._on_ended)
        worker.recording_changed.connect(self._on_recording_changed)
        worker.model_loaded.connect(self._on_model_loaded)
        worker.model_failed.connect(self._on_model_failed)
        worker.recording_saved.connect(self._on_recording_saved)
        worker.finished.connect(self._on_worker_finished)
        worker.finished.connect(thread.quit)
        thread.finished.connect(self._on_thread_finished)
        self.worker, self.thread = worker, thread
        self._alive.append([worker, thread, False])
        self._forget_finished()
        thread.start()

    def stop_worker(self, timeout_ms: int = STOP_TIMEOUT_MS) -> bool:
        """Stop the current worker cooperatively and wait for its thread; True when it has ended."""
        worker, thread = self.worker, self.thread
        self.worker = self.thread = None
        if worker is None:
            return True
        worker.stop()
        thread.quit()
        stopped = thread.wait(timeout_ms)
        if not stopped:  # kept in self._alive until it ends, so that nothing is deleted under it
            log.warning("the worker for %s did not stop within %d ms", worker.source_spec, timeout_ms)
        return stopped

    @Slot()
    def _on_thread_finished(self) -> None:
        """Forget old workers whose thread has ended.

        A thread's ``finished`` arrives after every signal its worker sent, so once it has been handled
        here no queued signal refers to that worker any more and it can be deleted.
        """
        for entry in self._alive:
            if entry[1] is self.sender():
                entry[2] = True
        self._forget_finished()

    def _forget_finished(self) -> None:
        keep = []
        for worker, thread, finished in self._alive:
            if finished and thread is not self.thread:
                thread.deleteLater()
            else:
                keep.append([worker, thread, finished])
        if len(keep) < len(self._alive):
            release_freed_memory()  # a worker's session and detector are gone: their memory goes back too
        self._alive = keep

    def _change(self, **changes: Any) -> None:
        self.settings = dataclasses.replace(self.settings, **changes)
        if self.worker is not None:
            self.worker.update_settings(**changes)

    def set_model(self, path: str) -> None:
        """Use another ONNX classifier (errors appear in the banner; the old model stays in use)."""
        self.controls.set_model(path)
        self._change(model_path=str(path))

    @Slot(str)
    def _on_model_loaded(self, path: str) -> None:
        if not self._from_current():
            return
        self.model_in_use = path
        self.controls.set_model(path)
        self.bench.set_live_model(path)
        self._clear_banner("model")

    @Slot(str)
    def _on_model_failed(self, path: str) -> None:
        """The list shows the model in use again; a failed file of the user's own leaves the list."""
        if not self._from_current():
            return
        if path and Path(path).resolve() not in self._shipped:
            self.controls.remove_model(path)
        self.controls.set_model(self.model_in_use)
        if self.model_in_use is not None:  # the next source opens with the model that works
            self.settings = dataclasses.replace(self.settings, model_path=self.model_in_use)

    def set_paused(self, paused: bool) -> None:
        self.controls.set_paused(paused)
        self._change(paused=paused)
        self.statusBar().showMessage("Paused" if paused else "Running", 3000)

    def select_face_at(self, x: float, y: float) -> int | None:
        """Follow the face under frame point (x, y); a click beside every face goes back to the largest."""
        faces = self.last_result.faces if self.last_result is not None else []
        hits = [f for f in faces if f.box[0] <= x <= f.box[0] + f.box[2] and f.box[1] <= y <= f.box[1] + f.box[3]]
        track = min(hits, key=lambda f: f.box[2] * f.box[3]).track_id if hits else None
        self.select_track(track)
        return track

    def select_track(self, track_id: int | None) -> None:
        """Show this track in the side panel (``None`` = the largest face)."""
        self._change(selected_track=track_id)
        if track_id is not None:
            self.face_panel.select(track_id, self.last_result)
        self.statusBar().showMessage(f"Following face #{track_id}" if track_id is not None
                                     else "Following the largest face", 3000)

    def rescan_cameras(self) -> None:
        if self._camera_scan is not None and self._camera_scan.isRunning():
            return
        self.controls.set_cameras(None)
        self._camera_scan = CameraScan(self)
        self._camera_scan.found.connect(self.controls.set_cameras)
        self._camera_scan.start()

    def _on_bench_started(self) -> None:
        """Pause the live view during a benchmark, so that both do not compete for the processor."""
        self._paused_for_bench = self.worker is not None and not self.settings.paused
        if self._paused_for_bench:
            self.set_paused(True)
            self.statusBar().showMessage("Live view paused while the benchmark runs", 5000)

    def _on_bench_finished(self, rows: object) -> None:
        if self._paused_for_bench:
            self._paused_for_bench = False
            self.set_paused(False)

    # ----- worker signals ------------------------------------------------------------------------
    @Slot(QImage, object, object)
    def _on_frame(self, image: QImage, result: Any, stats: FrameStats) -> None:
        worker = self.sender()
        if worker is not None:
            worker.frame_shown()
        if worker is not self.worker:  # a late frame from a worker being replaced
            return
        self.view.set_image(image)
        self.last_result, self.last_stats = result, stats
        self.readouts.update_stats(stats)
        self.face_panel.update_result(result, stats.selected_track, stats.time_ms, stats.labels)
        self._show_source_state(stats)
        if getattr(result, "timings", None):  # processed well (a failed frame has no timings)
            self._clear_banner("frame")
        self.frames_shown += 1
        self.frame_shown.emit(self.frames_shown)

    def _show_source_state(self, stats: FrameStats) -> None:
        """What the controls offer for the source on show: a photo searches for small faces whatever the
        checkbox says; Record only while new frames will come."""
        state = stats.state
        if state == "still":
            self.controls.set_still(True)
        elif state in ("running", "paused", "ended"):
            self.controls.set_still(False)
        self.controls.set_can_record(stats.can_record)

    def _clear_banner(self, kind: str) -> None:
        """Hide the error banner when it is about ``kind`` (the trouble is over)."""
        if self._banner_kind == kind:
            self._banner_kind = None
            self.banner.hide()

    def _from_current(self) -> bool:
        return self.sender() is self.worker

    @Slot(str, str)
    def _on_error(self, message: str, kind: str) -> None:
        if not self._from_current():
            return
        self.last_error = message
        self.banner.show_message(message, "error", offer_model=kind == "model")
        self._banner_kind = kind
        self.statusBar().showMessage(message, 15000)
        if self.view.image is None:
            self.view.set_placeholder(message + "\n\nUse “Open video…” or “Open image…” on the left or above.")

    @Slot(str)
    def _on_warning(self, message: str) -> None:
        if self._from_current():
            self.banner.show_message(message, "warning", offer_sources=False)
            self._banner_kind = "warning"

    @Slot(str)
    def _on_status(self, message: str) -> None:
        if self._from_current():
            self.statusBar().showMessage(message, 8000)

    @Slot()
    def _on_ended(self) -> None:
        if self._from_current():
            self.source_ended.emit()

    @Slot(bool)
    def _on_recording_changed(self, on: bool) -> None:
        if not self._from_current():
            return
        self.controls.set_recording(on)
        self.readouts.set_recording(on)
        if not on:
            self.controls.set_record_text("")
            return
        self._clear_banner("recording")
        recorder = self.worker.files.recording.recorder  # None if it has stopped already
        if recorder is None:
            return  # (the worker's status line says what it records to)
        self.controls.set_record_text(f"Recording to {recorder.video_path.name} ({recorder.codec}) and "
                                      f"{recorder.csv_path.name} in {recorder.video_path.parent}")

    @Slot()
    def _on_worker_finished(self) -> None:
        """The current worker stopped by itself: its source could not be opened, or it failed."""
        if not self._from_current():
            return
        name = describe_source(self.worker.source_spec)
        self.controls.set_source_text(f"Could not open {name}" if self.frames_shown == 0 else f"Stopped: {name}")
        self.controls.set_can_record(False)
        self.worker_finished.emit()

    # ----- snapshot and recording ------------------------------------------------------------------
    def save_snapshot(self, path: str | Path) -> bool:
        """Save the annotated frame on show as PNG; False (and a message) when there is none or it fails."""
        image = self.view.image
        if image is None or not image.save(str(path), "PNG"):
            self._show_local_error(f"Cannot save a snapshot to {path}" + (": no frame yet" if image is None else ""))
            return False
        self.statusBar().showMessage(f"Saved snapshot {path}", 5000)
        return True

    def _save_folder(self, kind: str) -> Path:
        """Where a save dialog starts: the folder last chosen for ``kind``, else :func:`output_folder` (made
        when missing; its parent when it cannot be made)."""
        folder = self._save_dirs.get(kind) or output_folder(kind)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = folder.parent
        return folder

    def choose_snapshot(self) -> None:
        default = self._save_folder("pictures") / time.strftime("fer_snapshot_%Y%m%d_%H%M%S.png")
        path, _ = QFileDialog.getSaveFileName(self, "Save snapshot", str(default), "PNG images (*.png)")
        if path:
            self._save_dirs["pictures"] = Path(path).parent
            self.save_snapshot(path)

    def start_recording(self, base_path: str | Path) -> bool:
        """Record the annotated video to ``<base>`` plus a video suffix and per-face rows to ``<base>.csv``."""
        if self.worker is None or (self.frames_shown and not self.last_stats.can_record):
            self._show_local_error("Nothing to record: open a camera, a video or an image first."
                                   if self.worker is None else nothing_to_record(self.last_stats.state))
            self.controls.set_recording(False)
            return False
        self.worker.start_recording(base_path)
        return True

    def stop_recording(self) -> None:
        if self.worker is not None:
            self.worker.stop_recording()

    def _on_recording_saved(self, csv_path: str) -> None:
        self.last_recording = csv_path
        self.controls.report_button.setEnabled(True)

    def make_report(self) -> None:
        """Write the session report of the last recording in the background, then open it."""
        if not self.last_recording:
            return
        self.controls.report_button.setEnabled(False)
        self.statusBar().showMessage("Writing the session report...")
        job = ReportJob(self)
        job.done.connect(self._on_report_done)
        job.failed.connect(self._on_report_failed)
        job.start(self.last_recording)

    def _on_report_done(self, path: str) -> None:
        self.controls.report_button.setEnabled(True)
        self.last_report = path
        self.statusBar().showMessage(f"Session report: {path}", 10000)
        if self.open_reports:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))
        self.report_ready.emit(path)

    def _on_report_failed(self, message: str) -> None:
        self.controls.report_button.setEnabled(True)
        self._show_local_error(message)

    def _on_record_toggled(self, on: bool) -> None:
        if not on:
            self.stop_recording()
            return
        default = self._save_folder("videos") / time.strftime("fer_recording_%Y%m%d_%H%M%S")
        suffix = crash_safe_suffix()
        path, _ = QFileDialog.getSaveFileName(self, f"Record to (a {suffix} video and a .csv are written)",
                                              str(default), f"Video (*{suffix})")
        if path:
            self._save_dirs["videos"] = Path(path).parent
        if not path or not self.start_recording(path):
            self.controls.set_recording(False)

    def _show_local_error(self, message: str) -> None:
        self.last_error = message
        self.banner.show_message(message, "error")
        self.statusBar().showMessage(message, 10000)

    # ----- closing -----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_worker()
        self.bench.stop()
        if self._camera_scan is not None:
            self._camera_scan.wait(3000)
        super().closeEvent(event)

