"""``fer-run``: recognise facial expressions in a camera, video, image, folder or stream, without the GUI.

Writes the annotated video (or annotated images for image sources), one CSV/JSONL row per face per
frame, and prints a short summary. Fatal problems (missing source, bad model, no camera) print one
line on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.cli import (PROVIDER_CHOICES, CliError, fraction_arg, provider_arg, run_guarded, signal_exit_status,
                          signal_name, stop_signals)
from fer_core.settings import DEFAULTS, QUALITIES, PipelineSettings
from fer_core.errors import FerError, write_error
from fer_core.video_writer import VIDEO_SUFFIXES, VideoWriter, crash_safe_suffix, describe_codec

PROG = "fer-run"

EPILOG = """examples:
  fer-run --source 0 --show                                   # webcam, live window (q or Esc quits)
  fer-run --source clip.mp4 --out annotated.mp4 --csv faces.csv
  fer-run --source clip.mp4 --out annotated.mp4 --burn-fps    # FPS and latency drawn into the video too
  fer-run --source photo.jpg --out annotated/                 # annotated image into a folder
  fer-run --source photos/ --out annotated/ --jsonl faces.jsonl
  fer-run --source rtsp://192.168.1.10:554/stream --max-frames 300 --csv faces.csv
  fer-run --source clip.mp4 --model models/emonext_tiny.onnx --provider cuda --smoothing 0
  fer-run --source group.mp4 --small-faces --out annotated.mp4  # faces far from the camera (slower)

The --show window always shows the FPS and latency; files written with --out get them only with --burn-fps.
Without --model the shipped default model in models/ is used (or the file named by $FER_MODEL).
CSV/JSONL columns: frame, time_ms, track_id, x, y, w, h, label, score, p_<class> for every class.
"""


def smoothing_arg(text: str) -> float:
    """argparse type for ``--smoothing``: a number in [0, 1)."""
    value = fraction_arg(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError("smoothing must be below 1 (1 would freeze the probabilities)")
    return value


def settings_from_args(args: argparse.Namespace) -> PipelineSettings:
    """The :class:`PipelineSettings` of ``fer-run``'s processing options."""
    return PipelineSettings(min_confidence=args.min_confidence, smoothing=args.smoothing, small_faces=args.small_faces,
                            align=not args.no_align, uncertain_below=args.uncertain_below, quality=args.quality)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Recognise facial expressions in a camera, video, image, folder or stream (no GUI).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True,
                   help="camera index (0), video file, image file, folder of images, or rtsp:// / http(s):// URL")
    p.add_argument("--model", help="ONNX emotion model (default: the shipped default model in models/)")
    p.add_argument("--out", help="annotated output: a video file (.mp4: H.264, plays after a crash too; .mkv, "
                                 ".avi) or a folder (<name>_annotated.mp4) for video, camera and stream "
                                 "sources; a folder (or an image file for a single image) for image sources")
    rec = p.add_mutually_exclusive_group()
    rec.add_argument("--csv", help="write one row per face per frame to this CSV file")
    rec.add_argument("--jsonl", help="write one JSON object per face per frame to this file")
    p.add_argument("--show", action="store_true",
                   help="show the annotated frames, with FPS and latency, in a window (q or Esc quits); a video "
                        "file plays at its own speed")
    p.add_argument("--no-pace", action="store_true",
                   help="with --show: process a video file as fast as possible instead of at its frame rate")
    p.add_argument("--burn-fps", action="store_true",
                   help="also draw the FPS and latency into the --out video or images (off by default: the "
                        "files show only the faces)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--provider", type=provider_arg, default="auto",
                   help=f"ONNX Runtime execution provider: {', '.join(PROVIDER_CHOICES)} (default: auto)")
    p.add_argument("--face-model", help="MediaPipe BlazeFace .tflite (default: $FER_FACE_MODEL, the user cache, "
                                        "or a one-time download; OpenCV's Haar cascade when none is available)")
    p.add_argument("--min-confidence", type=fraction_arg, default=DEFAULTS.min_confidence,
                   help=f"minimum face detection score ({DEFAULTS.min_confidence})")
    p.add_argument("--smoothing", type=smoothing_arg, default=DEFAULTS.smoothing,
                   help=f"per-face temporal smoothing of the probabilities, 0 = off ({DEFAULTS.smoothing})")
    p.add_argument("--uncertain-below", type=fraction_arg, default=DEFAULTS.uncertain_below,
                   help="mark a face uncertain when its top probability is below this "
                        f"({DEFAULTS.uncertain_below}; the `uncertain` column)")
    p.add_argument("--quality", choices=QUALITIES, default=DEFAULTS.quality,
                   help=f"speed / accuracy: {', '.join(QUALITIES)} (default: {DEFAULTS.quality}; see the README)")
    p.add_argument("--no-align", action="store_true",
                   help="do not turn tilted faces upright (by the eye keypoints) before classifying them")
    p.add_argument("--small-faces", action="store_true",
                   help="also search four overlapping tiles of each frame for small (far) faces; about five "
                        "times the detection time")
    return p


# --------------------------------------------------------------------------- outputs


class AnnotatedOutput:
    """Writes annotated frames: a video file, or images into a folder (image sources)."""

    def __init__(self, out: str | None, source: Any) -> None:
        from fer_core.sources import ImageSource

        self.video_path: Path | None = None
        self.folder: Path | None = None
        self.image_path: Path | None = None
        self.written = 0
        self.codec: str | None = None  # the video's, once it is closed
        self._writer = None
        self._fps = source.fps
        self._image_source = isinstance(source, ImageSource)
        if out is None:
            return
        path = Path(out).expanduser()
        suffix = path.suffix.lower()
        if self._image_source:
            if suffix in VIDEO_SUFFIXES:
                raise CliError(f"--out {out}: image sources give annotated images; pass a folder instead")
            if suffix and len(source.paths) == 1:
                self.image_path = path
            else:
                self.folder = path
                src_dir = Path(source.paths[0]).parent.resolve()
                if path.exists() and path.resolve() == src_dir:
                    raise CliError(f"--out {out} is the source folder; choose another folder so the originals "
                                   "are not overwritten")
        elif suffix in VIDEO_SUFFIXES:
            self.video_path = path
        elif suffix:
            raise CliError(f"--out {out}: unsupported video type '{suffix}'; use one of {', '.join(VIDEO_SUFFIXES)} "
                           "or a folder")
        else:
            stem = "camera" if source.is_live else Path(source.name).stem
            self.video_path = path / f"{_safe(stem)}_annotated{crash_safe_suffix()}"  # playable after a crash

    @property
    def target(self) -> Path | None:
        """Where the output goes (file or folder), ``None`` when nothing is written."""
        return self.video_path or self.image_path or self.folder

    def write(self, frame: np.ndarray, source: Any) -> None:
        import cv2

        if self.video_path is not None:
            if self._writer is None:
                self._writer = VideoWriter(self.video_path, self._fps)
            self._writer.write(frame)
        elif self.image_path is not None or self.folder is not None:
            path = self.image_path or self.folder / Path(source.last_path).name
            path.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(path.suffix or ".png", frame)
            if not ok:
                raise CliError(f"cannot encode image {path} (unsupported image type '{path.suffix}')")
            try:
                with open(path, "wb") as f:
                    f.write(data.tobytes())
            except OSError as exc:
                raise write_error(path, exc) from exc
        else:
            return
        self.written += 1

    def close(self) -> None:
        """Finish the video; ``VideoWriteError`` (once) when it is incomplete."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self.codec = writer.codec
            writer.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "output"


class Window:
    """Optional live preview with ``cv2.imshow``; disables itself when there is no display."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.quit = False
        if enabled and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                 or os.environ.get("WAYLAND_DISPLAY")):
            print(f"{PROG}: warning: no display available, --show ignored", file=sys.stderr)
            self.enabled = False

    def show(self, frame: np.ndarray) -> None:
        import cv2

        if not self.enabled:
            return
        try:
            cv2.imshow(PROG, frame)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                self.quit = True
        except cv2.error as exc:
            print(f"{PROG}: warning: cannot open a window ({str(exc).strip().splitlines()[-1]}), --show ignored",
                  file=sys.stderr)
            self.enabled = False

    def close(self) -> None:
        if self.enabled:
            import cv2

            cv2.destroyAllWindows()


# --------------------------------------------------------------------------- main loop


def run(args: argparse.Namespace) -> int:
    """Process the source; returns the exit status."""
    from tqdm import tqdm

    from fer_core.api import EmotionRecognizer
    from fer_core.draw import draw_results
    from fer_core.records import FaceRecordWriter
    from fer_core.sources import ImageSource, open_source

    if args.max_frames is not None and args.max_frames < 1:
        raise CliError("--max-frames must be at least 1")
    model_path = args.model
    if model_path is None:
        from fer_core.model_zoo import default_model_path

        model_path = default_model_path()
    elif not Path(model_path).is_file():
        raise CliError(f"model file not found: {model_path}")

    source = open_source(args.source)
    stack: list[Any] = [source]
    try:
        pipe = EmotionRecognizer(model_path, settings_from_args(args), provider=args.provider,
                                 face_model=args.face_model,
                                 running_mode="image" if isinstance(source, ImageSource) else "video")
        stack.append(pipe)
        output = AnnotatedOutput(args.out, source)
        stack.append(output)
        record_path = args.csv or args.jsonl
        records = None
        if record_path:
            records = FaceRecordWriter(record_path, pipe.labels, with_source=isinstance(source, ImageSource))
            stack.append(records)
        window = Window(args.show)
        stack.append(window)
        with stop_signals() as stops:
            return _loop(args, source, pipe, output, records, window, tqdm, draw_results, stops)
    finally:
        for obj in reversed(stack):
            try:
                obj.close()
            except FerError as exc:  # an output that fails while another error is on its way: say so, close the rest
                print(f"{PROG}: error: {exc}", file=sys.stderr)


def _loop(args: argparse.Namespace, source: Any, pipe: Any, output: AnnotatedOutput, records: Any,
          window: Window, tqdm: Any, draw_results: Any, stops: list[int] | None = None) -> int:
    from fer_core.pacing import Pacer
    from fer_core.pipeline import STAGES
    from fer_core.sources import ImageSource

    # a window plays a file as a player would; files and records alone are written as fast as they can be
    pacer = Pacer() if (window.enabled and not args.no_pace and not source.is_live
                        and not isinstance(source, ImageSource)) else None
    total = source.frame_count
    if total is not None and args.max_frames is not None:
        total = min(total, args.max_frames)
    # disable=None: no bar when stderr is not a terminal (a log file, a pipe), where its updates would pile up
    bar = tqdm(total=total, unit="frame", desc=PROG, disable=True if source.is_live else None, leave=False)
    timings: dict[str, list[float]] = {stage: [] for stage in STAGES}
    n_frames = n_faces = 0
    fps_ema: float | None = None
    start = last = time.perf_counter()
    interrupted = 0  # the signal that stopped the run
    try:
        for item in pipe.stream(source):  # photos of a folder are independent: no tracking across them
            idx, t_ms, frame, result = item.index, item.time_ms, item.image, item.result
            n_frames += 1
            n_faces += len(result.faces)
            for key, values in timings.items():
                values.append(float(result.timings.get(key, float("nan"))))
            if records is not None:
                records.write(idx, t_ms, result.faces, source=item.source or "")
            now = time.perf_counter()
            dt = now - last
            last = now
            if dt > 0:
                fps_ema = 1.0 / dt if fps_ema is None else 0.9 * fps_ema + 0.1 / dt
            with_hud = None  # drawn once for both the window and a --burn-fps file
            if window.enabled or (output.target is not None and args.burn_fps):
                with_hud = draw_results(frame, result, pipe.labels, fps=fps_ema, latency_ms=result.timings.get("total"))
            if output.target is not None:
                output.write(with_hud if args.burn_fps else draw_results(frame, result, pipe.labels), source)
            if window.enabled:
                if pacer is not None:
                    pacer.wait(t_ms)
                window.show(with_hud)
            bar.update(1)
            if stops:
                interrupted = stops[0]
                break
            if window.quit or (args.max_frames is not None and n_frames >= args.max_frames):
                break
    except KeyboardInterrupt as exc:
        interrupted = getattr(exc, "signum", signal.SIGINT)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    failed = _finish_outputs(output, records)  # before the summary, which names only what was written
    _print_summary(source, pipe, n_frames, n_faces, elapsed, timings, output, records, bool(interrupted), failed)
    for message in failed.values():
        print(f"{PROG}: error: {message}", file=sys.stderr)
    if failed:
        return 2
    if interrupted:
        print(f"{PROG}: stopped by {signal_name(interrupted)}; the outputs hold the {n_frames} frames processed",
              file=sys.stderr)
        return signal_exit_status(interrupted)
    if source.error:
        print(f"{PROG}: error: {source.error}", file=sys.stderr)
        return 1
    if n_frames == 0:
        print(f"{PROG}: error: {source.name}: no frames were read", file=sys.stderr)
        return 1
    return 0


def _finish_outputs(output: AnnotatedOutput, records: Any) -> dict[str, str]:
    """Close the video and the records; the error message of each that failed (keys ``"video"``, ``"records"``)."""
    failed = {}
    for key, obj in (("video", output), ("records", records)):
        try:
            if obj is not None:
                obj.close()
        except FerError as exc:
            failed[key] = str(exc)
    return failed


def _print_summary(source: Any, pipe: Any, n_frames: int, n_faces: int, elapsed: float,
                   timings: dict[str, list[float]], output: AnnotatedOutput, records: Any,
                   interrupted: bool, failed: dict[str, str] | None = None) -> None:
    stages = ", ".join(f"{k} {np.nanmedian(v):.1f}" for k, v in timings.items() if v and not np.all(np.isnan(v)))
    fps = n_frames / elapsed if elapsed > 0 else 0.0
    print(f"{source.name}: {n_frames} frames, {n_faces} faces in {elapsed:.1f} s ({fps:.1f} frames/s overall)"
          + (" [interrupted]" if interrupted else ""))
    if stages:
        print(f"  median ms per frame: {stages}  [{Path(str(pipe.model_path)).name} on {pipe.provider}, "
              f"detector {pipe.detector_backend}]")
    failed = failed or {}
    if output.target is not None and "video" not in failed:
        codec = f", {describe_codec(output.codec)}" if output.codec else ""
        print(f"  annotated {'video' if output.video_path else 'images'}: {output.target} ({output.written} "
              f"frames{codec})")
    if records is not None and "records" not in failed:
        print(f"  records: {records.path} ({records.rows} rows)")
    skipped = getattr(source, "skipped", [])
    if skipped:
        print(f"  skipped {len(skipped)} unreadable or damaged image(s), e.g. {skipped[0]}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer-run``; returns the exit status (0 ok, 1 source stopped/empty, 2 fatal error)."""
    return run_guarded(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
