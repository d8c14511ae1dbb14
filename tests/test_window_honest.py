"""The window says what is true (issue 23): small faces for photos, banners that go when the trouble is over, a
camera that failed, Record only when frames will come, saved files where the user keeps them, and the codec."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import app  # noqa: F401  (the OpenCV / Qt plugin-path fix, before pytest-qt creates the QApplication)
from test_app import make_window, write_two_face_video


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_two_face_video(tmp_path_factory.mktemp("video") / "two_faces.mp4", 30)


@pytest.fixture
def photo(tmp_path) -> Path:
    from skimage import data

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[60:360, 170:470] = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:270, 95:355], (300, 300))
    cv2.imwrite(str(tmp_path / "photo.png"), frame)
    return tmp_path / "photo.png"


def test_small_faces_shows_checked_for_a_photo_and_the_choice_again_for_a_video(qtbot, video, photo, tiny_onnx,
                                                                                face_model_path):
    window = make_window(qtbot, source=str(photo), model=str(tiny_onnx), face_model=str(face_model_path))
    check = window.controls.small_faces_check
    qtbot.waitUntil(lambda: window.last_result is not None, timeout=20000)
    assert check.isChecked() and not check.isEnabled() and "Photos are always" in check.toolTip()
    window.open_source(str(video))
    qtbot.waitUntil(lambda: window.frames_shown >= 1, timeout=20000)
    assert not check.isChecked() and check.isEnabled() and not window.settings.pipeline.small_faces
    window.close()


def test_a_frame_error_banner_goes_with_the_next_good_frame(qtbot, video, tiny_onnx, face_model_path, monkeypatch):
    from fer_core.pipeline import Pipeline

    process, calls = Pipeline.process, []

    def fails_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("a test failure")
        return process(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "process", fails_once)
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path),
                         pace_video=True)
    shown: list[str] = []
    show_message = window.banner.show_message
    monkeypatch.setattr(window.banner, "show_message", lambda text, *a, **k: (shown.append(text),
                                                                              show_message(text, *a, **k)))
    qtbot.waitUntil(lambda: bool(shown) and window.frames_shown >= 6, timeout=20000)
    assert "a test failure" in shown[0]
    assert not window.banner.isVisible()  # frames are processed again: the message went
    window.close()


def test_a_camera_that_does_not_open_is_not_shown_as_now_playing(qtbot, tiny_onnx):
    window = make_window(qtbot, source=9, model=str(tiny_onnx))
    with qtbot.waitSignal(window.worker_finished, timeout=10000):
        pass
    assert window.controls.source_label.text() == "Could not open camera 9"
    assert not window.controls.record_button.isEnabled()
    window.close()


def test_record_only_while_frames_will_come(qtbot, video, photo, tiny_onnx, face_model_path, tmp_path):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path),
                         pace_video=True)
    record = window.controls.record_button
    qtbot.waitUntil(lambda: window.frames_shown >= 1 and record.isEnabled(), timeout=20000)
    with qtbot.waitSignal(window.source_ended, timeout=20000):
        pass
    qtbot.waitUntil(lambda: not record.isEnabled(), timeout=5000)
    assert not window.start_recording(tmp_path / "after_end")  # nothing would be written
    assert "Nothing to record: the video has ended" in window.banner.text
    window.open_source(str(photo))
    qtbot.waitUntil(lambda: window.last_stats.state == "still", timeout=20000)
    assert not record.isEnabled() and not window.start_recording(tmp_path / "photo_rec")
    qtbot.wait(300)
    assert not list(tmp_path.glob("after_end*")) and not list(tmp_path.glob("photo_rec*"))
    window.close()


def test_save_folders_are_pictures_and_videos(qtbot, photo, tiny_onnx, face_model_path, tmp_path, monkeypatch):
    from app import main_window

    pictures, videos = tmp_path / "Pictures", tmp_path / "Videos"
    pictures.mkdir()
    monkeypatch.setattr(main_window.platformdirs, "user_pictures_dir", lambda: str(pictures))
    monkeypatch.setattr(main_window.platformdirs, "user_videos_dir", lambda: str(videos))  # missing: home
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main_window.output_folder("pictures") == pictures / "FER"
    assert main_window.output_folder("videos") == tmp_path / "home" / "FER"

    asked: list[str] = []

    def save_dialog(parent, caption, default, filters):
        asked.append(default)
        return (default, filters) if default.endswith(".png") else ("", "")

    monkeypatch.setattr(main_window.QFileDialog, "getSaveFileName", save_dialog)
    window = make_window(qtbot, source=str(photo), model=str(tiny_onnx), face_model=str(face_model_path))
    qtbot.waitUntil(lambda: window.view.image is not None, timeout=20000)
    window.choose_snapshot()
    window._on_record_toggled(True)
    snapshot, recording = map(Path, asked)
    assert snapshot.parent == pictures / "FER" and snapshot.is_file()
    assert recording.parent == tmp_path / "home" / "FER"
    window.close()


def test_recording_says_its_codec_and_claims_only_files_that_exist(qtbot, video, tiny_onnx, face_model_path,
                                                                  tmp_path):
    window = make_window(qtbot, source=str(video), model=str(tiny_onnx), face_model=str(face_model_path),
                         pace_video=True)
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    record = window.controls.record_button
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=20000)
    window.set_paused(True)  # no frame comes while recording: only the CSV is written
    assert window.start_recording(tmp_path / "empty")
    qtbot.waitUntil(record.isChecked, timeout=5000)
    codec_words = ("H.264", "MPEG-4", "Motion JPEG")
    assert any(c in record.toolTip() for c in codec_words) and str(tmp_path) in record.toolTip()
    qtbot.waitUntil(lambda: bool(messages) and messages[-1].startswith("Recording to"), timeout=5000)
    assert any(c in messages[-1] for c in codec_words)  # the line that stays names the codec
    window.stop_recording()
    qtbot.waitUntil(lambda: not record.isChecked(), timeout=5000)
    qtbot.wait(200)
    assert not any("empty" in m for m in messages[-1:])  # the last word claims no file...
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".csv"]  # ...and there is no video file
    window.set_paused(False)
    window.start_recording(tmp_path / "real")
    qtbot.waitUntil(record.isChecked, timeout=5000)
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= shown + 3, timeout=10000)
    window.stop_recording()
    qtbot.waitUntil(lambda: window.last_recording == str(tmp_path / "real.csv"), timeout=5000)
    videos = [p for p in tmp_path.glob("real.*") if p.suffix != ".csv"]
    assert len(videos) == 1 and videos[0].name in messages[-1] and any(c in messages[-1] for c in codec_words)
    window.close()
