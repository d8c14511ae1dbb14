"""Per-face records: one row per face per frame, as CSV or JSON lines (chosen by the file suffix).

Columns: ``frame, time_ms, [source,] track_id, x, y, w, h, label, score, uncertain`` (0/1), ``age_ms`` (how old
the face's reading is: 0 when it was read in this frame, more when a quality other than ``best`` let it wait its
turn, see ``Face.age_ms``) then ``p_<label>`` for every class in the model's output order; ``source`` (the image
file a row comes from) with ``with_source=True``, as for a folder of photos. Shared by ``fer-run`` and the desktop
app's recorder::

    with FaceRecordWriter("out/faces.csv", labels) as rec:
        rec.write(frame_idx, t_ms, result.faces)

Rows reach the disk at most ``FLUSH_EVERY_S`` after they are written (and all of them at ``close``), so a
process that is killed loses about a second of rows at most, and what is on disk is whole rows (a last row cut
off mid-line is what ``fer-report`` skips). A write that fails (full disk, ...) raises
:class:`~fer_core.errors.WriteError` naming the file; the rows flushed before it stay valid.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fer_core.errors import WriteError, write_error
from fer_core.labels import CANONICAL_CLASSES, FER2013_CLASSES

BASE_COLUMNS = ("frame", "time_ms", "track_id", "x", "y", "w", "h", "label", "score", "uncertain", "age_ms")
SUFFIXES = (".csv", ".jsonl")
FLUSH_EVERY_S = 1.0  # rows reach the disk at most this long after they are written


def record_columns(labels: Sequence[str], with_source: bool = False) -> list[str]:
    """All column names for a model with these class labels."""
    base = list(BASE_COLUMNS)
    if with_source:
        base.insert(2, "source")
    return base + [f"p_{name}" for name in labels]


def _default_labels(n: int) -> list[str]:
    if n == len(FER2013_CLASSES):
        return list(FER2013_CLASSES)
    if n == len(CANONICAL_CLASSES):
        return list(CANONICAL_CLASSES)
    return [f"class{i}" for i in range(n)]


class FaceRecordWriter:
    """Write face results to ``.csv`` or ``.jsonl``; parent folders are created.

    Args:
        path: output file; the suffix picks the format.
        labels: class names in the model's output order (``Pipeline.labels``). When ``None`` they are
            inferred from the first face's probability count (7: FER2013 classes, 8: with contempt).
        with_source: add a ``source`` column (the image file of each row).

    Raises:
        ValueError: for a suffix other than ``.csv`` / ``.jsonl``.
        WriteError: when the file cannot be created or written (also from ``write`` and ``close``).
    """

    def __init__(self, path: str | Path, labels: Sequence[str] | None = None, with_source: bool = False) -> None:
        self.path = Path(path)
        self.with_source = bool(with_source)
        self.format = self.path.suffix.lower().lstrip(".")
        if "." + self.format not in SUFFIXES:
            raise ValueError(f"record file {self.path}: unsupported suffix '{self.path.suffix}', use .csv or .jsonl")
        self.labels = list(labels) if labels is not None else None
        self.rows = 0
        self._failed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="" if self.format == "csv" else None, encoding="utf-8")
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self._csv = csv.writer(self._file) if self.format == "csv" else None
        self._header_done = False
        self._last_flush = time.monotonic()
        if self.labels is not None:
            self._guarded(self._write_header)

    @property
    def columns(self) -> list[str]:
        """Column names (known once labels are)."""
        return record_columns(self.labels or [], self.with_source)

    def _write_header(self) -> None:
        if self._csv is not None:
            self._csv.writerow(self.columns)
        self._header_done = True

    def write(self, frame_idx: int, t_ms: float, faces: Sequence[Any], source: str = "") -> None:
        """Append one row per face.

        Args:
            frame_idx: frame index in the source.
            t_ms: frame timestamp in milliseconds.
            faces: :class:`fer_core.results.Face` objects (``track_id``, ``box``, ``probs``, ``label``, ``score``).
            source: the image file the frame came from (written when the writer has ``with_source``).
        """
        if self._file is None:
            raise ValueError(f"record file {self.path} is closed")
        if self._failed:
            raise WriteError(f"cannot write {self.path}: an earlier write failed")
        self._guarded(self._write_rows, frame_idx, t_ms, faces, source)
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self._guarded(self._flush)

    def _write_rows(self, frame_idx: int, t_ms: float, faces: Sequence[Any], source: str) -> None:
        for face in faces:
            probs = list(face.probs.values())
            if self.labels is None:
                self.labels = _default_labels(len(probs))
            if not self._header_done:
                self._write_header()
            if len(probs) != len(self.labels):
                raise ValueError(f"record file {self.path}: a face has {len(probs)} probabilities "
                                 f"but there are {len(self.labels)} labels")
            x, y, w, h = (int(v) for v in face.box)
            values = [int(frame_idx), round(float(t_ms), 1)] + ([str(source)] if self.with_source else []) + [
                int(face.track_id), x, y, w, h, str(face.label), round(float(face.score), 5),
                int(bool(getattr(face, "uncertain", False))), round(float(getattr(face, "age_ms", 0.0)), 1)] + [
                round(p, 5) for p in probs]
            if self._csv is not None:
                self._csv.writerow(values)
            else:
                self._file.write(json.dumps(dict(zip(self.columns, values))) + "\n")
            self.rows += 1

    def _flush(self) -> None:
        self._file.flush()
        self._last_flush = time.monotonic()

    def _guarded(self, fn: Any, *args: Any) -> None:
        """Run ``fn``; an ``OSError`` becomes one :class:`WriteError` (and later writes are refused)."""
        try:
            fn(*args)
        except OSError as exc:
            self._failed = True
            raise write_error(self.path, exc) from exc

    def close(self) -> None:
        """Finish the file (a CSV without any face still gets its header when labels are known).

        Raises:
            WriteError: the last rows could not be written (not raised again after a failed ``write``).
        """
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.close()
        except OSError as exc:
            if not self._failed:
                self._failed = True
                raise write_error(self.path, exc) from exc

    def __enter__(self) -> "FaceRecordWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
