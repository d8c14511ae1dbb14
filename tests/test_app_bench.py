"""Benchmark FPS panel (pytest-qt, offscreen): a short real run, cancelling, exports, following the live model."""

from __future__ import annotations

import csv
import json
import os
import time

import pytest
from PySide6.QtCore import Qt

import app  # noqa: F401  (the OpenCV / Qt plugin-path fix, before pytest-qt creates the QApplication)
from app.bench_panel import COLUMNS, BenchPanel, parse_face_counts
from app.qt_env import check_pyside
from conftest import make_tiny_onnx
from fer_core.bench import rate_text


@pytest.fixture(autouse=True)
def _usable_pyside() -> None:
    check_pyside()


@pytest.fixture
def panel(qtbot, tiny_onnx, face_model_path) -> BenchPanel:
    panel = BenchPanel([tiny_onnx], ["cpu"], face_model=str(face_model_path))
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    return panel


def test_parse_face_counts():
    assert parse_face_counts("1, 4") == [1, 4]
    with pytest.raises(ValueError):
        parse_face_counts("one")


def cell(panel: BenchPanel, row: int, header: str) -> str:
    return panel.table.item(row, [c[0] for c in COLUMNS].index(header)).text()


def test_bench_panel_completes_a_short_run_and_exports(qtbot, panel, tmp_path):
    panel.faces_edit.setText("1")
    panel.duration_spin.setValue(0.3)
    panel.repeats_spin.setValue(2)
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as blocker:
        assert panel.start(warmup=2)
        assert panel.running and not panel.run_button.isEnabled()
    rows = blocker.args[0]
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    assert rows[0]["repeats"] == 2 and rows[0]["fps_min"] <= rows[0]["fps"] <= rows[0]["fps_max"]
    assert rows[0]["faces_found"] == 1.0
    assert panel.progress.value() == 100 and panel.message.text().startswith("Done")
    assert panel.table.rowCount() == 1
    assert cell(panel, 0, "Found") == "1.00"
    fps_text = cell(panel, 0, "Frames/s (range)")
    assert fps_text == rate_text(rows[0], dash="–") and "–" in fps_text
    assert panel.chart.rows == rows
    panel.chart.grab()  # the bar chart paints
    data = json.loads(panel.export_json(tmp_path / "b.json").read_text())
    assert data["results"][0]["model"] == "tiny" and "onnxruntime" in data["system"]
    with open(panel.export_csv(tmp_path / "b.csv")) as f:
        table = list(csv.DictReader(f))
    assert float(table[0]["fps"]) == pytest.approx(rows[0]["fps"])
    assert "total_median_ms" in table[0] and "detect_p95_ms" in table[0]


def test_bench_panel_can_be_cancelled(qtbot, panel):
    panel.faces_edit.setText("1,2")
    panel.duration_spin.setValue(60)
    start = time.perf_counter()
    assert panel.start(warmup=1)
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20000)
    with qtbot.waitSignal(panel.run_finished, timeout=20000):
        panel.cancel()
    assert time.perf_counter() - start < 30
    assert panel.message.text().startswith("Cancelled") and not panel.running
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert all(r["status"] in ("ok", "cancelled") for r in panel.results)


def test_bench_panel_says_when_nothing_is_chosen(panel):
    panel.provider_checks["cpu"].setChecked(False)
    assert not panel.start()
    assert "provider" in panel.message.text()


def test_bench_panel_follows_the_live_model(qtbot, tmp_path):
    a, b, c = (make_tiny_onnx(tmp_path / f"{name}.onnx") for name in ("a", "b", "c"))
    panel = BenchPanel([a, b], ["cpu"])
    qtbot.addWidget(panel)
    assert panel.selected_models() == [str(a)]  # the first one until the live model is known
    panel.set_live_model(b)
    assert panel.selected_models() == [str(b)]
    panel.set_live_model(c)  # not in the list: added
    assert panel.selected_models() == [str(c)] and panel.model_list.count() == 3
    panel.set_live_model(os.path.relpath(c))  # the same file spelt differently
    assert panel.selected_models() == [str(c)] and panel.model_list.count() == 3
    panel.model_list.item(0).setCheckState(Qt.CheckState.Checked)  # the user's own choice is kept from now on
    panel.set_live_model(b)
    assert panel.selected_models() == [str(a), str(b), str(c)]
