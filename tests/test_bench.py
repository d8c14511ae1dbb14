"""Benchmarks: the synthetic clip, run_benchmark (progress, cancel, skipped providers) and fer-bench."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fer_core.bench import STAGES, rate_text, run_benchmark, run_classifier_benchmark
from fer_core.synthetic import clip_photos, face_photos, synthetic_clip
from fer_core.cli_bench import main as bench_main


def test_synthetic_clip_shapes_and_motion():
    frames = synthetic_clip(4, size=(320, 240), n_frames=6)
    assert len(frames) == 6 and all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert np.abs(frames[0].astype(int) - frames[3]).mean() > 1.0  # the faces move
    assert len(synthetic_clip(0, n_frames=2)) == 2
    assert len(face_photos()) >= 4 and len(clip_photos()) >= 4


@pytest.mark.parametrize("n_faces", [1, 2, 4, 8, 12])
def test_real_detector_finds_every_face_of_the_clip(face_model_path, n_faces):
    from fer_core.detector import FaceDetector

    with FaceDetector(face_model_path, running_mode="image") as det:
        assert det.backend == "mediapipe"
        counts = [len(det.detect(f)) for f in synthetic_clip(n_faces, n_frames=10)]
    assert counts == [n_faces] * 10


def test_run_benchmark_rows(tiny_onnx, face_model_path):
    calls = []
    rows = run_benchmark([tiny_onnx], providers=["cpu", "cuda"], face_counts=[1], warmup=2, iterations=5, repeats=3,
                         face_model=face_model_path, n_frames=5, progress_cb=lambda d, t: calls.append((d, t)))
    ok, skipped = rows
    assert ok["status"] == "ok" and ok["reason"] == "" and ok["repeats"] == 3 and ok["frames"] == 15
    assert ok["faces_found"] == pytest.approx(1.0)
    assert ok["provider_used"] == "CPUExecutionProvider" and ok["detector"] == "mediapipe"
    for stage in STAGES:
        assert ok[f"{stage}_median_ms"] <= ok[f"{stage}_p90_ms"] <= ok[f"{stage}_p95_ms"] <= ok[f"{stage}_p99_ms"]
    assert 0 < ok["fps_min"] <= ok["fps"] <= ok["fps_max"]
    assert ok["faces_per_s"] == pytest.approx(ok["fps"] * ok["faces_found"])
    assert ok["total_median_ms"] >= ok["detect_median_ms"]
    assert skipped["provider"] == "cuda" and skipped["status"] == "skipped" and "cuda" in skipped["reason"]
    assert skipped["faces_found"] is None
    assert calls[-1][0] == calls[-1][1] == 2 * (2 + 3 * 5)


def test_benchmark_notes_faces_it_did_not_find(tiny_onnx, face_model_path):
    """16 faces of 640x480 are too small for the short-range detector: the row says how many were found."""
    row, = run_benchmark([tiny_onnx], face_counts=[16], warmup=0, iterations=3, repeats=1,
                         face_model=face_model_path, n_frames=3)
    assert row["status"] == "ok" and 0 < row["faces_found"] < 16
    assert f"only {row['faces_found']:.2f} of 16 faces found per frame" in row["reason"]
    assert "--small-faces" in row["reason"]


def test_duration_is_split_over_the_repeats(tiny_onnx):
    row, = run_classifier_benchmark([tiny_onnx], batch=4, warmup=1, repeats=3, duration_s=0.3)
    assert row["status"] == "ok" and row["repeats"] == 3 and row["batches"] >= 3
    assert row["seconds"] < 0.6  # about 0.1 s per repeat, not 0.3 s each
    assert 0 < row["faces_per_s_min"] <= row["faces_per_s"] <= row["faces_per_s_max"]


def test_rate_text():
    assert rate_text({"fps": 142.3, "fps_min": 135.2, "fps_max": 150.6}) == "142 (135-151)"
    assert rate_text({"fps": 65.84, "fps_min": 60.0, "fps_max": 101.0}, dash="–") == "65.8 (60.0–101)"
    assert rate_text({"status": "skipped"}) == "-"


def test_benchmark_cancel_stops_early(tiny_onnx, face_model_path):
    calls = []
    rows = run_benchmark([tiny_onnx], providers=["cpu"], face_counts=[1, 4], warmup=1, iterations=500,
                         face_model=face_model_path, n_frames=5,
                         progress_cb=lambda d, t: calls.append(d), cancel_cb=lambda: len(calls) >= 6)
    assert len(rows) == 1 and rows[0]["status"] == "cancelled" and 0 < rows[0]["frames"] < 500
    assert len(calls) < 20


def test_benchmark_bad_model_is_a_row(tmp_path, face_model_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x00not onnx")
    rows = run_benchmark([bad], face_counts=[1], warmup=0, iterations=1, face_model=face_model_path, n_frames=2)
    assert rows[0]["status"] == "error" and "corrupt.onnx" in rows[0]["reason"]


def test_classifier_benchmark(tiny_onnx):
    rows = run_classifier_benchmark([tiny_onnx], providers=["cpu", "tensorrt"], batch=8, warmup=1, iterations=3,
                                    repeats=1)
    assert rows[0]["status"] == "ok" and rows[0]["batches"] == 3 and rows[0]["faces_per_s"] > 0
    assert rows[0]["batch_median_ms"] > 0 and rows[0]["input_size"] == 48
    assert rows[1]["status"] == "skipped"


def test_fer_bench_cli_json_and_csv(tiny_onnx, face_model_path, tmp_path, capsys):
    out_json, out_csv = tmp_path / "b" / "bench.json", tmp_path / "bench.csv"
    rc = bench_main(["--model", str(tiny_onnx), "--providers", "cpu", "--faces", "1", "--warmup", "1",
                     "--iterations", "4", "--repeats", "2", "--face-model", str(face_model_path),
                     "--json", str(out_json), "--csv", str(out_csv), "--no-progress"])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert {"system", "settings", "results"} <= set(doc)
    row = doc["results"][0]
    for key in ("model", "provider", "faces", "faces_found", "fps", "fps_min", "fps_max", "faces_per_s",
                "total_median_ms", "total_p90_ms", "total_p99_ms", "detect_median_ms", "preprocess_median_ms",
                "inference_median_ms"):
        assert key in row
    assert row["status"] == "ok" and row["frames"] == 8 and row["repeats"] == 2 and row["faces_found"] == 1.0
    assert doc["settings"]["repeats"] == 2 and doc["settings"]["iterations"] == 4
    header = out_csv.read_text().splitlines()[0].split(",")
    assert header[0] == "model" and {"faces_found", "fps_min", "fps_max"} <= set(header)
    out = capsys.readouterr().out
    assert "frames/s (range)" in out and re.search(r" \d+(\.\d)? \(\d+(\.\d)?-\d+(\.\d)?\) ", out)


def test_fer_bench_cli_errors(tmp_path, capsys):
    assert bench_main(["--model", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert "missing.onnx" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        bench_main(["--model", "x.onnx", "--providers", "cpu,tensorrtt"])
    assert "Did you mean 'tensorrt'" in capsys.readouterr().err
