"""Frame sources: video files, images, folders, cameras, streams, and how they fail."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.synthetic import face_photos
from fer_core.sources import CaptureSource, ImageSource, SourceError, list_cameras, open_source


def write_video(path: Path, n: int = 8, size: tuple[int, int] = (160, 120), fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    face = cv2.resize(face_photos()[0], (size[1], size[1]))
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        frame[:, i * 4:i * 4 + size[1]] = face
        writer.write(frame)
    writer.release()
    return path


class FakeCapture:
    """A cv2.VideoCapture stand-in that delivers ``good`` frames, then fails forever (a camera unplugged)."""

    def __init__(self, good: int) -> None:
        self.good, self.reads, self.released = good, 0, False

    def read(self):
        self.reads += 1
        if self.reads <= self.good:
            return True, np.full((48, 64, 3), self.reads, np.uint8)
        return False, None

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


def test_video_file(tmp_path):
    path = write_video(tmp_path / "clip.mp4")
    with open_source(str(path)) as src:
        assert not src.is_live and src.frame_size == (160, 120) and src.fps == pytest.approx(10.0)
        assert src.frame_count == 8
        items = list(src)
    assert [i for i, _, _ in items] == list(range(8))
    assert [t for _, t, _ in items] == pytest.approx([i * 100.0 for i in range(8)])
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for _, _, f in items)
    assert src.error is None


def test_missing_and_corrupt_video(tmp_path):
    with pytest.raises(SourceError, match="not found.*nope.mp4"):
        open_source(tmp_path / "nope.mp4")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="broken.mp4"):
        open_source(str(bad))
    with pytest.raises(SourceError, match="empty source"):
        open_source("  ")


def test_image_and_folder(tmp_path, caplog):
    img = face_photos()[0]
    single = tmp_path / "one.png"
    cv2.imwrite(str(single), img)
    with open_source(single) as src:
        frames = list(src)
    assert len(frames) == 1 and frames[0][2].shape == img.shape and src.frame_count == 1

    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "b.jpg"), img)
    cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))  # grey file -> BGR frame
    (folder / "c.jpg").write_bytes(b"garbage")
    (folder / "notes.txt").write_text("not an image")
    src = open_source(str(folder))
    assert isinstance(src, ImageSource) and [p.name for p in src.paths] == ["a.png", "b.jpg", "c.jpg"]
    with caplog.at_level(logging.WARNING):
        names = []
        for _, _, frame in src:
            assert frame.ndim == 3 and frame.shape[2] == 3
            names.append(src.last_path.name)
    assert names == ["a.png", "b.jpg"]
    assert [p.name for p in src.skipped] == ["c.jpg"] and "c.jpg" in caplog.text

    with pytest.raises(SourceError, match="cannot read image"):
        open_source(folder / "c.jpg")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(empty)


def test_missing_camera_fails_fast():
    t0 = time.monotonic()
    for spec in (9, "9"):
        with pytest.raises(SourceError, match="camera 9"):
            open_source(spec)
    assert time.monotonic() - t0 < 5.0


def test_list_cameras_is_quick():
    t0 = time.monotonic()
    cams = list_cameras(max_index=3)
    assert isinstance(cams, list) and all(isinstance(i, int) for i in cams)
    assert time.monotonic() - t0 < 10.0


def test_list_cameras_finds_the_cameras_that_deliver(monkeypatch):
    """Index 0 missing, 1 opens but gives no frame, 2 works: only 2 is listed, and every capture is released."""
    import fer_core.sources as sources

    released = []

    class FakeCapture:
        def __init__(self, index):
            self.index = index

        def isOpened(self):
            return self.index != 0

        def read(self):
            return (True, np.zeros((4, 4, 3), np.uint8)) if self.index == 2 else (False, None)

        def release(self):
            released.append(self.index)

    monkeypatch.setattr(sources, "_camera_missing", lambda index: False)
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture)
    assert list_cameras(max_index=3) == [2]
    assert sorted(released) == [0, 1, 2]


def test_unreachable_stream_fails():
    with pytest.raises(SourceError, match="rtsp://127.0.0.1:9"):
        open_source("rtsp://127.0.0.1:9/none")


def test_live_source_stopping_mid_stream_ends_with_error():
    cap = FakeCapture(good=5)
    src = CaptureSource(cap, "camera 7", is_live=True, max_failed_reads=3)
    t0 = time.monotonic()
    frames = list(src)
    assert time.monotonic() - t0 < 2.0
    assert len(frames) == 5 and src.error and "stopped" in src.error and "camera 7" in src.error
    stamps = [t for _, t, _ in frames]
    assert stamps == sorted(stamps)
    src.close()
    assert cap.released


def test_live_source_without_any_frame_is_an_error():
    with pytest.raises(SourceError, match="no frame could be read"):
        CaptureSource(FakeCapture(good=0), "camera 3", is_live=True, max_failed_reads=2)


class AnnouncedCount:
    """A real video capture whose container announces ``extra`` more frames than the file holds (containers'
    counts are estimates)."""

    def __init__(self, path: Path, extra: int) -> None:
        self.cap, self.extra = cv2.VideoCapture(str(path)), extra

    def read(self):
        return self.cap.read()

    def get(self, prop):
        value = self.cap.get(prop)
        return value + self.extra if prop == cv2.CAP_PROP_FRAME_COUNT else value

    def release(self):
        self.cap.release()


def test_a_few_frames_short_of_the_announced_count_is_not_damage(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n=10)
    with CaptureSource(AnnouncedCount(path, extra=3), str(path), is_live=False) as src:
        assert src.frame_count == 13 and len(list(src)) == 10
    assert src.error is None


def test_a_large_shortfall_is_ended_early(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n=10)
    with CaptureSource(AnnouncedCount(path, extra=6), str(path), is_live=False) as src:
        assert len(list(src)) == 10
    assert src.error and "ended early" in src.error and "10 of the 16" in src.error


def test_ended_early_rule():
    from fer_core.sources import ended_early

    assert not ended_early(100, 103) and not ended_early(100, 105) and ended_early(100, 106)
    assert not ended_early(980, 1000) and ended_early(979, 1000)  # 2% of 1000 = 20 frames
    assert not ended_early(5, None) and not ended_early(10, 10)
