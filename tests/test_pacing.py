"""Video files play at their own speed where someone watches: fer_core.pacing, ``fer-run --show`` (issue 23)."""

from __future__ import annotations

import threading
import time

import cv2
import pytest

from conftest import write_video
from fer_core.pacing import Pacer
from fer_core.synthetic import synthetic_clip


def test_pacer_waits_for_each_timestamp_and_never_bursts():
    pacer = Pacer()
    start = time.perf_counter()
    for t_ms in (0, 100, 200, 300):
        pacer.wait(t_ms)
    assert 0.28 < time.perf_counter() - start < 0.6
    time.sleep(0.5)  # far behind: the clock restarts at the late frame instead of catching up
    t0 = time.perf_counter()
    pacer.wait(400)
    pacer.wait(500)
    assert 0.08 < time.perf_counter() - t0 < 0.3


def test_a_stop_cuts_the_wait_short():
    stop = threading.Event()
    pacer = Pacer(stop)
    pacer.wait(0)
    threading.Timer(0.1, stop.set).start()
    t0 = time.perf_counter()
    pacer.wait(10_000)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("extra, paced", [([], True), (["--no-pace"], False)])
def test_fer_run_show_plays_a_file_at_its_frame_rate(tiny_onnx, face_model_path, tmp_path, monkeypatch, capsys,
                                                    extra, paced):
    from fer_core.cli_run import main

    video = write_video(tmp_path / "clip.avi", synthetic_clip(1, n_frames=12), fps=10.0)
    shown = []
    monkeypatch.setenv("DISPLAY", ":0")  # a window that records when each frame is shown
    monkeypatch.setattr(cv2, "imshow", lambda _name, _frame: shown.append(time.perf_counter()))
    monkeypatch.setattr(cv2, "waitKey", lambda _ms: -1)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    assert main(["--source", str(video), "--model", str(tiny_onnx), "--face-model", str(face_model_path),
                 "--show", *extra]) == 0, capsys.readouterr().err
    assert len(shown) == 12
    span = shown[-1] - shown[0]  # 11 intervals of 0.1 s at the file's 10 frames/s
    assert (span > 1.0) if paced else (span < 0.9), span
