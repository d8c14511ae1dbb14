"""A message strip above the live view: errors and warnings in plain words, with ways out."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

STYLES = {
    "error": "QFrame#banner { background: #fde8e8; border: 1px solid #e0a0a0; border-radius: 4px; }",
    "warning": "QFrame#banner { background: #fff6dc; border: 1px solid #e6cf8a; border-radius: 4px; }",
}


class MessageBanner(QFrame):
    """Shows one message with "Open video…", "Open image…", "Choose model…" and a close button."""

    open_video = Signal()
    open_image = Signal()
    choose_model = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.video_button = QPushButton("Open video…")
        self.image_button = QPushButton("Open image…")
        self.model_button = QPushButton("Choose model…")
        self.close_button = QPushButton("✕")
        self.close_button.setFixedWidth(28)
        self.close_button.setToolTip("Dismiss")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        for b in (self.video_button, self.image_button, self.model_button, self.close_button):
            layout.addWidget(b)
        self.video_button.clicked.connect(self.open_video)
        self.image_button.clicked.connect(self.open_image)
        self.model_button.clicked.connect(self.choose_model)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text()

    def show_message(self, text: str, kind: str = "error", offer_sources: bool = True,
                     offer_model: bool = False) -> None:
        """Show ``text``; ``offer_sources`` / ``offer_model`` show the matching buttons."""
        self.setStyleSheet(STYLES.get(kind, STYLES["error"]))
        self.label.setText(text)
        self.video_button.setVisible(offer_sources)
        self.image_button.setVisible(offer_sources)
        self.model_button.setVisible(offer_model)
        self.show()
