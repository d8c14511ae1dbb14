"""``fer-app``: the desktop app's command line.

::

    fer-app                                   # camera 0, shipped default model
    fer-app --source video.mp4 --model models/x.onnx --provider cpu
    fer-app --source video.mp4 --screenshot out.png --quit-after-frames 60   # docs / smoke tests
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import app  # noqa: F401  (applies the OpenCV / Qt plugin-path fix before any QApplication exists)
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from fer_core.cli import PROVIDER_CHOICES, STOP_SIGNALS, provider_arg, signal_exit_status
from app.qt_env import (XCB_LIBS, QtBindingError, check_pyside, has_display, missing_xcb_packages,
                        use_offscreen_if_headless)

if TYPE_CHECKING:
    from app.main_window import MainWindow

DEFAULT_SCREENSHOT_FRAMES = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-app", description="Live facial expression recognition: per-face emotion probabilities, "
                                    "frame rates and latency, and an FPS benchmark.")
    parser.add_argument("--source", default="0",
                        help="camera index, video file, image, folder of images or stream URL (default: camera 0)")
    parser.add_argument("--model", help="ONNX emotion model (default: $FER_MODEL or models/fer_realtime.onnx)")
    parser.add_argument("--provider", default="auto", type=provider_arg,
                        help=f"ONNX Runtime execution provider: {', '.join(PROVIDER_CHOICES)} (default: auto)")
    parser.add_argument("--face-model", help="MediaPipe BlazeFace .tflite face detector (default: "
                                             "$FER_FACE_MODEL, the user cache, else a one-time download)")
    parser.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the whole window, then exit")
    parser.add_argument("--quit-after-frames", type=int, metavar="N",
                        help=f"exit after N processed frames (with --screenshot: default {DEFAULT_SCREENSHOT_FRAMES})")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="with --screenshot / --quit-after-frames: give up after S seconds (default 120)")
    parser.add_argument("--size", default="1360x860", metavar="WxH", help="window size (default 1360x860)")
    parser.add_argument("--no-pace", action="store_true",
                        help="process video files as fast as possible instead of at their frame rate (also with "
                             "--screenshot, which otherwise plays them like the live view)")
    return parser


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 1280x800, not '{text}'") from None
    return max(w, 400), max(h, 300)


class AutoQuit:
    """Ends the app after N processed frames (or at the end of the source / an error / a timeout),
    saving a screenshot of the whole window first when asked."""

    def __init__(self, qt_app: QApplication, window: MainWindow, frames: int, screenshot: str | None,
                 timeout_s: float) -> None:
        self.app, self.window, self.frames, self.screenshot = qt_app, window, frames, screenshot
        self.done = False
        window.frame_shown.connect(self._on_frame)
        window.source_ended.connect(lambda: self.finish("the source has no more frames"))
        window.worker_finished.connect(lambda: self.finish("the source could not be processed"))
        QTimer.singleShot(int(timeout_s * 1000), lambda: self.finish(f"timed out after {timeout_s:.0f} s"))

    def _on_frame(self, shown: int) -> None:
        if self.window.last_stats.frames_processed >= self.frames:
            self.finish(None)

    def finish(self, reason: str | None) -> None:
        if self.done:
            return
        self.done = True
        processed = self.window.last_stats.frames_processed
        # a model that did not load or a provider that is not there is a failure, even if frames went by
        ok = processed > 0 and (reason is None or "timed out" not in reason) and not self.window.last_error
        if reason is not None:
            print(f"fer-app: stopped after {processed} of {self.frames} frames: {reason}", file=sys.stderr)
        if self.window.last_error:
            print(f"fer-app: {self.window.last_error}", file=sys.stderr)
        if self.screenshot:
            for _ in range(3):  # let pending layout changes and repaints happen before the capture
                self.app.processEvents()
            saved = self.window.grab().save(self.screenshot, "PNG")
            if saved:
                print(f"fer-app: {processed} frames processed; screenshot saved to {self.screenshot}")
            else:
                print(f"fer-app: cannot write the screenshot {self.screenshot}", file=sys.stderr)
            ok = ok and saved
        self.window.close()
        self.app.exit(0 if ok else 1)


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        size = _parse_size(args.size)
    except argparse.ArgumentTypeError as exc:
        print(f"fer-app: {exc}", file=sys.stderr)
        return 2
    try:
        check_pyside()
    except QtBindingError as exc:
        print(f"fer-app: {exc}", file=sys.stderr)
        return 2
    auto_quit = args.screenshot is not None or args.quit_after_frames is not None
    if args.screenshot:
        folder = Path(args.screenshot).expanduser().resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"fer-app: cannot create the folder for the screenshot {args.screenshot}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 2

    if auto_quit:
        use_offscreen_if_headless()  # screenshots and smoke tests work without a display
    elif not has_display():
        print("fer-app: no display found (DISPLAY / WAYLAND_DISPLAY unset). Run it on a desktop, under "
              "xvfb-run, or with --screenshot for a headless capture.", file=sys.stderr)
        return 2
    missing = missing_xcb_packages()
    if missing:
        print(f"fer-app: Qt's X11 platform needs libraries this system lacks. Install them with:\n"
              f"    sudo apt-get install {' '.join(missing)}\n(other distributions: the packages of "
              f"{', '.join(lib for lib, _ in XCB_LIBS)})", file=sys.stderr)
        return 2
    # Ctrl+C, SIGTERM and SIGHUP close the window like its close button: the worker stops and a recording is
    # finished (a playable MP4, every CSV row). The handlers come before the window's imports and construction
    # (seconds on a slow machine), so a signal then ends the start-up instead of killing it. Python handles signals
    # only when it gets to run: hence the tick.
    stopped_by: list[int] = []
    window = None

    def stop(signum: int, _frame) -> None:
        stopped_by.append(signum)
        if window is not None:
            window.close()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        from app.main_window import MainWindow  # MediaPipe, ONNX Runtime, the widgets: the slow imports

        qt_app = QApplication.instance() or QApplication(sys.argv[:1])
        qt_app.setApplicationName("fer-app")
        window = MainWindow(source=args.source, model=args.model, provider=args.provider,
                            face_model=args.face_model, pace_video=not args.no_pace, scan_cameras=not auto_quit)
        if stopped_by:  # stopped while starting
            window.close()
            return signal_exit_status(stopped_by[0])
        window.resize(*size)
        window.show()
        quitter = None
        if auto_quit:
            frames = args.quit_after_frames if args.quit_after_frames is not None else DEFAULT_SCREENSHOT_FRAMES
            quitter = AutoQuit(qt_app, window, max(1, frames), args.screenshot, args.timeout)
        tick = QTimer()
        tick.start(250)
        tick.timeout.connect(lambda: None)
        rc = qt_app.exec()
        del quitter
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    if stopped_by:
        return signal_exit_status(stopped_by[0])
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
