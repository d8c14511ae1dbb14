"""The worker's files: the session log of a video or photos (for the report at its end) and the user's recording.

:class:`SessionLog` writes every face of a file source to ``<tmp>/fer-session-<pid>-*/<name>_faces.csv``. A log
that was never offered for a report is deleted when it closes; one that was offered stays until the process
exits. Folders left by processes that are gone (a crash) are deleted when the next log opens
(:func:`remove_stale_session_folders`).

:class:`Recording` starts, feeds and stops the :class:`app.recorder.Recorder` of the user's *Record* button and
says what happened through the worker's signals. It never claims a file that is not there: a recording that got
no frame is deleted and reported as *nothing recorded*.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.records import FaceRecordWriter
from fer_core.results import FrameResult

from app.recorder import Recorder

log = logging.getLogger(__name__)

PREFIX = "fer-session-"
STALE_AFTER_S = 24 * 3600  # a folder without an owner's pid (older versions) is stale after a day
_OWNER = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")
_kept: list[Path] = []  # logs offered for a report: deleted when this process exits
_cleaned = False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_session_folders(root: str | Path | None = None, now: float | None = None) -> int:
    """Delete session folders no process uses: their owner's pid is gone, or (no pid in the name, or not on a
    POSIX system) they are older than :data:`STALE_AFTER_S`. Returns how many were deleted."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = 0
    for folder in root.glob(f"{PREFIX}*"):
        try:
            if not folder.is_dir():
                continue
            match = _OWNER.match(folder.name)
            pid = int(match.group(1)) if match else None
            if pid == os.getpid():
                continue
            if pid is not None and os.name == "posix":
                stale = not _pid_alive(pid)
            else:
                stale = now - folder.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _remove_kept() -> None:
    while _kept:
        shutil.rmtree(_kept.pop(), ignore_errors=True)


atexit.register(_remove_kept)


class SessionLog:
    """Every face of a file source in a temporary CSV.

    Args:
        name: the source's name (the file is ``<stem>_faces.csv``).
        labels: the model's classes in output order (``None``: no model yet).
        with_source: add the photo's path to every row (a folder of photos).

    Raises:
        OSError, ValueError: the file cannot be created.
    """

    def __init__(self, name: str, labels: Sequence[str] | None, with_source: bool = False) -> None:
        global _cleaned
        if not _cleaned:
            _cleaned = True
            removed = remove_stale_session_folders()
            if removed:
                log.info("deleted %d session folder(s) of processes that are gone", removed)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        stem = Path(name).stem or "session"
        try:
            self._writer = FaceRecordWriter(self.folder / f"{stem}_faces.csv", labels, with_source=with_source)
        except Exception:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.path = self._writer.path

    @classmethod
    def for_source(cls, source: Any, labels: Sequence[str] | None, photos: bool) -> SessionLog | None:
        """The log of a file source (``photos``: each row names its photo); ``None``, with a log line, when the
        file cannot be made (the app goes on without a session report)."""
        try:
            return cls(str(getattr(source, "name", "session")), labels, with_source=photos)
        except (OSError, ValueError) as exc:
            log.warning("no session log: %s", exc)
            return None

    def write(self, index: int, time_ms: float, result: FrameResult, source: Any) -> None:
        """Log a frame's faces (with the source's current photo when it logs photos)."""
        path = str(getattr(source, "last_path", "")) if self._writer.with_source else ""
        self._writer.write(index, time_ms, result.faces, source=path)

    def close(self, offer: bool) -> str | None:
        """Finish the file. ``offer``: the source ended, so keep the log for its report and return its path (when
        it has rows); otherwise, or without rows, the folder is deleted and ``None`` returned."""
        self._writer.close()
        if offer and self._writer.rows:
            _kept.append(self.folder)
            return str(self.path)
        shutil.rmtree(self.folder, ignore_errors=True)
        return None


class SessionFiles:
    """The files of one worker: the session log of a file source and the user's :class:`Recording`.

    Args:
        worker: has the signals ``status(str)``, ``error(str, str)``, ``recording_changed(bool)`` and
            ``recording_saved(str)`` (an :class:`app.worker.InferenceWorker`).
    """

    def __init__(self, worker: Any) -> None:
        self._worker = worker
        self.recording = Recording(worker)
        self.log: SessionLog | None = None
        self._source: Any = None
        self._photos = False

    def open_log(self, source: Any, labels: Sequence[str] | None, photos: bool) -> None:
        """Start logging every face of a file source (``photos``: a photo or a folder of them)."""
        self._source, self._photos = source, photos
        self.log = SessionLog.for_source(source, labels, photos)

    def new_classes(self, labels: Sequence[str]) -> None:
        """The model now has other classes: the recording so far is saved and the log starts again."""
        if self.recording.active:
            self._worker.status.emit("The new model has other classes: the recording so far is saved")
            self.recording.stop()
        if self.log is not None:
            self.log.close(offer=False)
            self.log = SessionLog.for_source(self._source, labels, self._photos)

    def write(self, index: int, time_ms: float, result: FrameResult, annotated: np.ndarray | None) -> None:
        """A new frame: its faces go to the log, the annotated frame (when drawn) to the recording."""
        if self.log is not None:
            self.log.write(index, time_ms, result, self._source)
        if annotated is not None:
            self.recording.write(annotated, result, index, time_ms)

    def end(self) -> None:
        """The source ended: the log is offered for its report, the recording finished."""
        self._close_log(offer=True)
        self.recording.stop()

    def close(self) -> None:
        """The worker ends: the recording is finished, a log not offered is deleted."""
        self.recording.stop()
        self._close_log(offer=False)

    def _close_log(self, offer: bool) -> None:
        session_log, self.log = self.log, None
        if session_log is not None and (path := session_log.close(offer)):
            self._worker.recording_saved.emit(path)


class Recording:
    """The user's recording of one worker, reported through the worker's signals.

    Args:
        worker: has the signals ``status(str)``, ``error(str, str)``, ``recording_changed(bool)`` and
            ``recording_saved(str)`` (an :class:`app.worker.InferenceWorker`).
    """

    def __init__(self, worker: Any) -> None:
        self._worker = worker
        self.recorder: Recorder | None = None

    @property
    def active(self) -> bool:
        return self.recorder is not None

    def handle(self, request: tuple[str, str | None], source: Any, rate: float, labels: Sequence[str],
               refused: str | None) -> None:
        """Do what the user asked: ``("stop", None)`` or ``("start", base)`` (see :meth:`start`)."""
        action, base = request
        if action == "stop":
            self.stop(asked=True)
        else:
            self.start(str(base), source, rate, labels, refused)

    def start(self, base: str, source: Any, rate: float, labels: Sequence[str], refused: str | None) -> None:
        """Record to ``<base>.mp4`` + ``.csv`` at a file's frame rate (else ``rate``, else 25 fps); refused (the
        ``refused`` message, the button off) when no frame will come (the end of a file, a photo)."""
        w = self._worker
        self.stop()
        fps = source.fps if (not source.is_live and getattr(source, "fps", None)) else rate
        fps = fps if fps and fps >= 1 else 25.0
        if refused:
            w.error.emit(refused, "recording")
            w.recording_changed.emit(False)
            return
        try:
            self.recorder = Recorder(base, fps=fps, labels=list(labels))
        except Exception as exc:
            w.error.emit(f"Cannot start recording: {exc}", "recording")
            w.recording_changed.emit(False)
            return
        r = self.recorder
        w.recording_changed.emit(True)
        w.status.emit(f"Recording to {r.video_path.name} ({r.codec}) and {r.csv_path.name}")

    def write(self, annotated: np.ndarray, result: FrameResult, index: int, time_ms: float) -> None:
        """Add one frame (a write error stops the recording, with a message)."""
        if self.recorder is None:
            return
        try:
            self.recorder.write(annotated, result, index, time_ms)
        except Exception as exc:
            self._worker.error.emit(f"Recording stopped: {exc}", "recording")
            self.stop()

    def stop(self, asked: bool = False) -> None:
        """Finish the files and say what was saved; ``asked``: the user pressed stop (the button goes off even
        when nothing was recording)."""
        w = self._worker
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            if asked:
                w.recording_changed.emit(False)
            return
        try:
            recorder.close()
        except Exception as exc:
            w.error.emit(f"Closing the recording failed: {exc}", "recording")
            return
        finally:
            w.recording_changed.emit(False)  # once the files are finished
        if recorder.frames == 0:
            for path in (recorder.video_path, recorder.csv_path):
                path.unlink(missing_ok=True)
            w.status.emit("Nothing recorded: no frame came while recording")
            return
        video, csv = recorder.video_path, recorder.csv_path
        saved = f"{video.name} ({recorder.codec}) and {csv.name}" if video.is_file() else csv.name
        w.status.emit(f"Saved {recorder.frames} frames: {saved} in {csv.parent}")
        w.recording_saved.emit(str(csv))
