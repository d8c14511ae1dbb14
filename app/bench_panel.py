"""Benchmark FPS panel: models x providers x face counts for a duration, in the background.

:func:`fer_core.bench.run_benchmark` runs in a :class:`BenchmarkWorker` (``QObject`` in a ``QThread``) with a
progress bar and Cancel; results show as a table (faces found per frame, frames/s as the median of the repeats
with their range, faces/s, p50/p95 latency per stage, p99 of the total) and a bar chart painted with ``QPainter``
(the range as a whisker), and export to JSON or CSV. The model list follows the live view's model
(:meth:`BenchPanel.set_live_model`) until the user changes the checks.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, QSignalBlocker, Qt, QThread, Signal, Slot
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QProgressBar, QPushButton, QSizePolicy, QSpinBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from fer_core.bench import rate_text, run_benchmark, write_csv, write_json
from fer_core.pipeline import STAGES

log = logging.getLogger(__name__)

# (header, row key, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Model", "model", "{}"),
    ("Provider", "provider_used", "{}"),
    ("Faces", "faces", "{}"),
    ("Found", "faces_found", "{:.2f}"),
    ("Frames/s (range)", "fps", "{:.1f}"),
    ("Faces/s", "faces_per_s", "{:.1f}"),
    *[(f"{s.capitalize()} {q} ms", f"{s}_{k}_ms", "{:.2f}") for s in STAGES for q, k in (("p50", "median"),
                                                                                          ("p95", "p95"))],
    ("Total p99 ms", "total_p99_ms", "{:.2f}"),
    ("Status", "status", "{}"),
    ("Note", "reason", "{}"),
)
BAR = QColor(52, 120, 200)


class BenchmarkWorker(QObject):
    """Runs :func:`fer_core.bench.run_benchmark` in a ``QThread`` with progress and cancel.

    Signals:
        progress(int, int, str): done, total, a note (empty from ``run_benchmark``).
        done(list): the result rows (one dict per model x provider x face count).
        failed(str): a message.
        finished(): always last.
    """

    progress = Signal(int, int, str)
    done = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, run: Callable[..., list[dict]], **kwargs: Any) -> None:
        """Args:
            run: the benchmark function (``fer_core.bench.run_benchmark``).
            kwargs: its arguments except ``progress_cb`` and ``cancel_cb``.
        """
        super().__init__()
        self._run = run
        self._kwargs = kwargs
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the benchmark to stop at its next check."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        try:
            rows = self._run(progress_cb=self._on_progress, cancel_cb=self._cancel.is_set, **self._kwargs)
            self.done.emit(list(rows or []))
        except Exception as exc:
            log.exception("benchmark failed")
            self.failed.emit(str(exc))
        finally:
            self.finished.emit()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.emit(int(done), int(total), "")


def row_title(row: dict[str, Any]) -> str:
    """Short name of a configuration: model / provider / faces."""
    faces = row.get("faces")
    faces = f"{faces} face{'s' if faces != 1 else ''}" if isinstance(faces, int) else str(faces)
    return f"{row.get('model', '?')} / {row.get('provider', '?')} / {faces}"


def cell_text(row: dict[str, Any], key: str, fmt: str) -> str:
    """A row's value for a table cell: ``fmt`` filled in, ``"–"`` when missing; frames/s with its range."""
    value = row.get(key)
    if key == "provider_used" and not value:
        value = row.get("provider")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "fps":
        return rate_text(row, key, dash="–")
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def parse_face_counts(text: str) -> list[int]:
    """``"1,4"`` -> ``[1, 4]``.

    Raises:
        ValueError: for anything but comma-separated non-negative integers.
    """
    counts = [int(x) for x in text.replace(" ", "").split(",") if x]
    if not counts or any(c < 0 for c in counts):
        raise ValueError(f"face counts must be comma-separated numbers such as 1,4 (got '{text}')")
    return counts


def _number(value: Any) -> float:
    """``value`` as a float; 0 when it is missing or NaN."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


class BarChart(QWidget):
    """Horizontal bars of frames/s per configuration."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = list(rows)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.white)
        painter.setPen(QColor(40, 40, 48))
        if not self.rows:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Run a benchmark to see frames/s here.")
            return
        label_w, value_w, top = min(320, self.width() // 2), 80, 24
        painter.drawText(QRectF(0, 0, self.width(), top), Qt.AlignmentFlag.AlignCenter, "Frames per second")
        bar_h = max(12.0, min(30.0, (self.height() - top - 8) / len(self.rows) - 6))
        fps = [[_number(r.get(k)) for k in ("fps", "fps_min", "fps_max")] for r in self.rows]
        top_fps = max(v for f in fps for v in f) or 1.0
        width = max(10, self.width() - label_w - value_w - 16)
        for i, (row, (value, low, high)) in enumerate(zip(self.rows, fps)):
            y = top + i * (bar_h + 6)
            painter.setPen(QColor(40, 40, 48))
            painter.drawText(QRectF(0, y, label_w - 8, bar_h), Qt.AlignmentFlag.AlignRight
                             | Qt.AlignmentFlag.AlignVCenter, row_title(row))
            painter.fillRect(QRectF(label_w, y, width * value / top_fps, bar_h), BAR)
            if high > low:  # the range of the repeats
                painter.drawLine(QPointF(label_w + width * low / top_fps, y + bar_h / 2),
                                 QPointF(label_w + width * high / top_fps, y + bar_h / 2))
            status = row.get("status", "ok")
            note = f"{value:.1f}" if status == "ok" else status
            painter.drawText(QRectF(label_w + width * max(value, high) / top_fps + 4, y, value_w, bar_h),
                             Qt.AlignmentFlag.AlignVCenter, note)


class BenchPanel(QWidget):
    """Choose configurations, run them in the background, show and export the results.

    Signals:
        run_started(): a run has started.
        run_finished(list): the result rows when a run ends (completed or cancelled).
    """

    run_started = Signal()
    run_finished = Signal(object)

    def __init__(self, models: Sequence[Path], providers: Sequence[str], face_model: str | None = None,
                 run_fn: Callable[..., list[dict]] = run_benchmark, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.face_model = face_model
        self.results: list[dict[str, Any]] = []
        self._run_fn = run_fn
        self._thread: QThread | None = None
        self._worker: BenchmarkWorker | None = None
        self._user_checked = False  # the user has changed the model checks: set_live_model adds, never unchecks

        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(80)
        for i, path in enumerate(models):
            self.add_model(path, checked=(i == 0))
        self.add_model_button = QPushButton("Add ONNX file…")
        self.provider_checks: dict[str, QCheckBox] = {}
        prov_row = QHBoxLayout()
        for name in providers:
            box = QCheckBox(name)
            box.setChecked(name == "cpu")
            self.provider_checks[name] = box
            prov_row.addWidget(box)
        prov_row.addStretch(1)
        self.faces_edit = QLineEdit("1,4")
        self.faces_edit.setToolTip("Faces per frame of the synthetic clip made from real face photos")
        self.duration_spin = QDoubleSpinBox()
        self.duration_spin.setRange(0.2, 600.0)
        self.duration_spin.setValue(3.0)
        self.duration_spin.setSuffix(" s per configuration")
        self.duration_spin.setToolTip("Timing of each configuration in all, split evenly over the repeats")
        self.repeats_spin = QSpinBox()
        self.repeats_spin.setRange(1, 20)
        self.repeats_spin.setValue(3)
        self.repeats_spin.setToolTip("Each configuration is timed this many times: the table shows the median "
                                     "frames/s and, in brackets, the lowest and highest")
        self.run_button = QPushButton("Run benchmark")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.export_json_button = QPushButton("Export JSON…")
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_json_button.setEnabled(False)
        self.export_csv_button.setEnabled(False)

        setup = QGroupBox("Configurations")
        form = QFormLayout(setup)
        models_col = QVBoxLayout()
        models_col.addWidget(self.model_list)
        models_col.addWidget(self.add_model_button, 0, Qt.AlignmentFlag.AlignLeft)
        form.addRow("Models", models_col)
        form.addRow("Providers", prov_row)
        form.addRow("Faces", self.faces_edit)
        form.addRow("Duration", self.duration_spin)
        form.addRow("Repeats", self.repeats_spin)
        buttons = QHBoxLayout()
        for w in (self.run_button, self.cancel_button):
            buttons.addWidget(w)
        buttons.addWidget(self.progress, 1)
        for w in (self.export_json_button, self.export_csv_button):
            buttons.addWidget(w)
        form.addRow(buttons)
        form.addRow(self.message)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.chart = BarChart()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.chart)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.faces_edit.setMaximumWidth(160)
        self.duration_spin.setMaximumWidth(220)
        self.repeats_spin.setMaximumWidth(80)

        layout = QVBoxLayout(self)
        layout.addWidget(setup)
        layout.addWidget(splitter, 1)

        self.add_model_button.clicked.connect(self._choose_model)
        self.model_list.itemChanged.connect(self._on_user_check)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_json_button.clicked.connect(lambda: self._choose_export("json"))
        self.export_csv_button.clicked.connect(lambda: self._choose_export("csv"))

    # ----- configuration -------------------------------------------------------------------------
    def add_model(self, path: str | Path, checked: bool = True) -> None:
        """Add an ONNX file to the list (or set its check when already there)."""
        state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        with QSignalBlocker(self.model_list):  # not a change by the user
            item = self._model_item(path)
            if item is None:
                item = QListWidgetItem(Path(path).name)
                item.setData(Qt.ItemDataRole.UserRole, str(path))
                item.setToolTip(str(path))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                self.model_list.addItem(item)
            item.setCheckState(state)

    def set_live_model(self, path: str | Path) -> None:
        """Check the model of the live view (added to the list when missing) and, unless the user has changed the
        checks, uncheck all others."""
        self.add_model(path)
        if self._user_checked:
            return
        live = self._model_item(path)
        with QSignalBlocker(self.model_list):
            for i in range(self.model_list.count()):
                item = self.model_list.item(i)
                if item is not live:
                    item.setCheckState(Qt.CheckState.Unchecked)

    def _model_item(self, path: str | Path) -> QListWidgetItem | None:
        """The list's item of this file, or ``None``."""
        target = Path(path).resolve()
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            if Path(item.data(Qt.ItemDataRole.UserRole)).resolve() == target:
                return item
        return None

    def _on_user_check(self, item: QListWidgetItem) -> None:
        self._user_checked = True

    def selected_models(self) -> list[str]:
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]

    def selected_providers(self) -> list[str]:
        return [name for name, box in self.provider_checks.items() if box.isChecked()]

    @property
    def running(self) -> bool:
        return self._thread is not None

    # ----- running -------------------------------------------------------------------------------
    def start(self, **extra: Any) -> bool:
        """Start a run with the chosen configurations; ``extra`` goes to ``run_benchmark`` (e.g. warmup).

        Returns:
            False (with a message in the panel) when nothing can be run.
        """
        if self.running:
            return False
        models, providers = self.selected_models(), self.selected_providers()
        try:
            faces = parse_face_counts(self.faces_edit.text())
        except ValueError as exc:
            self.message.setText(str(exc))
            return False
        if not models or not providers:
            self.message.setText("Choose at least one model and one provider.")
            return False
        kwargs = dict(model_paths=models, providers=providers, face_counts=faces, duration_s=self.duration_spin.value(),
                      repeats=self.repeats_spin.value(), warmup=5, face_model=self.face_model)
        kwargs.update(extra)
        self._worker = BenchmarkWorker(self._run_fn, **kwargs)
        self._thread = QThread(self)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.done.connect(self._on_done)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._on_finished)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        n = len(models) * len(providers) * len(faces)
        self.message.setText(f"Running {n} configuration{'s' if n != 1 else ''}…")
        self._thread.start()
        self.run_started.emit()
        return True

    def cancel(self) -> None:
        """Stop the run at its next check; what was measured so far is shown."""
        if self._worker is not None:
            self._worker.cancel()
            self.message.setText("Cancelling…")

    def stop(self, timeout_ms: int = 5000) -> None:
        """Cancel and wait for the thread (window closing)."""
        thread = self._thread
        if thread is not None:
            self.cancel()
            thread.quit()
            thread.wait(timeout_ms)

    def _on_progress(self, done: int, total: int, note: str) -> None:
        self.progress.setValue(int(100 * done / max(total, 1)))

    def _on_done(self, rows: list[dict[str, Any]]) -> None:
        cancelled = self._worker is not None and self._worker.cancelled
        self.show_results(rows)
        ok = sum(r.get("status") == "ok" for r in rows)
        self.message.setText(("Cancelled: " if cancelled else "Done: ")
                             + f"{ok} of {len(rows)} configuration{'s' if len(rows) != 1 else ''} measured.")
        if not cancelled:
            self.progress.setValue(100)

    def _on_failed(self, message: str) -> None:
        self.message.setText(f"Benchmark failed: {message}")

    def _on_finished(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        thread.quit()
        thread.wait(2000)
        worker.deleteLater()
        thread.deleteLater()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.run_finished.emit(list(self.results))

    # ----- results -------------------------------------------------------------------------------
    def show_results(self, rows: Sequence[dict[str, Any]]) -> None:
        """Fill the table and the chart."""
        self.results = list(rows)
        self.table.setRowCount(len(self.results))
        for r, row in enumerate(self.results):
            for c, (_, key, fmt) in enumerate(COLUMNS):
                item = QTableWidgetItem(cell_text(row, key, fmt))
                if key == "reason":
                    item.setToolTip(str(row.get(key, "")))
                self.table.setItem(r, c, item)
        self.chart.set_rows(self.results)
        self.export_json_button.setEnabled(bool(self.results))
        self.export_csv_button.setEnabled(bool(self.results))

    def export_json(self, path: str | Path) -> Path:
        """The results as ``fer-bench --json`` writes them (machine, settings, rows; NaN -> null)."""
        write_json(path, self.results, {"tool": "fer-app benchmark panel"})
        return Path(path)

    def export_csv(self, path: str | Path) -> Path:
        """The results as ``fer-bench --csv`` writes them."""
        write_csv(path, self.results)
        return Path(path)

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add an ONNX model", "", "ONNX models (*.onnx);;All files (*)")
        if path:
            self.add_model(path)
            self._user_checked = True

    def _choose_export(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export results as {kind.upper()}", f"benchmark.{kind}",
                                              f"{kind.upper()} (*.{kind})")
        if not path:
            return
        try:
            out = self.export_json(path) if kind == "json" else self.export_csv(path)
        except OSError as exc:
            self.message.setText(f"Cannot write {path}: {exc}")
            return
        self.message.setText(f"Saved {out}")
