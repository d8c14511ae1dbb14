"""The always-visible readouts bar: frame rates, latency per stage, faces, model and provider in use."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

# (stats key, caption, format)
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


class Readouts(QFrame):
    """One caption + value pair per field, updated from the worker's stats dict."""

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
            sample = {"fps": "888.8 fps", "ms": "8888.8 ms"}.get(fmt.split()[-1], "")
            if sample:  # room for large numbers, so the row does not jump or cut units off
                value.setMinimumWidth(value.fontMetrics().horizontalAdvance(sample) + 4)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(cap, 0, col)
            grid.addWidget(value, 1, col)
            self.values[key] = value
        grid.setColumnStretch(len(FIELDS), 1)

    def update_stats(self, stats: dict[str, Any]) -> None:
        """Show the values found in ``stats`` (missing keys keep their text)."""
        for key, _, fmt in FIELDS:
            if key in stats and stats[key] is not None:
                self.values[key].setText(fmt.format(stats[key]))

    def text(self, key: str) -> str:
        """The text shown for a field (for tests and screenshots)."""
        return self.values[key].text()

    def clear(self) -> None:
        for label in self.values.values():
            label.setText("–")
