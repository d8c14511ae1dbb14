"""What a killed process (SIGKILL: no clean-up at all) leaves: records up to about a second before the kill, and
a video that plays (Matroska), for the record writer, the video writer, fer-run and the app's recorder."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import count_frames, write_video
from fer_core.report import read_records
from fer_core.synthetic import synthetic_clip
from fer_core.video_writer import crash_safe_suffix, fragmented_mp4_available

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def kill_after(code: str, marker: str, timeout: float = 60.0) -> list[str]:
    """Run ``code`` in a subprocess, SIGKILL it once it prints a line starting with ``marker``; its lines."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lines, deadline = [], time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith(marker) or time.monotonic() > deadline:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert lines and lines[-1].startswith(marker), lines
    return lines


FACE = """
import numpy as np
from fer_core.results import make_face
LABELS = ["angry", "happy", "neutral"]
face = make_face(1, (10, 20, 30, 30), np.array([0.2, 0.5, 0.3]), LABELS)
"""


def test_records_reach_the_disk_within_a_second(tmp_path):
    path = tmp_path / "faces.csv"
    kill_after(FACE + f"""
import time
from fer_core.records import FaceRecordWriter
rec = FaceRecordWriter({str(path)!r}, LABELS)
for i in range(50):
    rec.write(i, i * 40.0, [face])
time.sleep(1.1)
rec.write(50, 2000.0, [face])  # a second after the last flush: this write flushes all 51 rows
print("written", flush=True)
time.sleep(60)
""", "written")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(51))


@pytest.mark.parametrize("suffix", [".mkv", pytest.param(".mp4", marks=pytest.mark.skipif(
    not fragmented_mp4_available(), reason="PyAV with libx264 not installed"))])
def test_a_killed_video_plays(tmp_path, suffix):
    """Matroska (OpenCV) and the fragmented H.264 MP4 (PyAV) both play after a SIGKILL."""
    path = tmp_path / f"clip{suffix}"
    lines = kill_after(f"""
from fer_core.synthetic import synthetic_clip
from fer_core.video_writer import VideoWriter
frames = synthetic_clip(2, n_frames=60)
writer = VideoWriter({str(path)!r}, 30)
for i in range(200):
    writer.write(frames[i % 60])
print("wrote", writer.frames, flush=True)
import time; time.sleep(60)
""", "wrote")
    assert lines[-1].split()[1] == "200"
    readable = count_frames(path)
    assert readable >= 120, readable  # the muxer's buffer (~256 KB) is lost, the rest plays


def test_fer_run_killed_leaves_a_playable_video_and_whole_rows(tiny_onnx, face_model_path, tmp_path):
    src = write_video(tmp_path / "long.avi", synthetic_clip(1, n_frames=60) * 30)
    out, rows_csv = tmp_path / "out", tmp_path / "faces.csv"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from fer_core.cli_run import main; main(sys.argv[1:])",
                             "--source", str(src), "--model", str(tiny_onnx), "--face-model", str(face_model_path),
                             "--out", str(out), "--csv", str(rows_csv)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    video = out / f"long_annotated{crash_safe_suffix()}"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and not (video.is_file() and video.stat().st_size > 600_000
                                                   and rows_csv.is_file() and rows_csv.stat().st_size > 0):
            time.sleep(0.1)
        assert proc.poll() is None, "fer-run ended before the kill"
        time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    played = count_frames(video)
    rows, _ = read_records(rows_csv, warn=lambda _msg: None)  # whole rows (a cut-off last one is skipped)
    assert played > 30 and len(rows) > 30
    assert played < 1800 and len(rows) < 1800


def test_a_killed_recording_of_the_app_plays(tmp_path):
    base = tmp_path / "rec"
    kill_after(FACE + f"""
import time
from fer_core.results import FrameResult
from fer_core.synthetic import synthetic_clip
from app.recorder import Recorder
frames = synthetic_clip(1, n_frames=60)
rec = Recorder({str(base)!r}, fps=30, labels=LABELS)
for i in range(180):
    rec.write(frames[i % 60], FrameResult(faces=[face]), i, i * 33.3)
time.sleep(1.1)
rec.write(frames[0], FrameResult(faces=[face]), 180, 6000.0)
print("recorded", flush=True)
time.sleep(60)
""", "recorded")
    assert count_frames(base.with_suffix(crash_safe_suffix())) >= 100
    rows, _ = read_records(base.with_suffix(".csv"))
    assert len(rows) == 181
