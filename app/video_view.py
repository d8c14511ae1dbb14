"""The live view: paints the worker's annotated frame, scaled to the widget with its aspect ratio kept.

A click is mapped back to frame pixel coordinates and emitted as ``clicked(x, y)`` (the main window
picks the face under it). Without a frame, a short hint is painted instead.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor(24, 24, 28)


class VideoView(QWidget):
    """Shows the newest annotated frame; emits ``clicked(x, y)`` in frame pixels."""

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = "No video yet: choose a camera, or open a video or an image."
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paints every pixel: nothing beneath to redraw

    @property
    def image(self) -> QImage | None:
        """The frame on show."""
        return self._image

    def set_image(self, image: QImage | None) -> None:
        """Show a new frame (repainted at the next paint event; several updates merge into one)."""
        self._image = image
        self.update()

    def set_placeholder(self, text: str) -> None:
        """Text painted while there is no frame."""
        self._placeholder = text
        self.update()

    def image_rect(self) -> QRectF:
        """Where the frame is painted: the largest centred rectangle with the frame's aspect ratio."""
        if self._image is None or self._image.isNull():
            return QRectF()
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def to_image_coords(self, pos: QPointF) -> tuple[float, float] | None:
        """Widget position -> frame pixel coordinates; ``None`` outside the frame."""
        rect = self.image_rect()
        if rect.isEmpty() or not rect.contains(pos):
            return None
        scale = self._image.width() / rect.width()
        return (pos.x() - rect.x()) * scale, (pos.y() - rect.y()) * scale

    def to_widget_coords(self, x: float, y: float) -> QPointF:
        """Frame pixel coordinates -> widget position."""
        rect = self.image_rect()
        scale = rect.width() / self._image.width()
        return QPointF(rect.x() + x * scale, rect.y() + y * scale)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self._image is None or self._image.isNull():
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect().adjusted(20, 20, -20, -20),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(self.image_rect(), self._image)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            xy = self.to_image_coords(event.position())
            if xy is not None:
                self.clicked.emit(*xy)
        super().mousePressEvent(event)
