"""Does the app's memory level off when a clip is opened again and again, switching models each time (issue 23)?

Runs the real window in this process (Qt's ``offscreen`` platform unless a display is set) on a 640x360 24 fps
clip of one face. Each cycle opens the clip, shows a few frames, switches to the other of two model files (the
shipped model and a copy of it, so every switch builds a new ONNX Runtime session) and shows a few more. Resident
memory is printed after every cycle; the exit status is 1 when it grew by more than ``--limit`` percent from the
end of the warm-up to the last cycle.

    python benchmarks/app_reopen.py                       # 4 warm-up + 12 measured cycles, limit +5%
    python benchmarks/app_reopen.py --warmup 8 --cycles 25
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import app  # noqa: E402,F401  (the OpenCV / Qt plugin-path fix)
from fer_core.model_zoo import default_model_path  # noqa: E402
from fer_core.synthetic import face_photos, synthetic_clip  # noqa: E402
from fer_core.video_writer import VideoWriter  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main_window import MainWindow  # noqa: E402


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def wait_until(predicate, timeout_s: float) -> bool:
    """Run the Qt event loop until ``predicate()`` is true (False after ``timeout_s``)."""
    end, loop = time.monotonic() + timeout_s, QEventLoop()
    while time.monotonic() < end and not predicate():
        QTimer.singleShot(20, loop.quit)
        loop.exec()
    return predicate()


def write_clip(path: Path, seconds: float = 4, fps: float = 24) -> None:
    loop = synthetic_clip(1, (640, 360), n_frames=int(4 * fps), photos=face_photos()[:1])
    writer = VideoWriter(path, fps)
    for i in range(int(seconds * fps)):
        writer.write(loop[i % len(loop)])
    writer.close()


def cycle(window: MainWindow, clip: Path, model: str) -> None:
    window.open_source(str(clip))
    if not wait_until(lambda: window.frames_shown >= 5, 30):
        raise SystemExit("no frames within 30 s: " + window.last_error)
    shown = window.frames_shown
    window.set_model(model)
    if not wait_until(lambda: window.model_in_use == model and window.frames_shown >= shown + 5, 30):
        raise SystemExit("the model switch showed no frames within 30 s: " + window.last_error)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warmup", type=int, default=4, help="cycles before the baseline")
    p.add_argument("--cycles", type=int, default=12, help="measured cycles")
    p.add_argument("--limit", type=float, default=5.0, help="allowed growth after the warm-up, percent")
    args = p.parse_args(argv)
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        clip, copy = Path(tmp) / "clip.mp4", Path(tmp) / "copy.onnx"
        write_clip(clip)
        shipped = default_model_path()
        shutil.copy(shipped, copy)
        models = [str(copy), str(shipped)]
        window = MainWindow(source=None, scan_cameras=False, pace_video=False)
        window.open_reports = False
        window.show()
        for i in range(args.warmup):
            cycle(window, clip, models[i % 2])
        base = rss_mb()
        print(f"after {args.warmup} warm-up cycles: {base:.0f} MB")
        for i in range(args.cycles):
            cycle(window, clip, models[(args.warmup + i) % 2])
            rss = rss_mb()
            print(f"cycle {i + 1:3d}: {rss:.0f} MB ({100 * (rss / base - 1):+.1f}%)", flush=True)
        window.close()
        qt_app.processEvents()
    growth = 100 * (rss / base - 1)
    print(f"growth after warm-up: {growth:+.1f}% (limit +{args.limit:g}%)")
    return 0 if growth <= args.limit else 1


if __name__ == "__main__":
    raise SystemExit(main())
