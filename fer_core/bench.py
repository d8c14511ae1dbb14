"""Speed benchmarks of the inference pipeline and of the classifier alone.

- :func:`run_benchmark`: for each model x provider x face count, warm up, then time
  ``Pipeline.process`` on the frames of a clip (a video, or the built-in synthetic clip made from
  real face photos). Reports median/p90/p95/p99 latency per stage (detect, preprocess, inference,
  total), frames/s and faces/s.
- :func:`run_classifier_benchmark`: ``EmotionClassifier.predict_batch`` throughput at a fixed batch
  size on real face crops (the GPU target: faces/s at batch 32).

Both take ``progress_cb(done, total)`` and ``cancel_cb() -> bool`` so the desktop app can run them
in a worker thread, show progress and stop them. A provider that is not available gives a row
with ``status="skipped"`` and the reason, not an exception.
"""

from __future__ import annotations

import csv
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


def _base_row(model_path: str | Path, provider: str) -> dict[str, Any]:
    return {"model": Path(model_path).stem, "model_path": str(model_path), "provider": provider,
            "provider_used": None, "status": "ok", "reason": ""}


class _Loop:
    """Runs warmup then measured iterations by count or by duration, honouring cancellation."""

    def __init__(self, warmup: int, repeats: int, duration_s: float | None, progress: _Progress) -> None:
        self.warmup, self.repeats, self.duration_s, self.progress = warmup, repeats, duration_s, progress

    @property
    def steps(self) -> int:
        """Progress steps this loop reports in total."""
        return self.warmup + (100 if self.duration_s else self.repeats)

    def run(self, fn: Callable[[int], None]) -> tuple[int, float, bool]:
        """Call ``fn(i)`` for warmup, then measured iterations. Returns (measured, wall seconds, cancelled)."""
        for i in range(self.warmup):
            if self.progress.cancelled():
                return 0, 0.0, True
            fn(i)
            self.progress.step()
        measured, reported = 0, 0
        start = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - start
            if self.duration_s:
                if elapsed >= self.duration_s:
                    break
                pct = int(100 * elapsed / self.duration_s)
                self.progress.step(pct - reported)
                reported = pct
            elif measured >= self.repeats:
                break
            if self.progress.cancelled():
                return measured, time.perf_counter() - start, True
            fn(self.warmup + measured)
            measured += 1
            if not self.duration_s:
                self.progress.step()
        self.progress.step(100 - reported if self.duration_s else 0)
        return measured, time.perf_counter() - start, False


# --------------------------------------------------------------------------- pipeline benchmark


def run_benchmark(
    model_paths: Sequence[str | Path],
    providers: Sequence[str] = ("cpu",),
    face_counts: Sequence[int] = (1,),
    source: str | Path | None = None,
    warmup: int = 10,
    repeats: int = 100,
    duration_s: float | None = None,
    progress_cb: ProgressCb = None,
    cancel_cb: CancelCb = None,
    face_model: str | Path | None = None,
    frame_size: tuple[int, int] = (640, 480),
    n_frames: int = 30,
    small_faces: bool = False,
) -> list[dict[str, Any]]:
    """Time ``Pipeline.process`` for each model x provider x face count.

    Args:
        model_paths: ONNX classifier files.
        providers: short provider names (``auto``, ``cpu``, ``cuda``, ``tensorrt``, ...).
        face_counts: faces per frame of the synthetic clip; ignored when ``source`` is given.
        source: a video/image/folder to use instead of the synthetic clip (up to 120 frames).
        warmup: untimed iterations first.
        repeats: timed iterations (frames), cycling through the clip.
        duration_s: time each configuration for this many seconds instead of ``repeats``.
        progress_cb: ``progress_cb(done, total)`` after every iteration.
        cancel_cb: polled every iteration; when it returns True, stop and return what was measured
            (the interrupted row gets ``status="cancelled"``).
        face_model: face detector model path (default: the usual lookup, see ``face_model.py``).
        frame_size: synthetic clip (width, height).
        n_frames: synthetic clip length.
        small_faces: time the detector's tiled search for small faces too (see ``FaceDetector``).

    Returns:
        One dict per configuration: ``model, model_path, provider, provider_used, faces,
        faces_detected, detector, status (ok|skipped|error|cancelled), reason, frames, seconds,
        fps, faces_per_s`` and ``<stage>_median_ms / _p90_ms / _p95_ms / _p99_ms / _mean_ms`` for every stage.
    """
    from fer_core.api import EmotionRecognizer

    clips: dict[Any, list[np.ndarray]] = {}
    counts: list[int | None] = [None] if source is not None else [int(n) for n in face_counts]
    configs = [(m, p, n) for m in model_paths for p in providers for n in counts]
    loop = _Loop(max(0, warmup), max(1, repeats), duration_s, _Progress(0, progress_cb, cancel_cb))
    loop.progress.total = len(configs) * loop.steps
    rows: list[dict[str, Any]] = []
    for model_path, provider, n_faces in configs:
        row = _base_row(model_path, provider)
        row.update(faces=n_faces if n_faces is not None else "source", source=str(source) if source else "synthetic")
        rows.append(row)
        if _provider_problem(provider) is None and n_faces not in clips:
            clips[n_faces] = (load_source(source) if source is not None
                              else (synthetic_clip(n_faces, size=frame_size, n_frames=n_frames), False))
        pipe = _open(row, provider, loop, lambda m=model_path, p=provider: EmotionRecognizer(
            model=m, provider=p, face_model=face_model, small_faces=small_faces))
        if pipe is None:
            continue
        frames, still = clips[n_faces]
        with pipe:
            row["detector"] = pipe.detector_backend
            samples: dict[str, list[float]] = {s: [] for s in STAGES}
            faces_seen: list[int] = []

            def one(i: int, _frames: list[np.ndarray] = frames, _still: bool = still) -> None:
                result = pipe.process(_frames[i % len(_frames)], still=_still)
                if i >= loop.warmup:
                    for stage in STAGES:
                        samples[stage].append(float(result.timings.get(stage, math.nan)))
                    faces_seen.append(len(result.faces))

            measured, seconds, cancelled = loop.run(one)
        _fill_pipeline_row(row, samples, faces_seen, measured, seconds)
        if cancelled:
            row.update(status="cancelled", reason="cancelled by the user")
            if measured == 0:
                rows.pop()
            break
    return rows


def _fill_pipeline_row(row: dict[str, Any], samples: dict[str, list[float]], faces_seen: list[int],
                       measured: int, seconds: float) -> None:
    row.update(frames=measured, seconds=round(seconds, 3))
    row["faces_detected"] = float(np.mean(faces_seen)) if faces_seen else 0.0
    row["fps"] = measured / seconds if seconds > 0 else 0.0
    row["faces_per_s"] = sum(faces_seen) / seconds if seconds > 0 else 0.0
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
    repeats: int = 50,
    duration_s: float | None = None,
    progress_cb: ProgressCb = None,
    cancel_cb: CancelCb = None,
) -> list[dict[str, Any]]:
    """Time ``EmotionClassifier.predict_batch`` on a preprocessed batch of real faces.

    Returns:
        One dict per model x provider: ``model, model_path, provider, provider_used, batch, status,
        reason, batches, seconds, faces_per_s, input_size`` and ``batch_median_ms / _p90_ms / _p95_ms / _p99_ms
        / _mean_ms`` plus ``preprocess_ms`` (one-off preprocessing of the batch, not in faces/s).
    """
    from fer_core.session import EmotionClassifier

    configs = [(m, p) for m in model_paths for p in providers]
    loop = _Loop(max(0, warmup), max(1, repeats), duration_s, _Progress(0, progress_cb, cancel_cb))
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

        def one(i: int) -> None:
            t = time.perf_counter()
            clf.predict_batch(inputs)
            if i >= loop.warmup:
                samples.append((time.perf_counter() - t) * 1000.0)

        measured, seconds, cancelled = loop.run(one)
        row.update(batches=measured, seconds=round(seconds, 3),
                   faces_per_s=measured * batch / seconds if seconds > 0 else 0.0)
        for key, value in latency_stats(samples).items():
            row[f"batch_{key}_ms"] = value
        if cancelled:
            row.update(status="cancelled", reason="cancelled by the user")
            if measured == 0:
                rows.pop()
            break
    return rows
