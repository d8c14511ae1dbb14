"""Background worker for the live view: capture + inference in a ``QThread``.

Widgets never compute. :class:`InferenceWorker` is a ``QObject`` moved to a ``QThread``; it owns the
frame source and the :class:`fer_core.pipeline.Pipeline`, processes only the newest frame (a
:class:`LatestFrameGrabber` thread keeps reading live cameras and drops stale frames; video files are
read one frame after the other, optionally paced to their frame rate), draws the overlay with
:func:`fer_core.draw.draw_results` and emits it as a ``QImage`` with the result and a stats dict.

The UI changes settings through thread-safe methods (a locked :class:`WorkerSettings`); the worker
reads a snapshot once per loop. Stopping is cooperative: :meth:`InferenceWorker.stop` sets a flag,
the loop ends, and the source, the recorder and the pipeline are closed in the worker's thread.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from fer_core.api import EmotionRecognizer
from fer_core.draw import draw_results
from fer_core.pipeline import STAGES, FrameResult
from fer_core.records import FaceRecordWriter
from fer_core.settings import PipelineSettings
from fer_core.sources import ImageSource, open_source

from app.recorder import Recorder

log = logging.getLogger(__name__)

# What the frame on show is: frames coming in, the user paused, the file or stream ended, a photo, or no model.
STATES = ("running", "paused", "ended", "still", "no model")


@dataclass
class WorkerSettings:
    """What the user can change while the worker runs.

    Attributes:
        model_path: ONNX classifier; ``None`` = the shipped default model.
        provider: execution provider request (``auto``, ``cpu``, ``cuda``, ...).
        face_model: MediaPipe face-detector model; ``None`` = found by ``fer_core``.
        pipeline: the processing settings (detection threshold, smoothing, small faces, upright faces, unsure
            threshold, quality); the model file decides its own preprocessing.
        paused: hold the current frame (settings changes still re-process it).
        selected_track: the face shown in the side panel; ``None`` = the largest face.
        pace_video: play video files at their own frame rate instead of as fast as possible.
        burn_fps: draw the frame rate and latency into the picture (and so into snapshots and recordings).
    """

    model_path: str | None = None
    provider: str = "auto"
    face_model: str | None = None
    pipeline: PipelineSettings = PipelineSettings()
    paused: bool = False
    selected_track: int | None = None
    pace_video: bool = True
    burn_fps: bool = False

    def processing_key(self) -> tuple:
        """The settings that change a result (a held frame is re-processed when they change)."""
        return (self.model_path, self.provider, self.pipeline)


class RateMeter:
    """Events per second over a sliding window of wall-clock time."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        """Record one event."""
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window; 0 with fewer than two events."""
        now = time.perf_counter() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now, self._times[-1]) - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class LatestFrameGrabber(threading.Thread):
    """Reads a live source as fast as it delivers and keeps only the newest frame."""

    def __init__(self, source: Any) -> None:
        super().__init__(name="fer-frame-grabber", daemon=True)
        self._source = source
        self._cond = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._fresh = False
        self._stop_event = threading.Event()
        self.meter = RateMeter()
        self.captured = 0
        self.dropped = 0
        self.ended = False
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            for item in self._source:
                if self._stop_event.is_set():
                    break
                with self._cond:
                    if self._fresh:
                        self.dropped += 1
                    self._latest, self._fresh = item, True
                    self.captured += 1
                    self.meter.tick()
                    self._cond.notify_all()
        except Exception as exc:  # reported by the worker as a message
            self.error = exc
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def take(self, timeout: float) -> tuple[int, float, np.ndarray] | None:
        """The newest frame not taken yet, waiting up to ``timeout`` seconds; ``None`` if none came."""
        with self._cond:
            if not self._fresh and not self.ended:
                self._cond.wait(timeout)
            if not self._fresh:
                return None
            self._fresh = False
            return self._latest

    def stop(self) -> None:
        """Ask the thread to end after the frame being read."""
        self._stop_event.set()


def to_qimage(frame: np.ndarray) -> QImage:
    """Copy a BGR, BGRA or grey uint8 frame into a ``QImage`` that owns its pixels."""
    frame = np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    if frame.ndim == 2:
        return QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_Grayscale8).copy()
    if frame.shape[2] == 4:
        frame = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR))
    return QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_BGR888).copy()


def largest_face(result: FrameResult) -> int | None:
    """Track id of the largest face, or ``None`` without faces."""
    if not result.faces:
        return None
    return max(result.faces, key=lambda f: f.box[2] * f.box[3]).track_id


def describe_source(spec: str | int) -> str:
    """Human-readable name of a source spec."""
    if isinstance(spec, int):
        return f"camera {spec}"
    return Path(spec).name if "://" not in str(spec) else str(spec)


class InferenceWorker(QObject):
    """Capture + inference loop for one source; run :meth:`run` in a ``QThread``.

    Signals:
        frame_ready(QImage, FrameResult, dict): annotated frame, its result and the stats
            (``capture_fps``, ``processed_fps``, ``<stage>_ms`` for detect/preprocess/inference/total,
            ``faces``, ``model``, ``provider``, ``detector``, ``selected_track``, ``frame_index``,
            ``time_ms``, ``frames_processed``, ``dropped``, ``source``, ``live``, ``recording``, ``labels``,
            ``state``). ``state`` is one of :data:`STATES`; the frame rates are ``None`` unless it is ``running``.
        error(str): something failed, in words for the user (the worker goes on where it can).
        warning(str): it works, but not as well as it could (e.g. the Haar fallback detector).
        status(str): progress notes (source opened, model loaded, end of video, recording saved).
        ended(): a file source has no more frames, or a live stream stopped (the last frame is held).
        recording_changed(bool): recording started or stopped (also when it failed).
        model_loaded(str): the classifier now in use (its path), after a (re)load.
        model_failed(str): the classifier asked for (its path; empty: the default) could not be loaded.
        finished(): the loop has ended and everything is released.
    """

    frame_ready = Signal(QImage, object, object)
    error = Signal(str)
    warning = Signal(str)
    status = Signal(str)
    ended = Signal()
    recording_changed = Signal(bool)
    model_loaded = Signal(str)
    model_failed = Signal(str)
    recording_saved = Signal(str)  # the face CSV of a finished recording, or of a video / photos that ended
    finished = Signal()

    def __init__(self, source_spec: str | int, settings: WorkerSettings | None = None,
                 max_in_flight: int | None = None) -> None:
        """Args:
            source_spec: camera index, video/image/folder path or stream URL (see ``open_source``).
            settings: initial settings (copied).
            max_in_flight: emit a frame only while fewer than this many are unacknowledged
                (the receiver calls :meth:`frame_shown`); ``None`` = emit every frame.
        """
        super().__init__()
        self.source_spec = source_spec
        self._settings = dataclasses.replace(settings or WorkerSettings())
        self._version = 0
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._record_request: tuple[str, str | None] | None = None
        # Owned by the worker thread:
        self.source: Any = None
        self._still = False
        self._session_log: FaceRecordWriter | None = None  # every face of a file source, for its session report
        self.pipeline: Pipeline | None = None
        self.recorder: Recorder | None = None
        self._grabber: LatestFrameGrabber | None = None
        self._frames: Any = None
        self._loaded_key: tuple | None = None
        self._held: tuple[int, float, np.ndarray] | None = None
        self._held_result: FrameResult | None = None
        self._held_key: tuple | None = None
        self._is_ended = False
        self._done_version = -1  # the settings version last shown; -1: show the held frame again
        self._capture = RateMeter()
        self._processed = RateMeter()
        self._frames_processed = 0
        self._ui_dropped = 0
        self._pace_anchor: tuple[float, float] | None = None
        self.released = False

    # ----- thread-safe API for the UI thread -------------------------------------------------
    def settings(self) -> WorkerSettings:
        """A copy of the current settings."""
        with self._lock:
            return dataclasses.replace(self._settings)

    def update_settings(self, **changes: Any) -> None:
        """Change settings (names of :class:`WorkerSettings` fields); applied at the next frame."""
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            self._version += 1
        self._wake.set()

    def select_track(self, track_id: int | None) -> None:
        """Show this face in the side panel (``None`` = the largest face)."""
        self.update_settings(selected_track=track_id)

    def start_recording(self, base_path: str | Path) -> None:
        """Record the annotated video to ``<base>.mp4`` and per-face rows to ``<base>.csv``."""
        with self._lock:
            self._record_request = ("start", str(base_path))
        self._wake.set()

    def stop_recording(self) -> None:
        """Stop recording and close both files."""
        with self._lock:
            self._record_request = ("stop", None)
        self._wake.set()

    def frame_shown(self) -> None:
        """Acknowledge one ``frame_ready`` (only needed with ``max_in_flight``)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def stop(self) -> None:
        """Ask the loop to end; the worker then releases everything and emits ``finished``."""
        self._stop_event.set()
        self._wake.set()
        if self._grabber is not None:
            self._grabber.stop()

    # ----- the loop (worker thread) ------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Open the source and the pipeline, then process frames until stopped."""
        try:
            self._run()
        except Exception as exc:  # last line of defence: a message, never a crash of the app
            log.exception("worker failed")
            self.error.emit(f"Unexpected error while processing {describe_source(self.source_spec)}: {exc}")
        finally:
            self._release()
            self.finished.emit()

    def _snapshot(self) -> tuple[WorkerSettings, int]:
        with self._lock:
            return dataclasses.replace(self._settings), self._version

    def _run(self) -> None:
        if not self._open_source():
            return
        settings, _ = self._snapshot()
        self._load_pipeline(settings)
        was_paused = settings.paused
        while not self._stop_event.is_set():
            self._wake.clear()
            settings, version = self._snapshot()
            self._apply_settings(settings)
            self._handle_record_request()
            if was_paused and not settings.paused:  # the rates start again from the resumed frames
                self._capture, self._processed = RateMeter(), RateMeter()
            was_paused = settings.paused
            item = None if (settings.paused or self._is_ended) else self._next_frame(settings)
            if self._stop_event.is_set():
                break
            if item is not None:
                self._process(item, settings, new_frame=True)
                self._done_version = version
                continue
            if self._held is not None and version != self._done_version:
                # Paused or at the end: show the new state, setting and selection changes on the held frame.
                redo = settings.processing_key() != self._held_key
                self._process(self._held, settings, new_frame=False, reprocess=redo)
                self._done_version = version
                continue
            if settings.paused or self._is_ended:
                self._pace_anchor = None
                self._wake.wait(0.1)

    def _open_source(self) -> bool:
        name = describe_source(self.source_spec)
        try:
            self.source = open_source(self.source_spec)
            self._still = isinstance(self.source, ImageSource)  # photos: no tracking or smoothing across them
        except Exception as exc:  # SourceError, or anything unexpected: a message either way
            text = str(exc).rstrip(".")
            text = text[0].upper() + text[1:] if text.lower().startswith(name.lower()) else f"Cannot open {name}: {text}"
            hint = " Open a video or an image instead." if isinstance(self.source_spec, int) else ""
            self.error.emit(f"{text}.{hint}")
            return False
        fps = getattr(self.source, "fps", None)
        size = getattr(self.source, "frame_size", None)
        details = ", ".join(x for x in (f"{size[0]}x{size[1]}" if size else "", f"{fps:.0f} fps" if fps else "") if x)
        self.status.emit(f"Opened {name}" + (f" ({details})" if details else ""))
        if self.source.is_live:
            self._grabber = LatestFrameGrabber(self.source)
            self._grabber.start()
        else:
            self._frames = iter(self.source)
            self._open_session_log()
        return True

    def _load_pipeline(self, s: WorkerSettings) -> None:
        """(Re)build the pipeline for the settings' model and provider; keep the old one on failure."""
        self._loaded_key = (s.model_path, s.provider)
        try:
            pipeline = EmotionRecognizer(s.model_path, s.pipeline, provider=s.provider, face_model=s.face_model)
        except Exception as exc:
            what = Path(s.model_path).name if s.model_path else "the default model"
            keep = f" Still using {Path(str(self.pipeline.model_path)).name}." if self.pipeline else ""
            self.error.emit(f"Cannot load {what}: {exc}.{keep}".replace("..", "."))
            self.model_failed.emit(s.model_path or "")
            return
        old_labels = list(self.pipeline.labels) if self.pipeline is not None else None
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = pipeline
        if old_labels is not None and old_labels != list(pipeline.labels):
            self._new_classes()
        self.model_loaded.emit(str(pipeline.model_path))
        self.status.emit(f"Model {Path(str(pipeline.model_path)).name} on {pipeline.provider}, "
                         f"face detector: {pipeline.detector_backend}")
        if pipeline.detector_backend != "mediapipe":
            self.warning.emit(pipeline.detector_warning or "MediaPipe face-detector model not found: using "
                              "OpenCV's Haar cascade (less accurate). Pass --face-model or set FER_FACE_MODEL.")

    def _apply_settings(self, s: WorkerSettings) -> None:
        if (s.model_path, s.provider) != self._loaded_key:
            self._load_pipeline(s)
        if self.pipeline is not None:
            self.pipeline.settings = s.pipeline

    def _next_frame(self, s: WorkerSettings) -> tuple[int, float, np.ndarray] | None:
        if self._grabber is not None:
            item = self._grabber.take(timeout=0.1)
            if item is None and self._grabber.ended:
                self._end_of_source(self._grabber.error)
            return item
        try:
            item = next(self._frames)
        except StopIteration:
            self._end_of_source(None)
            return None
        except Exception as exc:
            self._end_of_source(exc)
            return None
        self._capture.tick()
        if s.pace_video:
            self._pace(item[1])
        return item

    def _pace(self, t_ms: float) -> None:
        """Wait until a file frame's timestamp is due (never catching up in bursts)."""
        now = time.perf_counter()
        if self._pace_anchor is None:
            self._pace_anchor = (now, t_ms)
            return
        due = self._pace_anchor[0] + (t_ms - self._pace_anchor[1]) / 1000.0
        if due < now - 0.25:  # behind (slow processing): restart the clock here
            self._pace_anchor = (now, t_ms)
            return
        while not self._stop_event.is_set() and (left := due - time.perf_counter()) > 0:
            self._stop_event.wait(min(left, 0.05))

    def _new_classes(self) -> None:
        """The model now in use has other classes: the face tables start again (a recording is saved and ends)."""
        if self.recorder is not None:
            self.status.emit("The new model has other classes: the recording so far is saved")
            self._stop_recorder()
        if self._session_log is not None:
            self._close_session_log(ended=False)
            self._open_session_log()

    def _open_session_log(self) -> None:
        """Record every face of a video or photo source in a temporary CSV, for the session report at its end."""
        labels = list(self.pipeline.labels) if self.pipeline is not None else None
        try:
            folder = Path(tempfile.mkdtemp(prefix="fer-session-"))
            name = Path(str(getattr(self.source, "name", "session"))).stem or "session"
            self._session_log = FaceRecordWriter(folder / f"{name}_faces.csv", labels, with_source=self._still)
        except (OSError, ValueError) as exc:
            log.warning("no session log: %s", exc)

    def _close_session_log(self, ended: bool) -> None:
        log_, self._session_log = self._session_log, None
        if log_ is None:
            return
        log_.close()
        if ended and log_.rows:
            self.recording_saved.emit(str(log_.path))

    def _end_of_source(self, exc: Exception | None) -> None:
        self._is_ended = True
        self._done_version = -1  # the held frame is shown again, as ended
        self._close_session_log(ended=True)
        name = describe_source(self.source_spec)
        exc = exc or getattr(self.source, "error", None)  # a live source that stopped sets .error
        if exc:
            lost = "Camera lost" if isinstance(self.source_spec, int) else "Reading stopped"
            self.error.emit(f"{lost}: {exc}" if name in str(exc) else f"{lost}: {name}: {exc}")
        elif self.source.is_live:
            self.status.emit(f"{name}: the stream stopped")
        else:
            n = self._frames_processed
            self.status.emit(f"End of {name} ({n} frame{'s' if n != 1 else ''} processed)")
        if self.recorder is not None:
            self._stop_recorder()
        self.ended.emit()

    def _process(self, item: tuple[int, float, np.ndarray], s: WorkerSettings, new_frame: bool,
                 reprocess: bool = True) -> None:
        idx, t_ms, frame = item
        if reprocess or self._held_result is None:
            result = self._infer(frame)
            self._held_result = result
            self._held_key = s.processing_key()
        else:
            result = self._held_result
        if new_frame:
            self._held = item
            self._processed.tick()
            self._frames_processed += 1
        selected = s.selected_track
        if selected is None or all(f.track_id != selected for f in result.faces):
            selected = largest_face(result)
        stats = self._stats(result, idx, t_ms, selected, s)
        labels = list(self.pipeline.labels) if self.pipeline is not None else []
        burn = s.burn_fps and stats["state"] == "running"
        annotated = draw_results(frame, result, labels, fps=stats["processed_fps"] if burn else None,
                                 latency_ms=stats["total_ms"] if burn else None, selected=selected)
        if new_frame and self._session_log is not None:
            self._session_log.write(idx, t_ms, result.faces, source=str(self.source.last_path) if self._still else "")
        if new_frame and self.recorder is not None:
            self._record(annotated, result, idx, t_ms)
        with self._lock:
            if new_frame and self._max_in_flight is not None and self._in_flight >= self._max_in_flight:
                self._ui_dropped += 1  # the UI is behind: it gets the next frame instead
                return
            self._in_flight += 1
        self.frame_ready.emit(to_qimage(annotated), result, stats)

    def _infer(self, frame: np.ndarray) -> FrameResult:
        if self.pipeline is None:
            return FrameResult(faces=[], timings={}, frame_shape=tuple(frame.shape))
        try:
            return self.pipeline.process(frame, still=self._still)
        except Exception as exc:
            log.exception("pipeline failed")
            self.error.emit(f"Processing a frame failed: {exc}")
            return FrameResult(faces=[], timings={}, frame_shape=tuple(frame.shape))

    def _state(self, s: WorkerSettings) -> str:
        """What the readouts should say about the frame on show (one of :data:`STATES`)."""
        if self.pipeline is None:
            return "no model"
        if self._still:
            return "still"
        if self._is_ended:
            return "ended"
        return "paused" if s.paused else "running"

    def _stats(self, result: FrameResult, idx: int, t_ms: float, selected: int | None, s: WorkerSettings) -> dict:
        grabber = self._grabber
        state = self._state(s)
        running = state == "running"
        stats: dict[str, Any] = {
            "state": state,
            "capture_fps": (grabber.meter if grabber else self._capture).rate() if running else None,
            "processed_fps": self._processed.rate() if running else None,
            "faces": len(result.faces) if self.pipeline is not None else None,
            "model": Path(str(self.pipeline.model_path)).name if self.pipeline else "none",
            "provider": self.pipeline.provider if self.pipeline else "none",
            "detector": self.pipeline.detector_backend if self.pipeline else "none",
            "selected_track": selected,
            "frame_index": int(idx),
            "time_ms": float(t_ms),
            "frames_processed": self._frames_processed,
            "dropped": (grabber.dropped if grabber else 0) + self._ui_dropped,
            "source": describe_source(self.source_spec),
            "live": bool(self.source.is_live),
            "recording": self.recorder is not None,
            "labels": list(self.pipeline.labels) if self.pipeline else [],
        }
        for stage in STAGES:  # None without a model: nothing was measured
            stats[f"{stage}_ms"] = float(result.timings[stage]) if stage in result.timings else None
        return stats

    # ----- recording ---------------------------------------------------------------------------
    def _handle_record_request(self) -> None:
        with self._lock:
            request, self._record_request = self._record_request, None
        if request is None:
            return
        action, base = request
        if action == "stop":
            if self.recorder is None:
                self.recording_changed.emit(False)
            self._stop_recorder()
            return
        self._stop_recorder()
        fps = self.source.fps if (not self.source.is_live and self.source.fps) else self._processed.rate()
        fps = fps if fps and fps >= 1 else 25.0
        labels = list(self.pipeline.labels) if self.pipeline is not None else []
        try:
            self.recorder = Recorder(base, fps=fps, labels=labels)
        except Exception as exc:
            self.error.emit(f"Cannot start recording: {exc}")
            self.recording_changed.emit(False)
            return
        self.recording_changed.emit(True)
        self.status.emit(f"Recording to {self.recorder.video_path.name} and {self.recorder.csv_path.name}")

    def _record(self, annotated: np.ndarray, result: FrameResult, idx: int, t_ms: float) -> None:
        try:
            self.recorder.write(annotated, result, idx, t_ms)
        except Exception as exc:
            self.error.emit(f"Recording stopped: {exc}")
            self._stop_recorder()

    def _stop_recorder(self) -> None:
        if self.recorder is None:
            return
        recorder, self.recorder = self.recorder, None
        self.recording_changed.emit(False)
        try:
            recorder.close()
        except Exception as exc:
            self.error.emit(f"Closing the recording failed: {exc}")
            return
        self.status.emit(f"Saved {recorder.frames} frames to {recorder.video_path} and {recorder.csv_path}")
        self.recording_saved.emit(str(recorder.csv_path))

    # ----- shutdown ----------------------------------------------------------------------------
    def _release(self) -> None:
        """Close the recorder, the session log, the source (after the grabber has let go of it) and the pipeline."""
        self._stop_recorder()
        self._close_session_log(ended=False)
        grabber, self._grabber = self._grabber, None
        if grabber is not None:
            grabber.stop()
            grabber.join(timeout=3.0)
        if self.source is not None:
            if grabber is not None and grabber.is_alive():
                log.warning("the frame grabber did not stop within 3 s; leaving %s open", self.source_spec)
            else:
                try:
                    self.source.close()
                except Exception:
                    log.exception("closing the source failed")
        if self.pipeline is not None:
            try:
                self.pipeline.close()
            except Exception:
                log.exception("closing the pipeline failed")
        self.source = self.pipeline = self._frames = None
        self._held = self._held_result = None
        self.released = True
