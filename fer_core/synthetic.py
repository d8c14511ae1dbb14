"""Frames of real faces for benchmarks, tests and the demo clip: the bundled photos (``fer_core/assets``), their
variants, clips of N faces moving gently, and batches of face crops."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
CLIP_CROP = 0.65  # clip_photos: the central part of a bundled photo kept (its face is 56% of the side)
MAX_PHOTO_SIDE = 0.6  # synthetic_clip: a photo's side at most this part of the frame's shorter side (webcam distance)


@lru_cache(maxsize=None)
def _asset(name: str) -> np.ndarray:
    """A bundled photo by file stem (``astronaut``, ``cameraman``), BGR."""
    path = ASSETS_DIR / f"{name}.jpg"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"bundled face photo {path} is missing (run scripts/make_assets.py)")
    img.flags.writeable = False
    return img


def _tint(img: np.ndarray, gain: float | tuple[float, float, float]) -> np.ndarray:
    """``img`` with its (B, G, R) channels multiplied by ``gain``, clipped to uint8."""
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """A square image turned about its centre (counter-clockwise), borders repeated."""
    side = img.shape[0]
    m = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (side, side), borderMode=cv2.BORDER_REPLICATE)


def face_photos() -> list[np.ndarray]:
    """Real face photos (BGR, square, face centred, ~56% of the width) in a fixed order.

    The bundled photos (see ``fer_core/assets/README.md``) and variants of them (mirrored, grey,
    tinted), frontal faces first, so that any prefix of the list is reliably detected.
    """
    astronaut, cameraman = _asset("astronaut"), _asset("cameraman")
    grey = cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    warm, cool = _tint(astronaut, (0.85, 1.0, 1.15)), _tint(astronaut, (1.15, 1.0, 0.85))
    faces = [astronaut, astronaut[:, ::-1], grey, warm[:, ::-1], cameraman, cameraman[:, ::-1], cool, grey[:, ::-1]]
    return [np.array(f) for f in faces]  # writable copies


def clip_photos() -> list[np.ndarray]:
    """The faces of the synthetic clip: eight colour variants of the astronaut photo, cut tight (BGR, square).

    Clips of many faces need faces that are found when small. MediaPipe's BlazeFace short-range detector finds
    these down to about a sixth of the frame's long side (105 of 640 px) because the face fills 86% of the
    photo; it misses the grey photos of :func:`face_photos` (the cameraman, the grey variants) below about a
    fifth, and the looser crops of :func:`face_photos` waste a cell's space on background.
    """
    a = _asset("astronaut")
    variants = [a, a[:, ::-1], _tint(a, (0.85, 1.0, 1.15))[:, ::-1], _tint(a, 0.8), _rotate(a, -6),
                _rotate(a, 6)[:, ::-1], _tint(a, (1.08, 1.0, 0.92)), _tint(a, 1.15)[:, ::-1]]
    side = a.shape[0]
    k = int(round(side * CLIP_CROP))
    o = (side - k) // 2
    return [np.ascontiguousarray(v[o:o + k, o:o + k]) for v in variants]


def _grid(n: int, width: int, height: int) -> tuple[int, int]:
    """Columns and rows of a grid holding ``n`` roughly square cells in a width x height frame."""
    cols = max(1, math.ceil(math.sqrt(n * width / height)))
    rows = math.ceil(n / cols)
    while cols > 1 and (cols - 1) * rows >= n:
        cols -= 1
    return cols, rows


def paste(frame: np.ndarray, img: np.ndarray, x0: int, y0: int) -> None:
    """Paste ``img`` into ``frame`` with its top-left corner at (x0, y0), clipped at the frame edges."""
    h, w = img.shape[:2]
    fh, fw = frame.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(fw, x0 + w), min(fh, y0 + h)
    if xa < xb and ya < yb:
        frame[ya:yb, xa:xb] = img[ya - y0:yb - y0, xa - x0:xb - x0]


def synthetic_clip(n_faces: int, size: tuple[int, int] = (640, 480), n_frames: int = 30,
                   fill: float = 0.9, photos: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Frames (BGR uint8) showing ``n_faces`` real face photos at once, moving gently.

    Faces sit in a grid of cells, each drifting on a small loop and breathing in scale (a full loop
    per clip, so the clip repeats seamlessly), so the detector and tracker work on every frame.
    The BlazeFace short-range detector finds every face of 640x480 clips of up to 12 faces; with more, the faces
    get smaller than about a sixth of the frame width and some are missed (a larger frame does not help: the
    detector sees the whole frame at 128x128).

    Args:
        n_faces: faces per frame (0 gives empty background frames).
        size: (width, height).
        n_frames: clip length.
        fill: face photo side as a fraction of the cell's smaller side, at most ``MAX_PHOTO_SIDE`` of the frame's.
        photos: the square face images to use (BGR), cycled; default :func:`clip_photos`.
    """
    width, height = size
    photos = photos or clip_photos()
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([205, 195, 175], np.float32), np.array([110, 105, 95], np.float32)
    background = np.broadcast_to(top * (1 - yy) + bottom * yy, (height, width, 3)).astype(np.uint8)
    cols, rows = _grid(max(n_faces, 1), width, height)
    cell_w, cell_h = width / cols, height / rows
    base_side = max(8, int(min(min(cell_w, cell_h) * fill, MAX_PHOTO_SIDE * min(width, height))))
    frames = []
    for t in range(n_frames):
        frame = background.copy()
        for i in range(n_faces):
            row, col = divmod(i, cols)
            phase = 2 * math.pi * t / max(n_frames, 1) + 1.3 * i
            side = int(base_side * (1 + 0.05 * math.sin(phase)))
            cx = (col + 0.5) * cell_w + 0.05 * cell_w * math.cos(phase)
            cy = (row + 0.5) * cell_h + 0.05 * cell_h * math.sin(phase)
            photo = photos[i % len(photos)]
            interp = cv2.INTER_AREA if side < photo.shape[0] else cv2.INTER_LINEAR
            face = cv2.resize(photo, (side, side), interpolation=interp)
            paste(frame, face, int(cx - side / 2), int(cy - side / 2))
        frames.append(frame)
    return frames


def face_batch(batch: int, seed: int = 0) -> list[np.ndarray]:
    """``batch`` real face crops (BGR): the bundled photos and variants, jittered in position and scale."""
    rng = np.random.default_rng(seed)
    photos = face_photos()
    crops = []
    for i in range(batch):
        photo = photos[i % len(photos)]
        side = photo.shape[0]
        k = int(side * rng.uniform(0.6, 0.8))
        x, y = rng.integers(0, side - k + 1, size=2)
        crops.append(np.ascontiguousarray(photo[y:y + k, x:x + k]))
    return crops
