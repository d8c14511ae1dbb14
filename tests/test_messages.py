"""What a user reads when something is wrong: the real reason in plain words, our one line and nothing before it
(no FFmpeg or libjpeg chatter), and never a damaged photo processed as if it were whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.cli import error_message
from fer_core.synthetic import face_photos
from fer_core import sources
from fer_core.sources import SourceError, open_source

REPO = Path(__file__).resolve().parents[1]


def fer_run(args: list[str], face_model_path: Path) -> subprocess.CompletedProcess:
    """fer-run in its own process: native libraries write to file descriptor 2, which only a process shows whole."""
    code = "import sys; from fer_core.cli_run import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args, "--face-model", str(face_model_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def damaged_jpeg(path: Path) -> Path:
    """A JPEG with 300 bytes of its compressed data overwritten: it still decodes (partly garbled), libjpeg warns."""
    ok, data = cv2.imencode(".jpg", cv2.resize(face_photos()[0], (400, 400)))
    data = bytearray(data.tobytes())
    middle = len(data) // 2
    data[middle:middle + 300] = b"\x55" * 300
    path.write_bytes(bytes(data))
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    return path


def test_a_damaged_jpeg_is_an_error_not_a_result(tiny_onnx, face_model_path, tmp_path):
    photo = damaged_jpeg(tmp_path / "photo.jpg")
    proc = fer_run(["--source", str(photo), "--model", str(tiny_onnx)], face_model_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"fer-run: error: {photo}: damaged image data (the file is "
                                                "truncated or corrupt)"]


def test_a_damaged_jpeg_in_a_folder_is_skipped_and_counted(tiny_onnx, face_model_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), cv2.resize(face_photos()[0], (300, 300)))
    damaged_jpeg(folder / "b.jpg")
    proc = fer_run(["--source", str(folder), "--model", str(tiny_onnx)], face_model_path)
    assert proc.returncode == 0, proc.stderr
    assert "Corrupt JPEG" not in proc.stderr
    assert f"skipping {folder / 'b.jpg'}: damaged image data" in proc.stderr
    assert "1 frames" in proc.stdout and "skipped 1" in proc.stdout


def test_a_broken_video_is_one_line_without_ffmpeg_chatter(tiny_onnx, face_model_path, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 5000)
    proc = fer_run(["--source", str(bad), "--model", str(tiny_onnx)], face_model_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"fer-run: error: cannot read video {bad} (unsupported format or "
                                                "corrupt file)"]


def test_a_corrupt_model_is_one_plain_sentence(face_model_path, tmp_path):
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), face_photos()[0])
    model = tmp_path / "corrupt.onnx"
    model.write_bytes(b"not a model at all")
    proc = fer_run(["--source", str(photo), "--model", str(model)], face_model_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"fer-run: error: {model}: cannot load ONNX model: the file is "
                                                "damaged, cut short or not an ONNX model"]


def test_permission_denied_is_not_called_corrupt(tmp_path, monkeypatch):
    """As root nothing is unreadable, so the denial is made by the reading call itself."""
    photo, video = tmp_path / "face.jpg", tmp_path / "clip.mp4"
    cv2.imwrite(str(photo), face_photos()[0])
    video.write_bytes(b"\x00" * 100)

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sources.np, "fromfile", denied)
    with pytest.raises(SourceError, match=r"cannot read image .*face\.jpg \(permission denied\)$"):
        open_source(photo)
    monkeypatch.setattr(sources, "open", denied, raising=False)
    with pytest.raises(SourceError, match=r"cannot read video .*clip\.mp4 \(permission denied\)$"):
        open_source(video)


def test_os_errors_read_as_plain_words():
    denied = PermissionError(13, "Permission denied", "/data/out.csv")
    assert error_message(denied) == "/data/out.csv: permission denied"
    assert error_message(OSError(28, "No space left on device")) == "no space left on device"
