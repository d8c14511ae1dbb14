"""The always-visible readouts bar: frame rates, latency per stage, faces, model and provider in use.

The values say what is true now: the frame rates read *paused*, *ended* or *still image* when no frames come
in, and nothing is timed without a model. Numbers change at most a few times a second (readable, and no
repaint per frame); a change of state shows at once. A red *REC* badge with the elapsed time shows while
recording.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from app.frame_stats import FrameStats

# (FrameStats field, caption, format)
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("capture_fps", "Capture", "{:.1f} fps"),
    ("processed_fps", "Processed", "{:.1f} fps"),
    ("detect_ms", "Detect", "{:.1f} ms"),
    ("preprocess_ms", "Preprocess", "{:.1f} ms"),
    ("inference_ms", "Inference", "{:.1f} ms"),
    ("total_ms", "Total", "{:.1f} ms"),
    ("faces", "Faces", "{}"),
    ("model", "Model", "{}"),
    ("provider", "Provider", "{}"),
    ("detector", "Detector", "{}"),
)
RATES = ("capture_fps", "processed_fps")
# What the frame rates read in each worker state other than "running" (app.frame_stats.STATES).
STATE_TEXT = {"paused": "paused", "ended": "ended", "still": "still image", "no model": "–"}
NONE_TEXT = {"model": "not loaded", "provider": "–", "detector": "–"}
UPDATE_S = 0.25  # at most four number updates a second


class Readouts(QFrame):
    """One caption + value pair per field, updated from the worker's :class:`FrameStats`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 8, 4)
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(0)
        self.values: dict[str, QLabel] = {}
        for col, (key, caption, fmt) in enumerate(FIELDS):
            cap = QLabel(caption)
            cap.setStyleSheet("color: #666;")
            value = QLabel("–")
            font = value.font()
            font.setBold(True)
            font.setPointSizeF(font.pointSizeF() * 1.1)
            value.setFont(font)
            sample = {"fps": "still image", "ms": "8888.8 ms"}.get(fmt.split()[-1], "")
            if sample:  # room for large numbers and state words, so the row does not jump or cut units off
                value.setMinimumWidth(value.fontMetrics().horizontalAdvance(sample) + 4)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(cap, 0, col)
            grid.addWidget(value, 1, col)
            self.values[key] = value
        self.rec = QLabel()
        self.rec.setStyleSheet("color: white; background: #c62828; border-radius: 4px; padding: 2px 8px;"
                               "font-weight: bold;")
        self.rec.hide()
        grid.addWidget(self.rec, 0, len(FIELDS) + 1, 2, 1, Qt.AlignmentFlag.AlignRight)
        grid.setColumnStretch(len(FIELDS), 1)
        self._pending: FrameStats | None = None
        self._state: str | None = None
        self._shown_at = -1e9
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.timeout.connect(self._show_pending)
        self._rec_since: float | None = None
        self._rec_timer = QTimer(self)
        self._rec_timer.timeout.connect(self._show_rec)

    def update_stats(self, stats: FrameStats) -> None:
        """Show ``stats`` (a change of state at once, numbers at most every :data:`UPDATE_S` seconds)."""
        self._pending = stats
        wait = self._shown_at + UPDATE_S - time.monotonic()
        if stats.state != self._state or wait <= 0:
            self._show_pending()
        elif not self._flush.isActive():
            self._flush.start(int(wait * 1000) + 1)

    def _show_pending(self) -> None:
        stats, self._pending = self._pending, None
        if stats is None:
            return
        self._flush.stop()
        self._shown_at = time.monotonic()
        self._state = stats.state
        for key, _, fmt in FIELDS:
            value = getattr(stats, key)
            if key in RATES and self._state != "running":
                text = STATE_TEXT.get(self._state, "–")
            elif value is None or (key in NONE_TEXT and value == "none"):
                text = NONE_TEXT.get(key, "–")
            else:
                text = fmt.format(value)
            self.values[key].setText(text)

    def set_recording(self, on: bool) -> None:
        """Show or hide the REC badge (its clock starts now)."""
        self._rec_since = time.monotonic() if on else None
        self.rec.setVisible(on)
        if on:
            self._show_rec()
            self._rec_timer.start(1000)
        else:
            self._rec_timer.stop()

    def _show_rec(self) -> None:
        if self._rec_since is not None:
            s = int(time.monotonic() - self._rec_since)
            self.rec.setText(f"● REC {s // 60}:{s % 60:02d}")

    def text(self, key: str) -> str:
        """The text shown for a field (for tests and screenshots)."""
        if self._pending is not None:
            self._show_pending()
        return self.values[key].text()

    def clear(self) -> None:
        """Dashes everywhere (a new source)."""
        self._pending, self._state = None, None
        self._flush.stop()
        for label in self.values.values():
            label.setText("–")
