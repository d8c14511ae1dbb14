"""The control column: source, model, provider, the processing settings, pause, snapshot, record.

Widgets only: every change is emitted as a signal and the main window passes it to the worker. The processing
controls edit one :class:`fer_core.settings.PipelineSettings` and emit the whole new one (``settings_changed``).
File dialogs for choosing inputs live here and emit the chosen path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QSizePolicy, QSlider, QVBoxLayout, QWidget)

from fer_core.pipeline import QUALITY_PLANS
from fer_core.settings import DEFAULTS, QUALITIES, PipelineSettings
from fer_core.sources import IMAGE_EXTS

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)"
IMAGE_FILTER = f"Images ({' '.join('*' + e for e in sorted(IMAGE_EXTS))});;All files (*)"  # what a folder source reads
MODEL_FILTER = "ONNX models (*.onnx);;All files (*)"
RECORD_TIP = "Record, or stop recording, the annotated video and every face's probabilities (CSV)"
SMALL_FACES_TIP = ("Also search four overlapping tiles of the frame: finds faces down to about a tenth of the frame "
                   "width, at about five times the detection time")
SMALL_FACES_STILL_TIP = "Photos are always searched for small faces (a photo has the time)"


def quality_tip(name: str) -> str:
    """What a quality (:data:`fer_core.pipeline.QUALITY_PLANS`) does and costs, in words, for its tooltip."""
    plan = QUALITY_PLANS[name]
    read = ("every face read with its mirror image: the most accurate, twice the classifier's work" if plan.mirror
            else "each face read once: half the classifier's work, about 2 points less accurate (FER2013 test)")
    turns = ("every face in every frame" if plan.budget_ms is None else
             f"when a frame would take longer than 1/{1000 / plan.budget_ms:.0f} s, its faces are read in turn "
             "(the others keep their last reading)")
    search = ("" if plan.detect_every == 1 else
              f"; faces are searched for every {plan.detect_every} frames and the frames between reuse their boxes "
              "(a fast-moving face is read a little off-centre)")
    return f"{name}: {read}; {turns}{search}."


def _slider(lo: int, hi: int, value: int) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    return s


class ControlsPanel(QWidget):
    """All live-view controls; emits what the user asks for."""

    camera_requested = Signal(int)
    file_requested = Signal(str)  # a video, an image or a folder
    cameras_refresh_requested = Signal()
    model_requested = Signal(str)
    provider_requested = Signal(str)
    settings_changed = Signal(object)  # a new PipelineSettings
    report_requested = Signal()
    pause_toggled = Signal(bool)
    snapshot_requested = Signal()
    record_toggled = Signal(bool)
    burn_fps_changed = Signal(bool)

    def __init__(self, models: Sequence[Path], providers: Sequence[str], settings: PipelineSettings = DEFAULTS,
                 parent: QWidget | None = None) -> None:
        """Args:
            models: the classifiers to offer.
            providers: the execution providers to offer (``auto`` comes first).
            settings: the processing settings shown at first; the fields without a control are kept as they are.
        """
        super().__init__(parent)
        self._base = settings  # the fields without a control come from here
        self._still = False
        self._can_record = False
        self._small_faces = settings.small_faces  # the user's choice, kept while a photo shows it checked
        smoothing, confidence, uncertain = settings.smoothing, settings.min_confidence, settings.uncertain_below
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        # Source
        box = QGroupBox("Source")
        form = QVBoxLayout(box)
        row = QHBoxLayout()
        self.camera_combo = QComboBox()
        self.camera_combo.setToolTip("Cameras found on this computer")
        self.camera_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_combo.setMinimumContentsLength(8)  # the column stays narrow whatever the items say
        self.refresh_button = QPushButton("Rescan")
        row.addWidget(self.camera_combo, 1)
        row.addWidget(self.refresh_button)
        form.addLayout(row)
        row = QHBoxLayout()
        self.open_video_button = QPushButton("Open video…")
        self.open_image_button = QPushButton("Open image…")
        row.addWidget(self.open_video_button)
        row.addWidget(self.open_image_button)
        form.addLayout(row)
        self.source_label = QLabel("")
        self.source_label.setWordWrap(True)
        form.addWidget(self.source_label)
        layout.addWidget(box)

        # Model and provider
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(12)
        for path in models:
            self.model_combo.addItem(Path(path).name, str(path))
        self.browse_model_button = QPushButton("Other ONNX file…")
        self.provider_combo = QComboBox()
        for name in ["auto", *[p for p in providers if p != "auto"]]:
            self.provider_combo.addItem(name, name)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.browse_model_button)
        form.addRow("Provider", self.provider_combo)
        layout.addWidget(box)

        # Processing
        box = QGroupBox("Processing")
        form = QFormLayout(box)
        self.smoothing_check = QCheckBox("Smoothing")
        self.smoothing_check.setChecked(smoothing > 0)
        self.smoothing_slider = _slider(5, 95, int(round(100 * (smoothing if smoothing > 0 else 0.6))))
        self.smoothing_value = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.smoothing_slider, 1)
        row.addWidget(self.smoothing_value)
        form.addRow(self.smoothing_check, row)
        self.confidence_slider = _slider(10, 95, int(round(100 * confidence)))
        self.confidence_value = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.confidence_slider, 1)
        row.addWidget(self.confidence_value)
        form.addRow("Detection ≥", row)
        self.uncertain_slider = _slider(0, 90, int(round(100 * uncertain)))
        self.uncertain_slider.setToolTip("A face whose top probability is below this is marked uncertain: its label "
                                         "is greyed and ends with '?'")
        self.uncertain_value = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.uncertain_slider, 1)
        row.addWidget(self.uncertain_value)
        form.addRow("Unsure below", row)
        self.small_faces_check = QCheckBox("Find small faces (slower)")
        self.small_faces_check.setToolTip(SMALL_FACES_TIP)
        self.small_faces_check.setChecked(settings.small_faces)
        form.addRow(self.small_faces_check)
        self.align_check = QCheckBox("Turn faces upright")
        self.align_check.setToolTip("Rotate each face so its eyes are level before reading its expression, as in "
                                    "the training faces")
        self.align_check.setChecked(settings.align)
        form.addRow(self.align_check)
        self.quality_combo = QComboBox()
        for i, name in enumerate(QUALITIES):
            self.quality_combo.addItem(name, name)
            self.quality_combo.setItemData(i, quality_tip(name), Qt.ItemDataRole.ToolTipRole)
        self.quality_combo.setToolTip("Speed or accuracy (photos always read every face):\n"
                                      + "\n".join(quality_tip(q) for q in QUALITIES))
        self.quality_combo.setCurrentIndex(QUALITIES.index(settings.quality))
        form.addRow("Quality", self.quality_combo)
        layout.addWidget(box)

        # Actions
        box = QGroupBox("Actions")
        grid = QGridLayout(box)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.snapshot_button = QPushButton("Snapshot")
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip(RECORD_TIP)
        self.record_button.setEnabled(False)  # until something plays
        self.report_button = QPushButton("Session report")
        self.report_button.setToolTip("An HTML report of the last recording, or of the video that just ended: "
                                      "every face's emotions over time")
        self.report_button.setEnabled(False)
        for i, b in enumerate((self.pause_button, self.snapshot_button, self.record_button, self.report_button)):
            # two rows of two whose width never follows their text: the panel keeps its width
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            grid.addWidget(b, i // 2, i % 2)
        self.burn_fps_check = QCheckBox("FPS in snapshots and recordings")
        self.burn_fps_check.setToolTip("Draw the frame rate and latency into the picture, and so into snapshots "
                                       "and recorded videos (the bar below always shows them)")
        grid.addWidget(self.burn_fps_check, 2, 0, 1, 2)
        layout.addWidget(box)
        layout.addStretch(1)

        self._update_value_labels()
        self.set_cameras(None)
        self.camera_combo.activated.connect(self._on_camera_activated)
        self.refresh_button.clicked.connect(self.cameras_refresh_requested)
        self.open_video_button.clicked.connect(self.choose_video)
        self.open_image_button.clicked.connect(self.choose_image)
        self.model_combo.activated.connect(lambda i: self.model_requested.emit(self.model_combo.itemData(i)))
        self.browse_model_button.clicked.connect(self.choose_model)
        self.provider_combo.activated.connect(lambda i: self.provider_requested.emit(self.provider_combo.itemData(i)))
        for signal in (self.smoothing_check.toggled, self.smoothing_slider.valueChanged,
                       self.confidence_slider.valueChanged, self.uncertain_slider.valueChanged,
                       self.align_check.toggled, self.quality_combo.currentIndexChanged):
            signal.connect(self._emit_settings)
        self.small_faces_check.toggled.connect(self._on_small_faces)
        self.pause_button.toggled.connect(self._on_pause)
        self.snapshot_button.clicked.connect(self.snapshot_requested)
        self.report_button.clicked.connect(self.report_requested)
        self.record_button.toggled.connect(self._on_record)
        self.burn_fps_check.toggled.connect(self.burn_fps_changed)

    # ----- state set by the main window ----------------------------------------------------------
    def set_cameras(self, indices: Sequence[int] | None) -> None:
        """Fill the camera list (``None`` while scanning)."""
        self.camera_combo.clear()
        if indices is None:
            self.camera_combo.addItem("Looking for cameras…", None)
        elif not indices:
            self.camera_combo.addItem("No camera found", None)
        else:
            self.camera_combo.addItem("Choose a camera…", None)
            for i in indices:
                self.camera_combo.addItem(f"Camera {i}", i)
        self.camera_combo.setEnabled(bool(indices))

    def set_source_text(self, text: str) -> None:
        """What is playing now."""
        self.source_label.setText(text)

    def _model_index(self, path: str | Path) -> int:
        """Position of a model in the list (the same file under any spelling of its path); -1 if absent."""
        target = Path(path).resolve()
        for i in range(self.model_combo.count()):
            if Path(self.model_combo.itemData(i)).resolve() == target:
                return i
        return -1

    def set_model(self, path: str | Path | None) -> None:
        """Show ``path`` as the chosen model (added to the list when new); ``None`` shows none."""
        if path is None:
            self.model_combo.setCurrentIndex(-1)
            return
        i = self._model_index(path)
        if i < 0:
            self.model_combo.addItem(Path(path).name, str(path))
            i = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(i)

    def remove_model(self, path: str | Path) -> None:
        """Take a model off the list (one that failed to load)."""
        i = self._model_index(path)
        if i >= 0:
            self.model_combo.removeItem(i)

    def set_provider(self, name: str) -> None:
        i = self.provider_combo.findData(name)
        if i < 0:
            self.provider_combo.addItem(name, name)
            i = self.provider_combo.count() - 1
        self.provider_combo.setCurrentIndex(i)

    def set_recording(self, on: bool) -> None:
        """Reflect the recording state without emitting ``record_toggled``."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.setText(self._record_text(on))
        self.record_button.setEnabled(self._can_record or on)
        self.record_button.blockSignals(False)

    def set_paused(self, on: bool) -> None:
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(on)
        self.pause_button.setText("Resume" if on else "Pause")
        self.pause_button.blockSignals(False)

    def set_still(self, still: bool) -> None:
        """A photo is on show (``True``): "Find small faces" shows checked and disabled, since photos are always
        searched that way; a video or camera (``False``) shows the user's own choice again."""
        if still == self._still:
            return
        self._still = still
        self.small_faces_check.blockSignals(True)
        self.small_faces_check.setChecked(True if still else self._small_faces)
        self.small_faces_check.blockSignals(False)
        self.small_faces_check.setEnabled(not still)
        self.small_faces_check.setToolTip(SMALL_FACES_STILL_TIP if still else SMALL_FACES_TIP)

    def set_can_record(self, can: bool) -> None:
        """Offer Record only when frames will come (not for a photo or a video that ended); a recording in
        progress can always be stopped."""
        self._can_record = can
        self.record_button.setEnabled(can or self.record_button.isChecked())

    def set_record_text(self, text: str) -> None:
        """Where the recording goes, and in which codec, in the Record button's tooltip ("": what it does)."""
        self.record_button.setToolTip(text or RECORD_TIP)

    @property
    def settings(self) -> PipelineSettings:
        """The processing settings the controls show (small faces: the user's choice, also while a photo shows
        it checked)."""
        return self._base.replace(smoothing=self.smoothing, min_confidence=self.confidence,
                                  uncertain_below=self.uncertain_slider.value() / 100.0,
                                  small_faces=self._small_faces, align=self.align_check.isChecked(),
                                  quality=self.quality_combo.currentData())

    @property
    def smoothing(self) -> float:
        """Smoothing strength in [0, 1); 0 when off."""
        return self.smoothing_slider.value() / 100.0 if self.smoothing_check.isChecked() else 0.0

    @property
    def confidence(self) -> float:
        return self.confidence_slider.value() / 100.0

    # ----- dialogs and internal slots ------------------------------------------------------------
    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", "", VIDEO_FILTER)
        if path:
            self.file_requested.emit(path)

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", "", IMAGE_FILTER)
        if path:
            self.file_requested.emit(path)

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an ONNX model", "", MODEL_FILTER)
        if path:
            self.set_model(path)
            self.model_requested.emit(path)

    def _on_camera_activated(self, i: int) -> None:
        index = self.camera_combo.itemData(i)
        if index is not None:
            self.camera_requested.emit(int(index))

    def _update_value_labels(self) -> None:
        self.smoothing_slider.setEnabled(self.smoothing_check.isChecked())
        self.smoothing_value.setText(f"{self.smoothing_slider.value() / 100:.2f}")
        self.confidence_value.setText(f"{self.confidence:.2f}")
        self.uncertain_value.setText(f"{self.uncertain_slider.value() / 100:.2f}")

    def _on_small_faces(self, on: bool) -> None:
        if not self._still:
            self._small_faces = on
            self._emit_settings()

    def _emit_settings(self, *_: object) -> None:
        self._update_value_labels()
        settings = self.settings
        if settings != self._base:
            self._base = settings
            self.settings_changed.emit(settings)

    def _on_pause(self, on: bool) -> None:
        self.pause_button.setText("Resume" if on else "Pause")
        self.pause_toggled.emit(on)

    @staticmethod
    def _record_text(on: bool) -> str:
        return "■ Stop" if on else "Record"

    def _on_record(self, on: bool) -> None:
        self.record_button.setText(self._record_text(on))
        self.record_toggled.emit(on)
