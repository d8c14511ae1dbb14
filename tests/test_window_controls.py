"""The app's processing controls (pytest-qt, offscreen): one PipelineSettings out, and each control reaches the
worker's pipeline (issues 21, 22)."""

from __future__ import annotations

from pathlib import Path

import pytest

import app  # noqa: F401  (the OpenCV / Qt plugin-path fix, before pytest-qt creates the QApplication)
from fer_core.pipeline import QUALITY_PLANS
from fer_core.settings import QUALITIES, PipelineSettings
from test_app import make_window, write_two_face_video


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_two_face_video(tmp_path_factory.mktemp("video") / "two_faces.mp4", 60)


def test_controls_emit_one_new_settings_object_per_change(qtbot):
    from app.controls import ControlsPanel

    start = PipelineSettings(smoothing=0.5, max_faces=5, quality="balanced")
    panel = ControlsPanel([], ["cpu"], start)
    qtbot.addWidget(panel)
    assert panel.settings == start and panel.quality_combo.currentData() == "balanced"
    seen: list[PipelineSettings] = []
    panel.settings_changed.connect(seen.append)
    panel.confidence_slider.setValue(80)
    panel.quality_combo.setCurrentIndex(QUALITIES.index("fastest"))
    assert seen == [start.replace(min_confidence=0.8), start.replace(min_confidence=0.8, quality="fastest")]
    assert seen[-1].max_faces == 5  # a field without a control is kept


def test_quality_choice_says_what_each_costs(qtbot):
    from PySide6.QtCore import Qt

    from app.controls import ControlsPanel

    panel = ControlsPanel([], ["cpu"])
    qtbot.addWidget(panel)
    combo = panel.quality_combo
    assert [combo.itemData(i) for i in range(combo.count())] == list(QUALITIES)
    assert combo.currentData() == PipelineSettings().quality
    for i, name in enumerate(QUALITIES):
        tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert tip.startswith(f"{name}:") and tip in combo.toolTip()
        plan = QUALITY_PLANS[name]
        assert ("mirror image" in tip) == plan.mirror and ("half the classifier's work" in tip) != plan.mirror
        if plan.budget_ms is not None:  # the frame time past which faces take turns
            assert f"1/{1000 / plan.budget_ms:.0f} s" in tip
        assert (f"every {plan.detect_every} frames" in tip) == (plan.detect_every > 1)


def test_each_processing_control_reaches_the_worker_pipeline(qtbot, video, tiny_onnx, face_model_path):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path))
    qtbot.waitUntil(lambda: window.worker.pipeline is not None and window.frames_shown >= 1, timeout=20000)
    c = window.controls
    steps = (
        (lambda: c.smoothing_slider.setValue(30), "smoothing", 0.30),
        (lambda: c.smoothing_check.setChecked(False), "smoothing", 0.0),
        (lambda: c.confidence_slider.setValue(70), "min_confidence", 0.70),
        (lambda: c.uncertain_slider.setValue(55), "uncertain_below", 0.55),
        (lambda: c.small_faces_check.setChecked(True), "small_faces", True),
        (lambda: c.align_check.setChecked(False), "align", False),
        (lambda: c.quality_combo.setCurrentIndex(QUALITIES.index("fastest")), "quality", "fastest"),
    )
    for act, name, value in steps:
        assert getattr(window.worker.pipeline.settings, name) != value, name
        act()
        assert getattr(window.settings.pipeline, name) == pytest.approx(value), name
        qtbot.waitUntil(lambda n=name, v=value: getattr(window.worker.pipeline.settings, n) == pytest.approx(v),
                        timeout=10000)
    assert window.worker.pipeline.settings == window.settings.pipeline == c.settings
    window.close()
