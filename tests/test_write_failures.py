"""Outputs that cannot be written (a full disk, a file size limit): one clear line, a non-zero exit, no claim of
what was not written, and what was written before stays valid.

A full disk is simulated with a link to /dev/full (every write fails with ENOSPC) and, for the video, with a
file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) in a subprocess, where OpenCV's own writer only logs failures.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import count_frames, write_video
from fer_core.errors import WriteError
from fer_core.records import FaceRecordWriter
from fer_core.results import make_face
from fer_core.synthetic import face_photos, synthetic_clip

REPO = Path(__file__).resolve().parents[1]
LABELS = ["angry", "happy", "neutral"]
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


def full_disk_file(path: Path) -> Path:
    """``path`` as a link to /dev/full: opening works, every write fails with 'no space left on device'."""
    path.symlink_to("/dev/full")
    return path


def clip(tmp_path: Path, n: int = 30) -> Path:
    return write_video(tmp_path / "clip.avi", synthetic_clip(1, n_frames=n))


def fer_run(args: list[str], face_model_path: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    """fer-run in a subprocess, optionally with a file size limit of ``limit`` bytes (writes past it fail)."""
    def set_limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code = "import sys; from fer_core.cli_run import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args, "--face-model", str(face_model_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, preexec_fn=set_limit if limit else None)


@needs_dev_full
def test_records_on_a_full_disk_fail_with_one_clear_error(tmp_path):
    path = full_disk_file(tmp_path / "faces.csv")
    face = make_face(1, (10, 20, 30, 30), np.array([0.2, 0.5, 0.3]), LABELS)
    rec = FaceRecordWriter(path, LABELS)
    with pytest.raises(WriteError, match=r"cannot write .*faces\.csv: no space left on device$"):
        for i in range(5000):  # the buffer fills (or a second passes) and the write reaches the disk
            rec.write(i, i * 40.0, [face])
    rec.close()  # the failure was reported once; closing does not raise it again


@needs_dev_full
def test_fer_run_csv_on_a_full_disk(tiny_onnx, face_model_path, tmp_path):
    out = full_disk_file(tmp_path / "faces.csv")
    proc = fer_run(["--source", str(clip(tmp_path)), "--model", str(tiny_onnx), "--csv", str(out)], face_model_path)
    assert proc.returncode == 2, proc.stderr
    assert f"fer-run: error: cannot write {out}: no space left on device" in proc.stderr
    assert "Errno" not in proc.stderr and "Traceback" not in proc.stderr
    assert "records:" not in proc.stdout  # no claim of rows that are not on disk


@needs_dev_full
def test_fer_run_image_on_a_full_disk(tiny_onnx, face_model_path, tmp_path):
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), cv2.resize(face_photos()[0], (300, 300)))
    out = full_disk_file(tmp_path / "annotated.png")
    proc = fer_run(["--source", str(photo), "--model", str(tiny_onnx), "--out", str(out)], face_model_path)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot write {out}: no space left on device" in proc.stderr and "Errno" not in proc.stderr


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_fer_run_video_past_a_size_limit_is_not_claimed(tiny_onnx, face_model_path, tmp_path, suffix):
    """The video outgrows the limit (OpenCV only logs it, PyAV raises); the CSV, smaller, was written whole and
    stays valid."""
    out, rows = tmp_path / f"annotated{suffix}", tmp_path / "faces.csv"
    proc = fer_run(["--source", str(clip(tmp_path)), "--model", str(tiny_onnx), "--out", str(out),
                    "--csv", str(rows)], face_model_path, limit=60_000)
    assert proc.returncode == 2, proc.stderr
    assert f"fer-run: error: cannot write {out}: " in proc.stderr
    assert "annotated video" not in proc.stdout and "Traceback" not in proc.stderr
    with open(rows, newline="") as f:
        n = len(list(csv.DictReader(f)))  # one face a frame, every row whole
    # OpenCV's writer only fails at close (all 30 frames done); PyAV's raises at the frame that failed: the run stops
    assert n == 30 if suffix == ".mkv" else 0 < n <= 30


@pytest.mark.parametrize("pyav", [True, False])
def test_video_writer_names_its_codec(tmp_path, monkeypatch, pyav):
    import fer_core.video_writer as vw

    if pyav and not vw.fragmented_mp4_available():
        pytest.skip("PyAV with libx264 not installed")
    if not pyav:
        monkeypatch.setattr(vw, "fragmented_mp4_available", lambda: False)
    writer = vw.VideoWriter(tmp_path / "a.mp4", 10)
    for _ in range(3):
        writer.write(np.zeros((47, 65, 3), np.uint8))  # odd sizes: 4:2:0 H.264 is cut to even ones
    writer.close()
    assert writer.codec == ("avc1" if pyav or vw.h264_available() else "mp4v")
    assert vw.crash_safe_suffix() == (".mp4" if pyav else ".mkv")
    assert vw.plays_to_the_end(tmp_path / "a.mp4", 3)
    VideoWriter, describe_codec = vw.VideoWriter, vw.describe_codec
    assert VideoWriter(tmp_path / "b.avi", 10).codec == "MJPG"
    assert describe_codec("avc1") == "H.264" and "browsers" in describe_codec("mp4v")


@needs_dev_full
def test_fer_report_on_a_full_disk(tmp_path, capsys):
    from fer_core.report import main as report_main

    records = tmp_path / "faces.csv"
    with FaceRecordWriter(records, LABELS) as rec:
        for i in range(5):
            rec.write(i, i * 40.0, [make_face(1, (10, 20, 30, 30), np.array([0.2, 0.5, 0.3]), LABELS)])
    out = full_disk_file(tmp_path / "report.html")
    assert report_main([str(records), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"fer-report: error: cannot write {out}: no space left on device" in err


@needs_dev_full
def test_the_app_recorder_on_a_full_disk_keeps_the_video(tmp_path):
    """The CSV's disk is full: one WriteError naming it; the video is still finished and plays."""
    from app.recorder import Recorder
    from fer_core.results import FrameResult

    full_disk_file(tmp_path / "rec.csv")
    face = make_face(1, (10, 20, 30, 30), np.array([0.2, 0.5, 0.3]), LABELS)
    frames = synthetic_clip(1, n_frames=10)
    rec = Recorder(tmp_path / "rec", fps=10, labels=LABELS)
    with pytest.raises(WriteError, match=r"cannot write .*rec\.csv: no space left on device$"):
        for i in range(3000):
            rec.write(frames[i % 10], FrameResult(faces=[face] * 5), i, i * 100.0)
    rec.close()
    assert count_frames(rec.video_path) == rec.frames > 0
