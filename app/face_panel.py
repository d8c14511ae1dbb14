"""Side panel for the selected face: every class probability as a bar, and a rolling timeline chart.

The bars are painted with ``QPainter``; the timeline is a pyqtgraph plot, which only redraws its lines when
data arrives. The panel keeps a short history of probabilities per track id, so selecting another face shows
its last seconds at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from fer_core.labels import class_color

WINDOW_S = 10.0
DRAW_S = 0.25  # the timeline is redrawn at most 4 times a second, like the readouts (the bars follow every frame)
GRID = QColor(220, 220, 226)
TEXT = QColor(40, 40, 48)


def qcolor(label: str) -> QColor:
    """The overlay's colour for a class (``fer_core.labels.class_color`` is BGR)."""
    b, g, r = class_color(label)
    return QColor(r, g, b)


class ProbabilityBars(QWidget):
    """One horizontal bar per class, coloured per emotion, with the percentage; the top class in bold."""

    ROW = 22

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels: list[str] = []
        self.probs = np.zeros(0, np.float32)
        self.setMinimumHeight(self.ROW * 7 + 8)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAutoFillBackground(True)  # opaque: a new frame's bars repaint only themselves, not the panel beneath

    def set_probs(self, labels: Sequence[str], probs: np.ndarray | None) -> None:
        """Show these probabilities (``None`` clears the bars)."""
        self.labels = list(labels)
        self.probs = np.zeros(len(self.labels), np.float32) if probs is None else np.asarray(probs, np.float32)
        self.setFixedHeight(self.ROW * max(len(self.labels), 7) + 8)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        name_w, pct_w = 74, 48
        bar_w = max(10, self.width() - name_w - pct_w - 8)
        top = int(np.argmax(self.probs)) if self.probs.size and self.probs.max() > 0 else -1
        for i, (label, p) in enumerate(zip(self.labels, self.probs)):
            y = 4 + i * self.ROW
            font = painter.font()
            font.setBold(i == top)
            painter.setFont(font)
            painter.setPen(TEXT)
            painter.drawText(QRectF(0, y, name_w - 6, self.ROW), Qt.AlignmentFlag.AlignVCenter
                             | Qt.AlignmentFlag.AlignRight, label)
            track = QRectF(name_w, y + 4, bar_w, self.ROW - 8)
            painter.fillRect(track, QColor(232, 232, 238))
            painter.fillRect(QRectF(track.x(), track.y(), bar_w * float(np.clip(p, 0, 1)), track.height()),
                             qcolor(label))
            painter.drawText(QRectF(name_w + bar_w + 4, y, pct_w, self.ROW), Qt.AlignmentFlag.AlignVCenter,
                             f"{100 * p:4.1f}%")


class TimelineChart(QWidget):
    """Probabilities of every class over the last seconds, one coloured line per class, with a legend below.

    The lines are a pyqtgraph plot whose x axis is seconds before now (fixed from ``-window_s`` to 0), so a new
    frame only changes the lines' data: no axis or layout work, and a repaint only when data arrives.
    """

    def __init__(self, window_s: float = WINDOW_S, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_s = window_s
        self.labels: list[str] = []
        self._points: Sequence[tuple[float, np.ndarray]] = ()
        self._curves: list[pg.PlotDataItem] = []
        self._right = 0.0
        self._drawn_at = -1e9
        self._draw_timer = QTimer(self)
        self._draw_timer.setSingleShot(True)
        self._draw_timer.timeout.connect(self._draw)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setXRange(-window_s, 0, padding=0.02)  # room for the newest point's dot
        self.plot.setYRange(0, 1, padding=0.03)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        step = max(1, int(window_s) // 5)  # inner ticks only: pyqtgraph drops labels that reach past the ends
        x_ticks = [(-k, f"-{k} s") for k in range(step, int(window_s), step)]
        for name, ticks in (("bottom", x_ticks), ("left", [(v, f"{v:.2g}") for v in (0, 0.25, 0.5, 0.75, 1)])):
            axis = self.plot.getAxis(name)
            axis.setTicks([ticks])
            axis.setTextPen(TEXT)
            axis.setPen(GRID)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)
        self.setMinimumHeight(120)  # room for the bars and this on a 600-pixel-high screen
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @property
    def point_count(self) -> int:
        """Number of time points on show."""
        return len(self._points)

    @property
    def times(self) -> np.ndarray:
        """The points' times in seconds, (T,)."""
        return np.array([t for t, _ in self._points], np.float64)

    @property
    def values(self) -> np.ndarray:
        """The points' probabilities, (T, C)."""
        if not self._points:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.stack([p for _, p in self._points]).astype(np.float32, copy=False)

    def set_series(self, labels: Sequence[str], points: Sequence[tuple[float, np.ndarray]],
                   now: float | None = None) -> None:
        """Show the (time s, probabilities) ``points``; ``now`` (default: the last time) is the right edge.

        The points are kept by reference and turned into arrays only when drawn (at most every ``DRAW_S``), so a
        caller that appends to them every frame pays for that a few times a second, not every frame."""
        if list(labels) != self.labels:
            self._make_curves(labels)
        self._points = points
        self._right = float(now) if now is not None else (float(points[-1][0]) if len(points) else 0.0)
        # Redrawing the plot costs ~10 ms: at most every DRAW_S seconds (the rest a timer draws), not every frame.
        wait = self._drawn_at + DRAW_S - time.monotonic()
        if wait <= 0:
            self._draw()
        elif not self._draw_timer.isActive():
            self._draw_timer.start(int(wait * 1000) + 1)

    def _draw(self) -> None:
        self._draw_timer.stop()
        self._drawn_at = time.monotonic()
        x, values = self.times - self._right, np.clip(self.values, 0, 1)
        dot = "o" if len(x) == 1 else None  # a photo has one point: a dot, where a line would not show
        for c, curve in enumerate(self._curves):
            curve.setData(x, values[:, c], symbol=dot, symbolSize=7,
                          symbolBrush=qcolor(self.labels[c]), symbolPen=None)

    def _make_curves(self, labels: Sequence[str]) -> None:
        for curve in self._curves:
            self.plot.removeItem(curve)
        self.labels = list(labels)
        self._curves = [self.plot.plot(pen=pg.mkPen(qcolor(label), width=2)) for label in self.labels]
        self.legend.setText("&nbsp;&nbsp; ".join(f'<span style="color:{qcolor(label).name()}">■</span>&nbsp;{label}'
                                                 for label in self.labels))


class FacePanel(QWidget):
    """The selected face: a title, probability bars and the timeline chart."""

    def __init__(self, window_s: float = WINDOW_S, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_s = window_s
        self.labels: list[str] = []
        self._track_id: int | None = None
        self._history: dict[int, deque[tuple[float, np.ndarray]]] = {}
        self._last_seen: dict[int, float] = {}
        self._now = -np.inf
        self.title = QLabel("No face selected")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.hint = QLabel("Click a face in the video to follow it (default: the largest face).")
        self.hint.setWordWrap(True)
        self.bars = ProbabilityBars()
        self.chart = TimelineChart(window_s)
        chart_title = QLabel(f"Last {window_s:.0f} seconds (now at the right)")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addWidget(self.bars)
        layout.addWidget(chart_title)
        layout.addWidget(self.chart, 1)

    @property
    def track_id(self) -> int | None:
        """Track id of the face on show."""
        return self._track_id

    def history(self, track_id: int) -> list[tuple[float, np.ndarray]]:
        """(time s, probabilities) of a track over the window."""
        return list(self._history.get(track_id, ()))

    def clear(self) -> None:
        """Forget every track (new source)."""
        self._history.clear()
        self._last_seen.clear()
        self._now = -np.inf
        self._track_id = None
        self._refresh(None)

    def update_result(self, result: Any, selected_track: int | None, time_ms: float,
                      labels: Sequence[str]) -> None:
        """Add a frame's faces to the histories and show ``selected_track``."""
        t = float(time_ms) / 1000.0
        if t < self._now - 1.0 or list(labels) != self.labels:  # new source, a rewind or another model
            self.clear()
        self.labels = list(labels)
        self._now = max(self._now, t)
        for face in result.faces:
            hist = self._history.setdefault(face.track_id, deque())
            if hist and hist[-1][0] >= t:  # the same frame again (paused, settings changed): replace
                hist.pop()
            hist.append((t, face.vector()))
            self._last_seen[face.track_id] = t
        for tid in list(self._history):
            hist = self._history[tid]
            while hist and hist[0][0] < self._now - self.window_s:
                hist.popleft()
            if not hist:
                del self._history[tid], self._last_seen[tid]
        self._track_id = selected_track
        face = next((f for f in result.faces if f.track_id == selected_track), None)
        self._refresh(face)

    def select(self, track_id: int | None, result: Any = None) -> None:
        """Show another track now (its history is kept); ``result`` gives its current probabilities."""
        self._track_id = track_id
        face = next((f for f in (result.faces if result is not None else ()) if f.track_id == track_id), None)
        self._refresh(face)

    def _refresh(self, face: Any) -> None:
        tid = self._track_id
        hist = self._history.get(tid) if tid is not None else None
        if face is not None:
            unsure = " (uncertain)" if getattr(face, "uncertain", False) else ""
            self.title.setText(f"Face #{tid}: {face.label} {100 * float(face.score):.0f}%{unsure}")
            self.bars.set_probs(self.labels, face.vector())
        elif hist:
            self.title.setText(f"Face #{tid}: not visible")
            self.bars.set_probs(self.labels, hist[-1][1])
        elif not self.labels:
            self.title.setText("No model loaded")
        else:
            self.title.setText("No face detected" if tid is None else f"Face #{tid}: gone")
            self.bars.set_probs(self.labels, None)
        self.chart.set_series(self.labels, hist or (), now=self._now if hist else None)
