"""Background worker for the live view: capture + inference in a ``QThread``.

Widgets never compute. :class:`InferenceWorker` processes the frames of one source (an :class:`app.feed.Feed`),
draws the overlay (:func:`fer_core.draw.draw_results`) and emits it as a ``QImage`` with the result and its
:class:`app.frame_stats.FrameStats`; files are :class:`app.session_log.SessionFiles`. The UI talks to it through
thread-safe methods (an :class:`app.worker_settings.Inbox`). Stopping is cooperative: :meth:`InferenceWorker.stop`
sets a flag, the loop ends, and everything is closed in the worker's thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from fer_core.api import EmotionRecognizer
from fer_core.draw import draw_results
from fer_core.results import FrameResult
from fer_core.sources import ImageSource

from app.feed import Feed, FeedError, Item, describe_source, open_feed
from app.frame_stats import FrameStats, nothing_to_record, selected_face
from app.memory import release_freed_memory
from app.session_log import SessionFiles
from app.worker_settings import Inbox, WorkerSettings

__all__ = ["InferenceWorker", "WorkerSettings", "FrameStats", "describe_source", "to_qimage"]

log = logging.getLogger(__name__)


def to_qimage(frame: np.ndarray) -> QImage:
    """A ``QImage`` (``Format_RGB32``, what Qt paints and scales without converting) of a BGR, BGRA or grey uint8
    frame; it owns its pixels."""
    h, w = frame.shape[:2]
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    image = QImage(w, h, QImage.Format.Format_RGB32)  # B, G, R, 255 in memory: BGRA
    pixels = np.frombuffer(image.bits(), np.uint8).reshape(h, image.bytesPerLine() // 4, 4)[:, :w]
    code = cv2.COLOR_GRAY2BGRA if frame.ndim == 2 else cv2.COLOR_BGR2BGRA
    cv2.cvtColor(np.ascontiguousarray(frame), code, dst=pixels)
    return image


class InferenceWorker(QObject):
    """Capture + inference loop for one source; run :meth:`run` in a ``QThread``.

    Args:
        source_spec: camera index, video/image/folder path or stream URL (see ``open_source``).
        settings: initial settings (copied).
        max_in_flight: send a frame only while fewer than this many are unacknowledged (the receiver calls
            :meth:`frame_shown`); ``None`` = every frame. Frames not sent are not drawn either (unless recorded).

    Signals:
        frame_ready(QImage, FrameResult, FrameStats): annotated frame, its result and its readouts.
        error(str, str): something failed, in words for the user (the worker goes on where it can), and what it
            is about: ``"source"``, ``"model"``, ``"frame"`` or ``"recording"`` (what clears the banner).
        warning(str): it works, but not as well as it could (e.g. the Haar fallback detector).
        status(str): progress notes (source opened, model loaded, end of video, recording saved).
        ended(): a file source has no more frames, or a live stream stopped (the last frame is held).
        recording_changed(bool): recording started or stopped (also when it failed or was refused).
        model_loaded(str): the classifier now in use (its path), after a (re)load.
        model_failed(str): the classifier asked for (its path; empty: the default) could not be loaded.
        recording_saved(str): the face CSV of a finished recording, or of a video / photos that ended.
        finished(): the loop has ended and everything is released.
    """

    frame_ready = Signal(QImage, object, object)
    error = Signal(str, str)
    warning = Signal(str)
    status = Signal(str)
    ended = Signal()
    recording_changed = Signal(bool)
    model_loaded = Signal(str)
    model_failed = Signal(str)
    recording_saved = Signal(str)
    finished = Signal()

    def __init__(self, source_spec: str | int, settings: WorkerSettings | None = None,
                 max_in_flight: int | None = None) -> None:
        super().__init__()
        self.source_spec = source_spec
        self._inbox = Inbox(settings, max_in_flight)
        self._stop_event = threading.Event()
        # Owned by the worker thread:
        self.feed: Feed | None = None
        self.pipeline: EmotionRecognizer | None = None
        self.files = SessionFiles(self)  # the session log of a file source and the user's recording
        self._still = False  # photos: no tracking or smoothing across them
        self._loaded_key: tuple | None = None
        self._held: Item | None = None
        self._held_result: FrameResult | None = None
        self._held_key: tuple | None = None
        self._is_ended = False
        self._done_version = -1  # the settings version last shown; -1: show the held frame again
        self._frames_processed = 0
        self._ui_dropped = 0
        self.released = False

    # ----- thread-safe API for the UI thread -------------------------------------------------
    def settings(self) -> WorkerSettings:
        """A copy of the current settings."""
        return self._inbox.settings()

    def update_settings(self, **changes: Any) -> None:
        """Change settings (names of :class:`WorkerSettings` fields); applied at the next frame."""
        self._inbox.update(**changes)

    def start_recording(self, base_path: str | Path) -> None:
        """Record the annotated video to ``<base>.mp4`` and per-face rows to ``<base>.csv`` (refused, with a
        message, when no frame can come: see :attr:`FrameStats.can_record`)."""
        self._inbox.request("start", str(base_path))

    def stop_recording(self) -> None:
        """Stop recording and close both files."""
        self._inbox.request("stop")

    def frame_shown(self) -> None:
        """Acknowledge one ``frame_ready`` (only needed with ``max_in_flight``)."""
        self._inbox.shown()

    def stop(self) -> None:
        """Ask the loop to end; the worker then releases everything and emits ``finished``."""
        self._stop_event.set()
        self._inbox.wake.set()
        if (feed := self.feed) is not None:
            feed.stop()

    # ----- the loop (worker thread) ------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Open the source and the pipeline, then process frames until stopped."""
        try:
            self._run()
        except Exception as exc:  # last line of defence: a message, never a crash of the app
            log.exception("worker failed")
            self.error.emit(f"Unexpected error while processing {describe_source(self.source_spec)}: {exc}", "source")
        finally:
            self._release()
            self.finished.emit()

    def _run(self) -> None:
        try:
            self.feed = open_feed(self.source_spec, self._stop_event)
        except FeedError as exc:
            self.error.emit(str(exc), "source")
            return
        self._still = isinstance(self.feed.source, ImageSource)
        self.status.emit(self.feed.opened_message())
        settings, _ = self._inbox.snapshot()
        self._load_pipeline(settings)
        if not self.feed.is_live:
            self.files.open_log(self.feed.source, self.pipeline.labels if self.pipeline else None, photos=self._still)
        was_paused = settings.paused
        while not self._stop_event.is_set():
            self._inbox.wake.clear()
            settings, version = self._inbox.snapshot()
            if (settings.model_path, settings.provider) != self._loaded_key:
                self._load_pipeline(settings)
            if self.pipeline is not None:
                self.pipeline.settings = settings.pipeline
            self._handle_record_request()
            if was_paused and not settings.paused:  # the rates start again from the resumed frames
                self.feed.restart_rates()
            was_paused = settings.paused
            item = None if (settings.paused or self._is_ended) else self._next_frame(settings)
            if self._stop_event.is_set():
                break
            if item is not None:
                self._process(item, settings, new_frame=True)
                self._done_version = version
            elif self._held is not None and version != self._done_version:
                # Paused or at the end: show the new state, setting and selection changes on the held frame.
                redo = settings.processing_key() != self._held_key
                self._process(self._held, settings, new_frame=False, reprocess=redo)
                self._done_version = version
            elif settings.paused or self._is_ended:
                self.feed.hold()
                self._inbox.wake.wait(0.1)

    def _load_pipeline(self, s: WorkerSettings) -> None:
        """(Re)build the pipeline for the settings' model and provider; keep the old one on failure."""
        self._loaded_key = (s.model_path, s.provider)
        try:
            pipeline = EmotionRecognizer(s.model_path, s.pipeline, provider=s.provider, face_model=s.face_model)
        except Exception as exc:
            what = Path(s.model_path).name if s.model_path else "the default model"
            keep = f" Still using {Path(str(self.pipeline.model_path)).name}." if self.pipeline else ""
            self.error.emit(f"Cannot load {what}: {exc}.{keep}".replace("..", "."), "model")
            self.model_failed.emit(s.model_path or "")
            return
        old, self.pipeline = self.pipeline, pipeline
        if old is not None:
            old.close()
            if list(old.labels) != list(pipeline.labels):  # the face tables start again
                self.files.new_classes(pipeline.labels)
            del old
            release_freed_memory()  # the old session's memory goes back to the system, not to this thread's arena
        self.model_loaded.emit(str(pipeline.model_path))
        self.status.emit(f"Model {Path(str(pipeline.model_path)).name} on {pipeline.provider}, "
                         f"face detector: {pipeline.detector_backend}")
        if pipeline.detector_backend != "mediapipe":
            self.warning.emit(pipeline.detector_warning or "MediaPipe face-detector model not found: using "
                              "OpenCV's Haar cascade (less accurate). Pass --face-model or set FER_FACE_MODEL.")

    def _next_frame(self, s: WorkerSettings) -> Item | None:
        item = self.feed.next(pace=s.pace_video)
        if item is None and self.feed.ended:  # the held frame is shown again, as ended
            self._is_ended, self._done_version = True, -1
            is_error, message = self.feed.end_message(self._frames_processed)
            if is_error:
                self.error.emit(message, "source")
            else:
                self.status.emit(message)
            self.files.end()
            self.ended.emit()
        return item

    def _process(self, item: Item, s: WorkerSettings, new_frame: bool, reprocess: bool = True) -> None:
        idx, t_ms, frame = item
        if reprocess or self._held_result is None:
            result = self._infer(frame)
            self._held_result, self._held_key = result, s.processing_key()
        else:
            result = self._held_result
        if new_frame:
            self._held = item
            self.feed.processed()
            self._frames_processed += 1
        selected = selected_face(result, s.selected_track)
        stats = self._stats(result, idx, t_ms, selected, s)
        send = not new_frame or self._inbox.ui_has_room()  # the UI is behind: it gets the next frame instead
        annotated = None
        if send or self.files.recording.active:  # a frame nobody sees or records is not drawn
            burn = s.burn_fps and stats.state == "running"
            annotated = draw_results(frame, result, stats.labels, fps=stats.processed_fps if burn else None,
                                     latency_ms=stats.total_ms if burn else None, selected=selected)
        if new_frame:
            self.files.write(idx, t_ms, result, annotated)
        if not send:
            self._ui_dropped += 1
            return
        self._inbox.sent()
        self.frame_ready.emit(to_qimage(annotated), result, stats)

    def _infer(self, frame: np.ndarray) -> FrameResult:
        try:
            if self.pipeline is not None:
                return self.pipeline.process(frame, still=self._still)
        except Exception as exc:
            log.exception("pipeline failed")
            self.error.emit(f"Processing a frame failed: {exc}", "frame")
        return FrameResult(faces=[], timings={}, frame_shape=tuple(frame.shape))

    def _stats(self, result: FrameResult, idx: int, t_ms: float, selected: int | None,
               s: WorkerSettings) -> FrameStats:
        if self.pipeline is None:
            state = "no model"
        else:
            state = "still" if self._still else "ended" if self._is_ended else "paused" if s.paused else "running"
        return FrameStats.of(
            state, result, self.pipeline, self.feed.rates() if state == "running" else None, selected_track=selected,
            frame_index=int(idx), time_ms=float(t_ms), frames_processed=self._frames_processed,
            dropped=self.feed.dropped + self._ui_dropped, source=self.feed.name, live=self.feed.is_live,
            recording=self.files.recording.active, can_record=self._can_record())

    def _can_record(self) -> bool:
        """New frames will come (not at the end of a file or stream, not a photo)."""
        return not (self._is_ended or self._still)

    def _handle_record_request(self) -> None:
        request = self._inbox.take_request()
        if request is not None:
            labels = list(self.pipeline.labels) if self.pipeline is not None else []
            refused = None if self._can_record() else nothing_to_record("still" if self._still else "ended")
            self.files.recording.handle(request, self.feed.source, self.feed.rates()[1], labels, refused)

    # ----- shutdown ----------------------------------------------------------------------------
    def _release(self) -> None:
        """Close the recording, the session log, the source (after the grabber let go of it) and the pipeline."""
        self.files.close()
        feed, self.feed = self.feed, None
        if feed is not None:
            feed.close()
        if self.pipeline is not None:
            self.pipeline.close()  # never raises (the detector logs what fails)
        self.pipeline = None
        self._held = self._held_result = None
        self.released = True
