"""How much processor the desktop app takes to play a video, against ``fer-run`` doing the same decode + inference.

Writes a 640x360, 24 fps clip of one moving face (the bundled photos), then measures, each in its own process:

* ``fer-run`` unpaced on the first N and the first 2N frames: the difference gives its processor seconds per
  frame (decode + detection + classification, start-up cancelled out), so ``x fps`` is what the pure pipeline
  needs at the clip's frame rate;
* ``fer-app`` playing the clip at its frame rate (Qt's ``offscreen`` platform unless a display is set): processor
  use of the whole process over a steady window after start-up, its resident memory and threads.

    python benchmarks/app_cpu.py --seconds 30
    python benchmarks/app_cpu.py --clip my_clip.mp4 --seconds 60

Prints one line per measurement and the ratio app / pipeline (100% of one core = 1.00 core).

``--frames N`` measures the other way (issue 21): processor seconds (user + system, the whole process and its
children) per frame of ``fer-app --screenshot s.png --quit-after-frames N`` (playing at the clip's rate, as the
live view does) against ``fer-run --max-frames N``, in pairs run back to back (the machine may be shared), with
the median ratio; no psutil needed::

    python benchmarks/app_cpu.py --frames 400 --pairs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core.synthetic import face_photos, synthetic_clip  # noqa: E402
from fer_core.video_writer import VideoWriter  # noqa: E402


def write_clip(path: Path, seconds: float, fps: float, size: tuple[int, int] = (640, 360)) -> int:
    """A clip of one face drifting in a loop of 4 s, repeated to ``seconds``; returns its frame count."""
    loop = synthetic_clip(1, size, n_frames=int(4 * fps), photos=face_photos()[:1])
    n = int(seconds * fps)
    writer = VideoWriter(path, fps)
    for i in range(n):
        writer.write(loop[i % len(loop)])
    writer.close()
    return n


def cpu_seconds(proc) -> float:
    """User + system processor time of a process and its children so far."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def child_cpu(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """User + system seconds of one command run to its end (and of its children)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_pipeline(clip: Path, frames: int) -> float:
    """Processor seconds of ``fer-run`` on the first ``frames`` frames of ``clip`` (no outputs)."""
    return child_cpu([sys.executable, "-m", "fer_core.cli_run", "--source", str(clip), "--max-frames", str(frames)])


def run_app_frames(clip: Path, frames: int, screenshot: Path) -> float:
    """Processor seconds of ``fer-app --screenshot`` showing the first ``frames`` frames of ``clip`` (paced)."""
    env = dict(os.environ)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env["QT_QPA_PLATFORM"] = "offscreen"
    return child_cpu([sys.executable, "-m", "app.main", "--source", str(clip), "--screenshot", str(screenshot),
                      "--quit-after-frames", str(frames), "--size", "1360x860"], env)


def per_frame_pairs(clip: Path, frames: int, pairs: int, tmp: Path) -> float:
    """Print app / pipeline processor ms per frame for each back-to-back pair; returns the median ratio."""
    ratios = []
    for i in range(pairs):
        app_s, run_s = run_app_frames(clip, frames, tmp / "shot.png"), run_pipeline(clip, frames)
        ratios.append(app_s / run_s)
        print(f"pair {i + 1}: fer-app {1000 * app_s / frames:.1f} ms/frame, fer-run {1000 * run_s / frames:.1f} "
              f"ms/frame -> {ratios[-1]:.2f}x (load {os.getloadavg()[0]:.1f})", flush=True)
    ratios.sort()
    median = ratios[len(ratios) // 2]
    print(f"median {median:.2f}x over {pairs} pair(s) of {frames} frames")
    return median


def run_app(clip: Path, settle_s: float, window_s: float) -> dict[str, float]:
    """``fer-app`` playing ``clip`` at its frame rate: processor use, memory and threads over a steady window."""
    env = dict(os.environ)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env["QT_QPA_PLATFORM"] = "offscreen"
    cmd = [sys.executable, "-m", "app.main", "--source", str(clip), "--size", "1360x860"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import psutil

    ps = psutil.Process(proc.pid)
    try:
        time.sleep(settle_s)
        if proc.poll() is not None:
            raise SystemExit(f"fer-app exited early: {proc.stderr.read()[-2000:]}")
        c0, t0 = cpu_seconds(ps), time.perf_counter()
        rss0, threads0 = ps.memory_info().rss, ps.num_threads()
        time.sleep(window_s)
        c1, t1 = cpu_seconds(ps), time.perf_counter()
        rss1, threads1 = ps.memory_info().rss, ps.num_threads()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"cores": (c1 - c0) / (t1 - t0), "rss0_mb": rss0 / 2**20, "rss1_mb": rss1 / 2**20,
            "threads0": threads0, "threads1": threads1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the app's measured window")
    p.add_argument("--settle", type=float, default=6.0, help="seconds the app runs before measuring")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate of the written clip")
    p.add_argument("--clip", help="measure on this video instead of writing one")
    p.add_argument("--frames", type=int, help="measure processor time per frame over N frames instead (see above)")
    p.add_argument("--pairs", type=int, default=3, help="with --frames: app / fer-run pairs to run")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.frames:
            clip = Path(args.clip) if args.clip else Path(tmp) / "clip.mp4"
            if not args.clip:
                write_clip(clip, args.frames / args.fps + 2, args.fps)
            per_frame_pairs(clip, args.frames, args.pairs, Path(tmp))
            return 0
        if args.clip:
            clip = Path(args.clip)
            import cv2
            cap = cv2.VideoCapture(str(clip))
            fps = cap.get(cv2.CAP_PROP_FPS) or args.fps
            cap.release()
        else:
            clip, fps = Path(tmp) / "clip.mp4", args.fps
            write_clip(clip, args.settle + args.seconds + 10, fps)
        n = int(fps * 10)
        per_frame = (run_pipeline(clip, 2 * n) - run_pipeline(clip, n)) / n
        print(f"fer-run: {1000 * per_frame:.1f} ms of processor per frame -> {per_frame * fps:.2f} cores "
              f"at {fps:g} fps")
        app = run_app(clip, args.settle, args.seconds)
        print(f"fer-app: {app['cores']:.2f} cores playing at {fps:g} fps "
              f"({app['cores'] / (per_frame * fps):.2f}x the pipeline's need); "
              f"RSS {app['rss0_mb']:.0f} -> {app['rss1_mb']:.0f} MB, threads {app['threads0']} -> {app['threads1']} "
              f"over {args.seconds:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
