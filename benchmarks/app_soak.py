"""Does the desktop app give back what it takes? Resident memory and threads of one app window while it reopens
sources and switches models again and again, then while it plays a video for a long time.

    python benchmarks/app_soak.py --cycles 24 --minutes 30      # the issue's targets: RSS +<5%, threads flat
    python benchmarks/app_soak.py --cycles 5 --minutes 1        # a quick look

Runs the real window (Qt's ``offscreen`` platform unless a display is set) in this process, on a 640x360 24 fps
clip of one face, with the shipped models. Memory is measured after a warm-up cycle per model (first-use caches
are not leaks) and after each cycle; the playback phase samples it once a minute.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import app  # noqa: E402,F401  (the OpenCV / Qt plugin-path fix)
from app_cpu import write_clip  # noqa: E402
from fer_core.model_zoo import list_shipped_models  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main_window import MainWindow  # noqa: E402


def wait_until(predicate, timeout_s: float) -> bool:
    """Run the Qt event loop until ``predicate()`` is true (False after ``timeout_s``)."""
    end = time.monotonic() + timeout_s
    loop = QEventLoop()
    while time.monotonic() < end:
        if predicate():
            return True
        QTimer.singleShot(20, loop.quit)
        loop.exec()
    return predicate()


def usage() -> tuple[float, int]:
    """(resident memory in MB, OS threads) of this process."""
    me = psutil.Process()
    return me.memory_info().rss / 2**20, me.num_threads()


def cycle(window: MainWindow, clip: Path, model: Path) -> None:
    """Open the clip, show a few frames, switch to ``model`` and show a few more."""
    window.open_source(str(clip))
    if not wait_until(lambda: window.frames_shown >= 5, 30):
        raise SystemExit("no frames within 30 s: " + window.last_error)
    window.set_model(str(model))
    shown = window.frames_shown
    if not wait_until(lambda: window.model_in_use == str(model) and window.frames_shown >= shown + 5, 30):
        raise SystemExit("the model switch showed no frames within 30 s: " + window.last_error)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=24, help="reopen-and-switch-model cycles")
    p.add_argument("--minutes", type=float, default=30.0, help="then play the clip (looped) this long")
    args = p.parse_args(argv)
    models = list_shipped_models()
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, 20, 24)
        window = MainWindow(source=None, scan_cameras=False)
        window.open_reports = False
        window.show()
        for model in models:  # warm-up: first-use caches and libraries of every model
            cycle(window, clip, model)
        rss0, threads0 = usage()
        print(f"after warm-up: {rss0:.0f} MB, {threads0} threads ({threading.active_count()} Python threads)")
        for i in range(args.cycles):
            cycle(window, clip, models[(i + 1) % len(models)])
            rss, threads = usage()
            print(f"cycle {i + 1:3d}: {rss:.0f} MB ({100 * (rss / rss0 - 1):+.1f}%), {threads} threads")
        window.source_ended.connect(lambda: window.open_source(str(clip)))  # loop the clip
        window.open_source(str(clip))
        start, rss1, threads1 = time.monotonic(), *usage()
        for minute in range(1, int(args.minutes) + 1):
            wait_until(lambda m=minute: time.monotonic() - start >= 60 * m, 61)
            rss, threads = usage()
            print(f"playing {minute:3d} min: {rss:.0f} MB ({100 * (rss / rss1 - 1):+.1f}%), {threads} threads, "
                  f"{window.last_stats.get('frames_processed', 0)} frames in this loop")
        window.close()
    rss, threads = usage()
    print(f"closed: {rss:.0f} MB, {threads} threads")
    qt_app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
