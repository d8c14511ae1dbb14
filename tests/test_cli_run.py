"""fer-run end to end on real videos and images the tests write, and on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import count_frames, write_video
from fer_core.synthetic import face_photos, paste, synthetic_clip
from fer_core.cli_run import main as run_main
from fer_core.labels import FER2013_CLASSES

N_FRAMES = 20


def astronaut_frames(n: int = N_FRAMES) -> list[np.ndarray]:
    """The astronaut photo (real, NASA public domain; head and shoulders) drifting across a 640x480 frame."""
    import skimage.data

    photo = cv2.resize(cv2.cvtColor(skimage.data.astronaut()[0:340, 50:390], cv2.COLOR_RGB2BGR), (360, 360))
    frames = []
    for i in range(n):
        frame = np.full((480, 640, 3), 70, np.uint8)
        paste(frame, photo, 40 + 8 * i, 40 + 3 * i)
        frames.append(frame)
    return frames


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {"astronaut": write_video(folder / "astronaut.mp4", astronaut_frames()),
            "four": write_video(folder / "four.mp4", synthetic_clip(4, n_frames=N_FRAMES))}


def run(args: list[str], face_model_path: Path, capsys) -> tuple[int, str, str]:
    rc = run_main(args + ["--face-model", str(face_model_path)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_video_end_to_end(videos, tiny_onnx, face_model_path, tmp_path, capsys):
    out_video, out_csv = tmp_path / "out" / "annotated.mp4", tmp_path / "out" / "faces.csv"
    rc, out, err = run(["--source", str(videos["astronaut"]), "--model", str(tiny_onnx), "--out", str(out_video),
                        "--csv", str(out_csv)], face_model_path, capsys)
    assert rc == 0, err
    assert count_frames(out_video) == N_FRAMES
    rows = read_csv(out_csv)
    assert list(rows[0]) == ["frame", "time_ms", "track_id", "x", "y", "w", "h", "label", "score", "uncertain",
                             "age_ms"] + [f"p_{c}" for c in FER2013_CLASSES]
    assert [int(r["frame"]) for r in rows] == list(range(N_FRAMES))  # one face, one row per frame
    assert {r["age_ms"] for r in rows} == {"0.0"}  # quality best reads every face in its frame
    assert {r["track_id"] for r in rows} == {"1"}
    assert float(rows[1]["time_ms"]) == pytest.approx(50.0)
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] - xs[0] > 100  # the box follows the moving face
    assert f"{N_FRAMES} frames, {N_FRAMES} faces" in out and "median ms per frame" in out


def test_several_faces_keep_their_track_ids(videos, tiny_onnx, face_model_path, tmp_path, capsys):
    out_jsonl = tmp_path / "faces.jsonl"
    rc, _, err = run(["--source", str(videos["four"]), "--model", str(tiny_onnx), "--jsonl", str(out_jsonl),
                      "--smoothing", "0"], face_model_path, capsys)
    assert rc == 0, err
    rows = [json.loads(x) for x in out_jsonl.read_text().splitlines()]
    by_track: dict[int, list[dict]] = {}
    for r in rows:
        by_track.setdefault(r["track_id"], []).append(r)
    assert len(by_track) == 4
    for track in by_track.values():  # each face keeps its id in every frame and stays in place
        assert [r["frame"] for r in track] == list(range(N_FRAMES))
        xs = [r["x"] for r in track]
        assert max(xs) - min(xs) < 80


def test_images_and_bad_frames(tiny_onnx, face_model_path, tmp_path, capsys):
    """Every awkward image gives a result (maybe no face), never a crash; unreadable files are skipped."""
    src = tmp_path / "imgs"
    src.mkdir()
    photo = face_photos()[0]
    cv2.imwrite(str(src / "a_face.jpg"), cv2.resize(photo, (400, 400)))
    cv2.imwrite(str(src / "b_one_pixel.png"), np.full((1, 1, 3), 128, np.uint8))
    grey = np.full((480, 640), 100, np.uint8)
    paste(grey, cv2.cvtColor(cv2.resize(photo, (300, 300)), cv2.COLOR_BGR2GRAY), 170, 90)
    cv2.imwrite(str(src / "c_grey.png"), grey)
    cv2.imwrite(str(src / "d_thirty.jpg"), synthetic_clip(30, n_frames=1)[0])
    edge = np.full((480, 640, 3), 90, np.uint8)
    paste(edge, cv2.resize(photo, (320, 320)), 420, 80)  # face cut by the right edge
    cv2.imwrite(str(src / "e_edge.png"), edge)
    cv2.imwrite(str(src / "f_no_face.png"), np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8))
    big = np.full((4320, 7680, 3), 60, np.uint8)  # 8K
    paste(big, cv2.resize(photo, (2000, 2000)), 2800, 1100)
    cv2.imwrite(str(src / "g_8k.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 70])
    (src / "h_corrupt.jpg").write_bytes(b"not a jpeg")

    out_dir, out_csv = tmp_path / "annotated", tmp_path / "faces.csv"
    rc, out, err = run(["--source", str(src), "--model", str(tiny_onnx), "--out", str(out_dir),
                        "--csv", str(out_csv)], face_model_path, capsys)
    assert rc == 0, err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["a_face.jpg", "b_one_pixel.png", "c_grey.png", "d_thirty.jpg", "e_edge.png",
                       "f_no_face.png", "g_8k.jpg"]
    assert cv2.imread(str(out_dir / "g_8k.jpg")).shape == (4320, 7680, 3)
    faces_per_frame = np.bincount([int(r["frame"]) for r in read_csv(out_csv)], minlength=7)
    assert faces_per_frame[0] == 1 and faces_per_frame[1] == 0 and faces_per_frame[2] == 1
    assert faces_per_frame[4] == 1 and faces_per_frame[5] == 0 and faces_per_frame[6] == 1, faces_per_frame
    edge_row = [r for r in read_csv(out_csv) if r["frame"] == "4"][0]
    assert int(edge_row["x"]) + int(edge_row["w"]) == 640  # the box is clipped at the frame edge
    assert "skipped 1 unreadable" in out and "h_corrupt.jpg" in out


def test_small_faces_option_finds_far_faces(tiny_onnx, face_model_path, tmp_path, capsys):
    """Videos search the tiles for far faces with --small-faces; photos always do (one photo policy everywhere)."""
    import skimage.data

    frame = np.full((618, 1100, 3), 90, np.uint8)  # two faces of about 9% of the frame width
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    paste(frame, photo, 60, 40)
    paste(frame, photo, 540, 98)
    image = tmp_path / "far.png"
    cv2.imwrite(str(image), frame)
    video = write_video(tmp_path / "far.avi", [frame, frame], fps=10)
    counts = {}
    for source in (image, video):
        for extra in ([], ["--small-faces"]):
            out_csv = tmp_path / f"faces{source.suffix}{len(extra)}.csv"
            rc, _, err = run(["--source", str(source), "--model", str(tiny_onnx), "--csv", str(out_csv), *extra],
                             face_model_path, capsys)
            assert rc == 0, err
            counts[source.suffix, bool(extra)] = len(read_csv(out_csv))
    assert counts == {(".png", False): 2, (".png", True): 2, (".avi", False): 0, (".avi", True): 4}


def test_pipeline_on_odd_frames(tiny_onnx, face_model_path):
    from fer_core.pipeline import Pipeline

    frame = synthetic_clip(1, n_frames=1)[0]
    tiled = synthetic_clip(30, n_frames=1)[0]
    with Pipeline(tiny_onnx, face_model=face_model_path) as pipe:
        assert len(pipe.process(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)).faces) == 1  # grey 2-D frame
        assert len(pipe.process(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)).faces) == 1
        assert pipe.process(np.zeros((1, 1, 3), np.uint8)).faces == []
        assert pipe.process(np.zeros((0, 0, 3), np.uint8)).faces == []
        assert isinstance(pipe.process(tiled).faces, list)  # 30 small faces: too small for BlazeFace, no crash
        # 30 detections at once (as a long-range detector would give) all go through one batch
        from fer_core.detector import Detection

        boxes = [(c * 106 + 20, r * 96 + 18, 60, 60) for r in range(5) for c in range(6)]
        pipe.detector.detect = lambda frame, ts=None, small_faces=None: [Detection(b, 0.9) for b in boxes]
        result = pipe.process(tiled)
        assert len(result.faces) == 30 and len({f.track_id for f in result.faces}) == 30
        assert all(len(f.probs) == 7 and f.label in FER2013_CLASSES for f in result.faces)


def test_live_source_that_stops(tiny_onnx, face_model_path, tmp_path, capsys, monkeypatch):
    """A camera that stops mid-stream: results so far are kept, exit status 1 with the reason."""
    import fer_core.sources as sources

    frames = synthetic_clip(1, n_frames=6)

    class DyingCamera:
        def __init__(self):
            self.i = 0

        def read(self):
            self.i += 1
            return (True, frames[self.i - 1]) if self.i <= len(frames) else (False, None)

        def get(self, prop):
            return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def release(self):
            pass

    monkeypatch.setattr(sources, "open_source",
                        lambda spec: sources.CaptureSource(DyingCamera(), "camera 0", is_live=True, max_failed_reads=3))
    out_csv = tmp_path / "faces.csv"
    rc, out, err = run(["--source", "0", "--model", str(tiny_onnx), "--csv", str(out_csv)], face_model_path, capsys)
    assert rc == 1 and "camera 0 stopped delivering frames" in err
    assert len(read_csv(out_csv)) == len(frames)


@pytest.mark.parametrize("case", ["missing_source", "camera", "corrupt_model", "missing_model", "bad_out"])
def test_fatal_errors_are_one_line(case, videos, tiny_onnx, face_model_path, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage")
    args = {
        "missing_source": ["--source", str(tmp_path / "nope.mp4"), "--model", str(tiny_onnx)],
        "camera": ["--source", "9", "--model", str(tiny_onnx)],
        "corrupt_model": ["--source", str(videos["astronaut"]), "--model", str(corrupt)],
        "missing_model": ["--source", str(videos["astronaut"]), "--model", str(tmp_path / "none.onnx")],
        "bad_out": ["--source", str(videos["astronaut"]), "--model", str(tiny_onnx), "--out", str(tmp_path / "x.gif")],
    }[case]
    expect = {"missing_source": "nope.mp4", "camera": "camera 9", "corrupt_model": "corrupt.onnx",
              "missing_model": "none.onnx", "bad_out": "x.gif"}[case]
    rc, _, err = run(args, face_model_path, capsys)
    assert rc == 2
    lines = [x for x in err.splitlines() if x.startswith("fer-run: error:")]
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in err


def test_default_model_missing(videos, face_model_path, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "absent.onnx"))
    rc, _, err = run(["--source", str(videos["astronaut"])], face_model_path, capsys)
    assert rc == 2 and "absent.onnx" in err and "Traceback" not in err


def test_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        run_main(["--source", "0", "--provider", "cdua"])
    assert exc.value.code == 2 and "Did you mean 'cuda'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_main(["--source", "0", "--smoothing", "1"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_main(["--help"])
    assert exc.value.code == 0 and "fer-run --source clip.mp4 --out annotated.mp4" in capsys.readouterr().out


def test_photos_of_a_folder_are_independent(face_model_path, tmp_path, capsys):
    """A photo reads the same alone and inside a folder (no tracking or smoothing across files), each row names
    its file, and ids start again at 1 in every photo."""
    photos = face_photos()
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, photo in enumerate([photos[0], photos[1], photos[0]]):
        frame = np.full((480, 640, 3), 80, np.uint8)
        paste(frame, cv2.resize(photo, (300, 300)), 150 + 20 * i, 80)
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    alone = tmp_path / "alone.jsonl"
    assert run(["--source", str(folder / "2.png"), "--jsonl", str(alone)], face_model_path, capsys)[0] == 0
    together = tmp_path / "together.jsonl"
    assert run(["--source", str(folder), "--jsonl", str(together), "--smoothing", "0.9"], face_model_path,
               capsys)[0] == 0
    rows = [json.loads(line) for line in together.read_text().splitlines()]
    assert [Path(r["source"]).name for r in rows] == ["0.png", "1.png", "2.png"]
    assert all(r["track_id"] == 1 for r in rows)
    single = json.loads(alone.read_text().splitlines()[0])
    assert Path(single["source"]).name == "2.png"
    probs = [k for k in single if k.startswith("p_")]
    assert [rows[2][k] for k in probs] == pytest.approx([single[k] for k in probs], abs=1e-4)


def test_sigterm_finishes_the_video_and_the_records(tiny_onnx, face_model_path, tmp_path):
    """Killed with SIGTERM mid-video, fer-run still leaves a playable MP4 and every row of the frames it did,
    and exits with 143."""
    import signal
    import subprocess
    import sys
    import time

    src = write_video(tmp_path / "long.mp4", synthetic_clip(1, n_frames=60) * 50)  # 3000 frames: still running
    out, rows_csv = tmp_path / "out.mp4", tmp_path / "faces.csv"
    code = "import sys; from fer_core.cli_run import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "--source", str(src), "--model", str(tiny_onnx),
                             "--face-model", str(face_model_path), "--out", str(out), "--csv", str(rows_csv)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.is_file() and out.stat().st_size > 20000):
        time.sleep(0.1)
    assert proc.poll() is None, "fer-run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    frames = count_frames(out)
    assert 0 < frames < 3000  # playable: the MP4 was finished
    rows = read_csv(rows_csv)
    assert len({r["frame"] for r in rows}) == frames  # one face per frame, every processed frame recorded


def test_truncated_video_is_reported(tiny_onnx, face_model_path, tmp_path, capsys):
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (640, 480))
    for frame in synthetic_clip(1, n_frames=50):
        writer.write(frame)
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 5])
    rc, out, err = run(["--source", str(cut), "--model", str(tiny_onnx)], face_model_path, capsys)
    assert rc == 1
    assert "ended early" in err and "of the 50 frames" in err
