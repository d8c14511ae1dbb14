"""Quality choices (best / balanced / fastest): mirror averaging switched at run time from one file, faces read in
turn when a frame is over its budget (ages, held probabilities), "best" unchanged, and one photo read the same
way by fer-run, the Python API and fer-bench; progress bars stay quiet when nobody watches them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import REPO, make_tiny_onnx, write_video
from fer_core.pipeline import QUALITY_PLANS, Pipeline
from fer_core.session import MIRROR_INPUT, EmotionClassifier
from fer_core.settings import QUALITIES, PipelineSettings
from fer_core.synthetic import synthetic_clip
from fer_core.tracking import ReadScheduler, Track, Tracker

SHIPPED = REPO / "models" / "fer_realtime.onnx"


def _fold_flip(src: Path, dst: Path) -> Path:
    from training.mirror_fold import fold_flip

    fold_flip(src, dst)
    return dst


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory) -> tuple[Path, Path]:
    """(plain, folded): the tiny model weighting pixels by a left-to-right ramp (so a mirror image changes its
    answer), and the same with mirror averaging folded in as the shipped models have it."""
    folder = tmp_path_factory.mktemp("quality")
    model = onnx.load(str(make_tiny_onnx(folder / "tiny.onnx", size=48)))
    ramp = np.linspace(-3.0, 3.0, 48, dtype=np.float32).reshape(1, 1, 1, 48)
    model.graph.initializer.append(numpy_helper.from_array(ramp, "ramp"))
    model.graph.node[0].input[0] = "weighted"
    model.graph.node.insert(0, helper.make_node("Mul", ["input", "ramp"], ["weighted"]))
    plain = folder / "plain.onnx"
    onnx.save(model, str(plain))
    return plain, _fold_flip(plain, folder / "folded.onnx")


def _faces(n: int = 5) -> np.ndarray:
    x = np.random.default_rng(3).uniform(-1, 1, (n, 3, 48, 48)).astype(np.float32)
    x[..., :20] += 1.5  # a brighter left side: the mirror image reads differently
    return x


# --------------------------------------------------------------------------- one file, both paths


def test_one_graph_reads_each_face_once_or_with_its_mirror_image(lopsided, tmp_path, caplog):
    plain, folded = lopsided
    x = _faces()
    a, b = EmotionClassifier(plain, provider="cpu"), EmotionClassifier(folded, provider="cpu")
    assert not a.has_mirror and b.has_mirror and b.mirror
    with_mirror = b.predict_batch(x)
    assert np.abs(with_mirror - a.predict_batch(x)).max() > 0.02  # the fold changes the answers
    session = b.session
    b.mirror = False
    np.testing.assert_array_equal(b.predict_batch(x), a.predict_batch(x))  # one view: the plain model exactly
    b.mirror = True
    np.testing.assert_array_equal(b.predict_batch(x), with_mirror)
    assert b.session is session  # one session: the switch is the graph's flag, nothing is rebuilt
    assert [i.name for i in session.get_overridable_initializers()] == [MIRROR_INPUT]
    a.mirror = True  # a model without the fold has nothing to switch
    assert not a.mirror
    # a file folded before the flag existed: always both views, with a note on how to convert it
    older = tmp_path / "older.onnx"
    _fold_plain_nodes(plain, older)
    c = EmotionClassifier(older, provider="cpu")
    with caplog.at_level("INFO", logger="fer_core.session"):
        c.mirror = False
    assert c.mirror and "python -m training.mirror_fold" in caplog.text
    np.testing.assert_allclose(c.predict_batch(x), with_mirror, rtol=1e-6, atol=1e-7)
    from training.mirror_fold import main

    assert main([str(older), "--out", str(tmp_path / "converted.onnx")]) == 0
    d = EmotionClassifier(tmp_path / "converted.onnx", provider="cpu")
    np.testing.assert_array_equal(d.predict_batch(x), c.predict_batch(x))
    d.mirror = False
    np.testing.assert_array_equal(d.predict_batch(x), a.predict_batch(x))
    assert main([str(tmp_path / "converted.onnx")]) == 2  # switchable already
    assert main([str(plain)]) == 2  # no fold


def _fold_plain_nodes(src: Path, dst: Path) -> None:
    """The fold as files had it before the ``mirror`` flag: plain nodes in the main graph, the mirror image's
    tensor named like today's flag."""
    from training.mirror_fold import _add_flip_nodes
    from training.onnx_graph import save_with_metadata

    model = onnx.load(str(src))
    _add_flip_nodes(model)
    for node in model.graph.node:
        node.input[:] = [MIRROR_INPUT if i == "flip_image" else i for i in node.input]
        node.output[:] = [MIRROR_INPUT if o == "flip_image" else o for o in node.output]
    save_with_metadata(model, dict({p.key: p.value for p in model.metadata_props}, tta="flip"), dst)


def test_quality_changes_reach_the_pipeline_at_run_time(lopsided, face_model_path):
    plain, folded = lopsided
    photo = synthetic_clip(1, n_frames=1)[0]
    with Pipeline(folded, PipelineSettings(quality="best"), provider="cpu", face_model=face_model_path) as pipe:
        best = pipe.process(photo, still=True).faces[0].vector()
        pipe.settings = pipe.settings.replace(quality="balanced")
        assert not pipe.classifier.mirror and pipe.scheduler.budget_ms == QUALITY_PLANS["balanced"].budget_ms
        balanced = pipe.process(photo, still=True).faces[0].vector()
        pipe.settings = pipe.settings.replace(quality="fastest")
        assert pipe.scheduler.budget_ms == QUALITY_PLANS["fastest"].budget_ms
        pipe.settings = pipe.settings.replace(quality="best")
        assert pipe.classifier.mirror and pipe.scheduler.budget_ms is None
        again = pipe.process(photo, still=True).faces[0].vector()
    with Pipeline(plain, provider="cpu", face_model=face_model_path) as ref:
        plain_probs = ref.process(photo, still=True).faces[0].vector()
    np.testing.assert_array_equal(again, best)
    np.testing.assert_array_equal(balanced, plain_probs)
    assert np.abs(best - balanced).max() > 1e-3
    assert set(QUALITY_PLANS) == set(QUALITIES)


def test_best_is_every_face_every_frame_with_the_files_own_graph(face_model_path):
    """"best" gives today's numbers bit for bit: the shipped file's graph on every face, smoothed as before."""
    from fer_core.crop import crop_face

    s = PipelineSettings(quality="best", smoothing=0.6)
    clf = EmotionClassifier(SHIPPED, provider="cpu")
    held: dict[int, np.ndarray] = {}
    with Pipeline(SHIPPED, s, provider="cpu", face_model=face_model_path) as pipe:
        for i, frame in enumerate(synthetic_clip(4, n_frames=5)):
            faces = pipe.process(frame, timestamp_ms=40 * i).faces
            assert len(faces) == 4 and all(f.age_ms == 0 for f in faces)
            crops = [crop_face(frame, f.box, s.margin, shift=s.shift, eyes=f.eyes) for f in faces]
            for face, p in zip(faces, clf.predict(crops)):
                old = held.get(face.track_id)
                held[face.track_id] = p if old is None else s.smoothing * old + (1.0 - s.smoothing) * p
                np.testing.assert_array_equal(face.vector(), held[face.track_id])


# --------------------------------------------------------------------------- reading faces in turn


def _track(i: int, read_ms: float | None) -> Track:
    return Track(i, (0, 0, 10, 10), None if read_ms is None else np.ones(7, np.float32), read_ms=read_ms)


def test_scheduler_reads_new_faces_then_the_oldest_readings():
    sched = ReadScheduler(budget_ms=33.0)
    tracks = [_track(1, 100.0), _track(2, 40.0), _track(3, None), _track(4, 80.0), _track(5, 40.0)]
    assert sched.choose(tracks, 3.0) == [0, 1, 2, 3, 4]  # no cost known yet: everyone
    sched.record(5, 50.0)
    assert sched.face_ms == 10.0
    assert sched.choose(tracks, 3.0) == [1, 2, 4]  # room for 3: the new face, then the two oldest (40, 40)
    assert sched.choose(tracks, 32.0) == [2]  # no room: the new face still gets its first reading
    assert sched.choose([t for t in tracks if t.read_ms is not None], 40.0) == [1]  # at least one a frame
    sched.record(1, 20.0)
    assert sched.face_ms == pytest.approx(12.0)  # a running mean
    sched.budget_ms = None
    assert sched.choose(tracks, 500.0) == [0, 1, 2, 3, 4]


def test_over_budget_faces_take_turns_with_ages_and_held_probabilities(lopsided, face_model_path):
    _, folded = lopsided
    with Pipeline(folded, PipelineSettings(quality="fastest", smoothing=0.5), provider="cpu",
                  face_model=face_model_path) as pipe:
        pipe.scheduler.face_ms = 1e6  # every frame is over budget: one face read a frame (after the first)
        pipe.scheduler.record = lambda faces, ms: None
        frames = synthetic_clip(4, n_frames=9)
        first = pipe.process(frames[0], timestamp_ms=0).faces
        assert len(first) == 4 and all(f.age_ms == 0 for f in first)  # new faces are all read
        last_read = {f.track_id: 0.0 for f in first}
        before = {f.track_id: f.vector() for f in first}
        read_order = []
        for i, frame in enumerate(frames[1:], start=1):
            now = 40.0 * i
            faces = pipe.process(frame, timestamp_ms=now).faces
            assert sorted(f.track_id for f in faces) == [1, 2, 3, 4]
            fresh = [f for f in faces if f.age_ms == 0]
            assert len(fresh) == 1
            read_order.append(fresh[0].track_id)
            last_read[fresh[0].track_id] = now
            tracks = {t.track_id: t for t in pipe.tracker.tracks}
            for f in faces:
                assert f.age_ms == pytest.approx(now - last_read[f.track_id])  # grows, 0 when read again
                np.testing.assert_array_equal(f.vector(), tracks[f.track_id].probs)  # the tracker's
                if f.age_ms > 0:
                    np.testing.assert_array_equal(f.vector(), before[f.track_id])  # held, not re-read
            before = {f.track_id: f.vector() for f in faces}
        assert sorted(read_order[:4]) == [1, 2, 3, 4] and read_order[4:] == read_order[:4]  # in rotation
        assert max(f.age_ms for f in faces) == pytest.approx(120.0)
        # a photo reads every face whatever the quality and the budget
        assert all(f.age_ms == 0 for f in pipe.process(frames[0], still=True).faces)


def test_fastest_searches_every_other_frame_and_reads_each_frame_at_the_held_boxes(lopsided, face_model_path):
    _, folded = lopsided
    frames = synthetic_clip(2, n_frames=6)
    with Pipeline(folded, PipelineSettings(quality="fastest"), provider="cpu", face_model=face_model_path) as pipe:
        searched = []
        detect = pipe.detector.detect
        pipe.detector.detect = lambda frame, ts, **kw: searched.append(ts) or detect(frame, ts, **kw)
        read = []
        classify = pipe.classifier.predict_batch
        pipe.classifier.predict_batch = lambda batch: read.append(batch.copy()) or classify(batch)
        results = [pipe.process(frame, timestamp_ms=40 * i) for i, frame in enumerate(frames)]
        assert searched == [0, 80, 160]
        for i in (1, 3, 5):  # the boxes of the frame before, each face read from this frame's pixels
            assert [f.box for f in results[i].faces] == [f.box for f in results[i - 1].faces]
            assert all(f.age_ms == 0 for f in results[i].faces) and np.abs(read[i] - read[i - 1]).max() > 0
        assert all(len(r.faces) == 2 for r in results)
        searching = pipe.process(frames[0], timestamp_ms=240)
        pipe.process(frames[3], still=True)  # a photo always searches, and leaves the stream's boxes alone
        holding = pipe.process(frames[1], timestamp_ms=280)
        assert searched[3:] == [240, None] and [f.box for f in holding.faces] == [f.box for f in searching.faces]
        pipe.reset()  # a new source: nothing held
        pipe.process(frames[2], timestamp_ms=0)
        assert searched[-1] == 0
        empty = np.zeros_like(frames[0])
        assert len(pipe.process(empty, timestamp_ms=40).faces) == 2  # held: a face that went is kept one frame
        assert pipe.process(empty, timestamp_ms=80).faces == []  # searched: none
        pipe.process(frames[3], timestamp_ms=120)  # nothing held: searches again
        assert searched[-3:] == [0, 80, 120]
    for quality in ("best", "balanced"):
        assert QUALITY_PLANS[quality].detect_every == 1


def test_tracker_update_is_match_then_observe():
    a, b = Tracker(smoothing=0.6), Tracker(smoothing=0.6)
    rng = np.random.default_rng(0)
    for step in range(4):
        boxes = [(10 + step, 10, 50, 50), (200, 10 + step, 60, 60)]
        probs = rng.dirichlet(np.ones(7), 2).astype(np.float32)
        got = a.update(boxes, probs)
        tracks = b.match(boxes)
        for t, p in zip(tracks, probs):
            b.observe(t, p, now_ms=step)
        assert [t.track_id for t in got] == [t.track_id for t in tracks] == [1, 2]
        for x, y in zip(got, tracks):
            np.testing.assert_array_equal(x.probs, y.probs)


# --------------------------------------------------------------------------- one photo, every front door


@pytest.fixture(scope="module")
def group_photo(tmp_path_factory) -> Path:
    """Five real faces in one 640x480 picture (the bundled photos, as the synthetic clip places them)."""
    path = tmp_path_factory.mktemp("group") / "group.png"
    cv2.imwrite(str(path), synthetic_clip(5, n_frames=1)[0])
    return path


def test_one_photo_gets_the_same_faces_and_labels_from_every_front_door(group_photo, face_model_path, tmp_path,
                                                                         monkeypatch):
    from fer_core import cli_bench, cli_run
    from fer_core.api import EmotionRecognizer

    with EmotionRecognizer(SHIPPED, provider="cpu", face_model=face_model_path) as rec:
        api = sorted((f.box, f.label) for f in rec.predict(cv2.imread(str(group_photo))))
    assert len(api) == 5

    records = tmp_path / "faces.jsonl"
    assert cli_run.main(["--source", str(group_photo), "--model", str(SHIPPED), "--provider", "cpu",
                         "--jsonl", str(records), "--face-model", str(face_model_path)]) == 0
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    run = sorted(((r["x"], r["y"], r["w"], r["h"]), r["label"]) for r in rows)

    seen = []
    process = Pipeline.process

    def spy(self, *args, **kwargs):
        result = process(self, *args, **kwargs)
        seen.append(sorted((f.box, f.label) for f in result.faces))
        return result

    monkeypatch.setattr(Pipeline, "process", spy)
    assert cli_bench.main(["--model", str(SHIPPED), "--source", str(group_photo), "--warmup", "1", "--iterations",
                           "2", "--repeats", "1", "--face-model", str(face_model_path), "--no-progress"]) == 0
    assert len(seen) == 3
    assert run == api and all(bench == api for bench in seen)


# --------------------------------------------------------------------------- quiet progress


@pytest.mark.parametrize("command", ["fer-bench", "fer-run"])
def test_no_progress_flood_when_stderr_is_not_a_terminal(command, tmp_path, face_model_path, tiny_onnx):
    if command == "fer-bench":
        args = ["fer_core.cli_bench", "--model", str(tiny_onnx), "--faces", "1", "--warmup", "2",
                "--iterations", "40", "--repeats", "1"]
    else:
        video = write_video(tmp_path / "clip.mp4", synthetic_clip(1, size=(320, 240), n_frames=40))
        args = ["fer_core.cli_run", "--source", str(video), "--model", str(tiny_onnx)]
    done = subprocess.run([sys.executable, "-m", *args, "--face-model", str(face_model_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    bars = [line for line in done.stderr.splitlines() if "%|" in line]  # tqdm's "fer-run:  50%|#####  | 20/40"
    assert not bars, done.stderr[-2000:]


def test_fer_bench_times_each_quality_in_its_own_row(tiny_onnx, face_model_path, tmp_path, capsys):
    from fer_core import cli_bench

    out = tmp_path / "bench.json"
    assert cli_bench.main(["--model", str(tiny_onnx), "--quality", "best,fastest", "--faces", "1,2", "--warmup", "1",
                           "--iterations", "2", "--repeats", "1", "--face-model", str(face_model_path),
                           "--no-progress", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["quality"], r["faces"]) for r in rows] == [("best", 1), ("best", 2), ("fastest", 1), ("fastest", 2)]
    assert all(r["status"] == "ok" for r in rows) and all(0 < r["faces_read"] <= r["faces_found"] for r in rows)
    table = capsys.readouterr().out
    assert "quality" in table.splitlines()[0] and table.count("fastest") == 2
    with pytest.raises(SystemExit):
        cli_bench.build_parser().parse_args(["--quality", "best,quick"])


@pytest.mark.parametrize("name", ["fer_realtime", "fer_ferplus"])
def test_every_shipped_model_reads_real_faces_both_ways(name, fer2013_root):
    faces = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
             for folder in sorted((fer2013_root / "test").iterdir())
             for p in sorted(folder.glob("PrivateTest_*.jpg"))[:3]]
    clf = EmotionClassifier(REPO / "models" / f"{name}.onnx", provider="cpu")
    assert clf.has_mirror and clf.mirror
    both = clf.predict(faces)
    clf.mirror = False
    once = clf.predict(faces)
    assert once.shape == both.shape and np.isfinite(once).all()
    np.testing.assert_allclose(once.sum(axis=1), 1.0, atol=1e-4)
    assert 0 < np.abs(once - both).max() < 0.5  # a view fewer, the same model
    assert (once.argmax(1) == both.argmax(1)).mean() >= 0.7
