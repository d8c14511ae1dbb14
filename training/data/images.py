"""Decoding images (files or CSV pixel strings) into cached uint8 arrays, in parallel with a progress bar."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from fer_core.preprocess import prepare_gray
from fer_core.sources import read_image as _read
from training.progress import progress_bar

CHUNK = 256


def read_image(path: str) -> np.ndarray | None:
    """An image file as stored (:func:`fer_core.sources.read_image` with ``unchanged=True``); ``None`` when
    missing or unreadable."""
    return _read(path, unchanged=True)


def parse_pixels(text: str) -> np.ndarray | None:
    """Parse a FER2013 CSV pixel string (space-separated 0..255, a square count) into a uint8 image.

    Returns:
        (side, side) uint8, or ``None`` when the string is not a valid square grey image.
    """
    with warnings.catch_warnings():  # older numpy warns and returns a partial parse; newer numpy raises
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    side = math.isqrt(values.size)
    if values.size == 0 or side * side != values.size or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8).reshape(side, side)


def decode_all(
    sources: Sequence[str],
    read: Callable[[str], np.ndarray | None],
    size: int,
    equalize: bool,
    progress: bool = True,
    desc: str = "decode",
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read and ``prepare_gray`` every source in a thread pool (cv2 releases the GIL).

    Args:
        sources: file paths or pixel strings, passed to ``read``.
        read: returns the raw image, or ``None`` when it cannot be read.
        size: side length of the output images.
        equalize: histogram equalisation (``prepare_gray``).
        progress: show a progress bar (on a terminal only, :mod:`training.progress`).
        desc: bar label.
        workers: thread count (default: CPU count, at most 8).

    Returns:
        ``(images, ok)``: uint8 (N, size, size) (zeros where unreadable) and a bool (N,) mask.
    """
    n = len(sources)
    images = np.zeros((n, size, size), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)

    def work(start: int) -> int:
        stop = min(start + CHUNK, n)
        for i in range(start, stop):
            raw = read(sources[i])
            if raw is None:
                continue
            try:
                images[i] = prepare_gray(raw, native_size=size, equalize=equalize)
            except (ValueError, cv2.error):
                continue
            ok[i] = True
        return stop - start

    workers = workers or min(8, os.cpu_count() or 1)
    with progress_bar(n, desc, progress, unit="img") as bar:
        if workers <= 1:
            for start in range(0, n, CHUNK):
                bar.update(work(start))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for done in pool.map(work, range(0, n, CHUNK)):
                    bar.update(done)
    return images, ok
