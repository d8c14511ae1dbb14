"""Speed benchmarks of the inference pipeline and of the classifier alone.

- :func:`run_benchmark`: for each model x provider x face count, warm up, then time
  ``Pipeline.process`` on the frames of a clip (a video, or the built-in synthetic clip made from
  real face photos) in several repeats. Reports frames/s and faces/s (the median of the repeats and
  their range), the faces found per frame, and median/p90/p95/p99 latency per stage (detect,
  preprocess, inference, total; pooled over the repeats).
- :func:`run_classifier_benchmark`: ``EmotionClassifier.predict_batch`` throughput at a fixed batch
  size on real face crops (the GPU target: faces/s at batch 32), in repeats too.

Identical runs vary: on a machine with few cores, whatever else runs takes cores from ONNX Runtime's
and MediaPipe's threads. The median of the repeats, with their range beside it, shows how much.

Both take ``progress_cb(done, total)`` and ``cancel_cb() -> bool`` so the desktop app can run them
in a worker thread, show progress and stop them. A provider that is not available gives a row
with ``status="skipped"`` and the reason, not an exception.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_core.pipeline import STAGES
from fer_core.synthetic import face_batch, synthetic_clip

MAX_SOURCE_FRAMES = 120  # frames read from a --source video (kept in memory)
PROGRESS_STEPS = 100  # progress steps of one timed repeat when timing by duration

ProgressCb = Callable[[int, int], None] | None
CancelCb = Callable[[], bool] | None


def load_source(source: str | Path, max_frames: int = MAX_SOURCE_FRAMES) -> tuple[list[np.ndarray], bool]:
    """(frames, still): up to ``max_frames`` frames of a file source, and whether they are independent photos."""
    from fer_core.sources import ImageSource, SourceError, open_source

    frames = []
    with open_source(str(source)) as src:
        still = isinstance(src, ImageSource)
        if src.is_live:
            raise SourceError(f"{src.name}: benchmarks need a file source (video, image or folder), not a live one")
        for _, _, frame in src:
            frames.append(frame)
            if len(frames) >= max_frames:
                break
        if not frames:
            raise SourceError(f"{src.name}: no frames could be read")
    return frames, still


# --------------------------------------------------------------------------- statistics


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """Median, p90, p95, p99 and mean of latency samples (ms); NaN when there are none."""
    if len(samples_ms) == 0:
        return {"median": math.nan, "p90": math.nan, "p95": math.nan, "p99": math.nan, "mean": math.nan}
    a = np.asarray(samples_ms, dtype=np.float64)
    p90, p95, p99 = (float(v) for v in np.percentile(a, [90, 95, 99]))
    return {"median": float(np.median(a)), "p90": p90, "p95": p95, "p99": p99, "mean": float(a.mean())}


def rate_text(row: dict[str, Any], key: str = "fps", dash: str = "-") -> str:
    """A rate of a result row as ``"142 (135-150)"``: the median of the repeats and their range; ``"-"`` if none."""
    values = [row.get(k) for k in (key, f"{key}_min", f"{key}_max")]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return "-"
    mid, low, high = (f"{v:.0f}" if v >= 100 else f"{v:.1f}" for v in values)
    return f"{mid} ({low}{dash}{high})"


def _rates(parts: Sequence[tuple[int, float]], per: float = 1.0) -> dict[str, float]:
    """Median, min and max over the repeats ``(calls, seconds)`` of calls x ``per`` per second (0 without any)."""
    rates = [n * per / t for n, t in parts if t > 0] or [0.0]
    return {"": float(np.median(rates)), "_min": min(rates), "_max": max(rates)}


def system_info() -> dict[str, Any]:
    """Machine and library versions, stored next to benchmark results."""
    import os

    import onnxruntime as ort

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "onnxruntime": ort.__version__,
            "opencv": cv2.__version__, "onnxruntime_providers": ort.get_available_providers()}
    try:
        import mediapipe

        info["mediapipe"] = mediapipe.__version__
    except ImportError:
        pass
    return info


# --------------------------------------------------------------------------- helpers


class _Progress:
    """Counts steps, forwards them to ``progress_cb`` and asks ``cancel_cb``."""

    def __init__(self, total: int, progress_cb: ProgressCb, cancel_cb: CancelCb) -> None:
        self.total, self.done = total, 0
        self.progress_cb, self.cancel_cb = progress_cb, cancel_cb

    def step(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.progress_cb is not None:
            self.progress_cb(self.done, self.total)

    def cancelled(self) -> bool:
        return bool(self.cancel_cb is not None and self.cancel_cb())


def _provider_problem(provider: str) -> str | None:
    """Why a requested provider cannot be used here, or ``None`` when it can."""
    from fer_core.session import ProviderError, resolve_providers

    try:
        resolve_providers(provider)
    except ProviderError as exc:
        return str(exc)
    return None


def _fell_back(provider: str, used: str) -> str | None:
    """A reason when a session asked for ``provider`` but runs on something else (e.g. CUDA without a GPU)."""
    name = provider.strip().lower()
    if name in ("auto", "cpu"):
        return None
    if name not in used.lower():
        return f"provider '{name}' could not start a session here (ran on {used} instead); no device?"
    return None


def _open(row: dict[str, Any], provider: str, loop: "_Loop", create: Callable[[], Any]) -> Any:
    """Create one configuration's pipeline or classifier, or mark its row skipped (provider missing, or ONNX
    Runtime fell back to another one) or failed (a bad model): one of them must not end the whole benchmark.
    Returns the object, or ``None`` after advancing the progress past the configuration."""
    from fer_core.session import ProviderError

    obj, problem = None, _provider_problem(provider)
    if problem is None:
        try:
            obj = create()
        except Exception as exc:  # noqa: BLE001 - reported in the row
            row.update(status="skipped" if isinstance(exc, ProviderError) else "error", reason=str(exc))
            loop.progress.step(loop.steps)
            return None
        row["provider_used"] = obj.provider
        problem = _fell_back(provider, obj.provider)
        if problem and hasattr(obj, "close"):
            obj.close()
    if problem:
        row.update(status="skipped", reason=problem)
        loop.progress.step(loop.steps)
        return None
    return obj


def _stop(rows: list[dict[str, Any]], cancelled: bool, parts: list[tuple[int, float]]) -> bool:
    """After a configuration: when it was cancelled, mark its row (the last one; dropped if nothing was timed)."""
    if cancelled:
        rows[-1].update(status="cancelled", reason="cancelled by the user")
        if not parts:
            rows.pop()
    return cancelled


def _base_row(model_path: str | Path, provider: str) -> dict[str, Any]:
    return {"model": Path(model_path).stem, "model_path": str(model_path), "provider": provider,
            "provider_used": None, "status": "ok", "reason": ""}


class _Loop:
    """Untimed warm-up calls, then ``repeats`` timed repeats of ``iterations`` calls each (or of ``duration_s /
    repeats`` seconds each), honouring cancellation."""

    def __init__(self, warmup: int, iterations: int, repeats: int, duration_s: float | None,
                 progress: _Progress) -> None:
        self.warmup, self.iterations, self.repeats = max(0, warmup), max(1, iterations), max(1, repeats)
        self.duration_s, self.progress = duration_s, progress

    @property
    def steps(self) -> int:
        """Progress steps this loop reports in total."""
        return self.warmup + self.repeats * (PROGRESS_STEPS if self.duration_s else self.iterations)

    def run(self, fn: Callable[[bool], None]) -> tuple[list[tuple[int, float]], bool]:
        """Call ``fn(timed)``: ``timed`` is False in the warm-up.

        Returns:
            ``(calls, seconds)`` of each timed repeat that made at least one call, and whether it was cancelled.
        """
        for _ in range(self.warmup):
            if self.progress.cancelled():
                return [], True
            fn(False)
            self.progress.step()
        parts = []
        for _ in range(self.repeats):
            calls, seconds, cancelled = self._repeat(fn)
            if calls:
                parts.append((calls, seconds))
            if cancelled:
                return parts, True
        return parts, False

    def _repeat(self, fn: Callable[[bool], None]) -> tuple[int, float, bool]:
        """One timed repeat: (calls, seconds spent in them, cancelled); progress reporting is not timed."""
        limit = self.duration_s / self.repeats if self.duration_s else None
        calls, reported, busy = 0, 0, 0.0
        start = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - start
            if limit:
                if elapsed >= limit:
                    break
                pct = int(PROGRESS_STEPS * elapsed / limit)
                self.progress.step(pct - reported)
                reported = pct
            elif calls >= self.iterations:
                break
            if self.progress.cancelled():
                return calls, busy, True
            t0 = time.perf_counter()
            fn(True)
            busy += time.perf_counter() - t0
            calls += 1
            if not limit:
                self.progress.step()
        self.progress.step(PROGRESS_STEPS - reported if limit else 0)
        return calls, busy, False


# --------------------------------------------------------------------------- pipeline benchmark


def run_benchmark(
    model_paths: Sequence[str | Path],
    providers: Sequence[str] = ("cpu",),
    face_counts: Sequence[int] = (1,),
    source: str | Path | None = None,
    warmup: int = 10,
    iterations: int = 100,
    repeats: int = 3,
    duration_s: float | None = None,
    progress_cb: ProgressCb = None,
    cancel_cb: CancelCb = None,
    face_model: str | Path | None = None,
    frame_size: tuple[int, int] = (640, 480),
    n_frames: int = 30,
    small_faces: bool = False,
    qualities: Sequence[str] = ("best",),
) -> list[dict[str, Any]]:
    """Time ``Pipeline.process`` for each model x provider x quality x face count, in ``repeats`` timed repeats.

    Args:
        model_paths: ONNX classifier files.
        providers: short provider names (``auto``, ``cpu``, ``cuda``, ``tensorrt``, ...).
        face_counts: faces per frame of the synthetic clip; ignored when ``source`` is given.
        source: a video/image/folder to use instead of the synthetic clip (up to 120 frames).
        warmup: untimed frames first, once per configuration.
        iterations: timed frames in each repeat, cycling through the clip.
        repeats: timed repeats per configuration; frames/s is the median of theirs.
        duration_s: time each configuration for this many seconds in all (``duration_s / repeats`` per
            repeat) instead of ``iterations`` frames per repeat.
        progress_cb: ``progress_cb(done, total)`` after every iteration.
        cancel_cb: polled every iteration; when it returns True, stop and return what was measured
            (the interrupted row gets ``status="cancelled"``).
        face_model: face detector model path (default: the usual lookup, see ``face_model.py``).
        frame_size: synthetic clip (width, height).
        n_frames: synthetic clip length.
        small_faces: time the detector's tiled search for small faces too (see ``FaceDetector``). Photos (an image
            or a folder as ``source``) are always searched so, and read as the API reads them (``still``).
        qualities: the :data:`fer_core.settings.QUALITIES` to time, one row each.

    Returns:
        One dict per configuration: ``model, model_path, provider, provider_used, quality, faces, faces_found (mean
        per timed frame), faces_read (of those, the mean read in their frame: below faces_found when the quality
        reads faces in turn; faces_per_s counts the faces read), detector, status (ok|skipped|error|cancelled),
        reason (also notes faces not found), repeats, frames, seconds, fps, fps_min, fps_max, faces_per_s,
        faces_per_s_min, faces_per_s_max`` and ``<stage>_median_ms / _p90_ms / _p95_ms / _p99_ms / _mean_ms`` for
        every stage (over all repeats).
    """
    from fer_core.api import EmotionRecognizer

    clips: dict[Any, list[np.ndarray]] = {}
    counts: list[int | None] = [None] if source is not None else [int(n) for n in face_counts]
    configs = [(m, p, q, n) for m in model_paths for p in providers for q in qualities for n in counts]
    loop = _Loop(warmup, iterations, repeats, duration_s, _Progress(0, progress_cb, cancel_cb))
    loop.progress.total = len(configs) * loop.steps
    rows: list[dict[str, Any]] = []
    for model_path, provider, quality, n_faces in configs:
        row = _base_row(model_path, provider)
        row.update(quality=quality, faces=n_faces if n_faces is not None else "source", faces_found=None,
                   source=str(source) if source else "synthetic")
        rows.append(row)
        if _provider_problem(provider) is None and n_faces not in clips:
            clips[n_faces] = (load_source(source) if source is not None
                              else (synthetic_clip(n_faces, size=frame_size, n_frames=n_frames), False))
        frames, still = clips.get(n_faces, ([], False))
        pipe = _open(row, provider, loop, lambda m=model_path, p=provider, q=quality, i=still: EmotionRecognizer(
            model=m, provider=p, face_model=face_model, small_faces=small_faces, quality=q,
            running_mode="image" if i else "video"))  # photos as fer-run and the API read them
        if pipe is None:
            continue
        with pipe:
            row["detector"] = pipe.detector_backend
            samples: dict[str, list[float]] = {s: [] for s in STAGES}
            faces_seen: list[int] = []
            faces_read: list[int] = []  # read in the frame (Face.age_ms 0); the rest show an older reading
            calls = itertools.count()

            def one(timed: bool, _frames: list[np.ndarray] = frames, _still: bool = still) -> None:
                result = pipe.process(_frames[next(calls) % len(_frames)], still=_still)
                if timed:
                    for stage in STAGES:
                        samples[stage].append(float(result.timings.get(stage, math.nan)))
                    faces_seen.append(len(result.faces))
                    faces_read.append(sum(f.age_ms == 0 for f in result.faces))

            parts, cancelled = loop.run(one)
        _fill_pipeline_row(row, samples, faces_seen, faces_read, parts)
        if n_faces is not None and parts and round(row["faces_found"], 2) < n_faces:
            row["reason"] = _missed_faces_note(row["faces_found"], n_faces, small_faces)
        if _stop(rows, cancelled, parts):
            break
    return rows


def _missed_faces_note(found: float, requested: int, small_faces: bool) -> str:
    """The row's note when fewer faces were found per frame than the clip shows."""
    note = f"only {found:.2f} of {requested} faces found per frame, so the times are for fewer faces"
    return note if small_faces else note + "; the small-faces search (--small-faces) finds smaller ones"


def _fill_pipeline_row(row: dict[str, Any], samples: dict[str, list[float]], faces_seen: list[int],
                       faces_read: list[int], parts: list[tuple[int, float]]) -> None:
    found = float(np.mean(faces_seen)) if faces_seen else 0.0
    read = float(np.mean(faces_read)) if faces_read else 0.0
    row.update(faces_found=found, faces_read=read, repeats=len(parts), frames=sum(n for n, _ in parts),
               seconds=round(sum(t for _, t in parts), 3))
    for suffix, fps in _rates(parts).items():
        row[f"fps{suffix}"], row[f"faces_per_s{suffix}"] = fps, fps * read  # faces classified per second
    for stage in STAGES:
        for key, value in latency_stats(samples[stage]).items():
            row[f"{stage}_{key}_ms"] = value


# --------------------------------------------------------------------------- results files


def _clean(value: Any) -> Any:
    """JSON-safe, readable values: NaN -> None, floats rounded to 4 decimals."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """Write ``{"system", "settings", "results"}`` to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"system": system_info(), "settings": settings, "results": rows}
    path.write_text(json.dumps(_clean(doc), indent=2) + "\n", encoding="utf-8")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write the rows as CSV, columns = union of their keys in first-seen order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(_clean(rows))


# --------------------------------------------------------------------------- classifier benchmark


def run_classifier_benchmark(
    model_paths: Sequence[str | Path],
    providers: Sequence[str] = ("cpu",),
    batch: int = 32,
    warmup: int = 5,
    iterations: int = 50,
    repeats: int = 3,
    duration_s: float | None = None,
    progress_cb: ProgressCb = None,
    cancel_cb: CancelCb = None,
) -> list[dict[str, Any]]:
    """Time ``EmotionClassifier.predict_batch`` on a preprocessed batch of real faces, in ``repeats`` repeats of
    ``iterations`` batches (or of ``duration_s / repeats`` seconds); the other arguments as in :func:`run_benchmark`.

    Returns:
        One dict per model x provider: ``model, model_path, provider, provider_used, batch, status,
        reason, repeats, batches, seconds, faces_per_s, faces_per_s_min, faces_per_s_max, input_size`` and
        ``batch_median_ms / _p90_ms / _p95_ms / _p99_ms / _mean_ms`` plus ``preprocess_ms`` (one-off preprocessing
        of the batch, not in faces/s).
    """
    from fer_core.session import EmotionClassifier

    configs = [(m, p) for m in model_paths for p in providers]
    loop = _Loop(warmup, iterations, repeats, duration_s, _Progress(0, progress_cb, cancel_cb))
    loop.progress.total = len(configs) * loop.steps
    crops = face_batch(batch)
    rows: list[dict[str, Any]] = []
    for model_path, provider in configs:
        row = _base_row(model_path, provider)
        row["batch"] = batch
        rows.append(row)
        clf = _open(row, provider, loop, lambda m=model_path, p=provider: EmotionClassifier(m, provider=p))
        if clf is None:
            continue
        row["input_size"] = clf.input_size
        t0 = time.perf_counter()
        inputs = clf.preprocess(crops)
        row["preprocess_ms"] = (time.perf_counter() - t0) * 1000.0
        samples: list[float] = []

        def one(timed: bool) -> None:
            t = time.perf_counter()
            clf.predict_batch(inputs)
            if timed:
                samples.append((time.perf_counter() - t) * 1000.0)

        parts, cancelled = loop.run(one)
        row.update(repeats=len(parts), batches=sum(n for n, _ in parts), seconds=round(sum(t for _, t in parts), 3))
        for suffix, rate in _rates(parts, per=batch).items():
            row[f"faces_per_s{suffix}"] = rate
        for key, value in latency_stats(samples).items():
            row[f"batch_{key}_ms"] = value
        if _stop(rows, cancelled, parts):
            break
    return rows
