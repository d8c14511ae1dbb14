"""Frames with a face of known label, position, size and tilt: a pre-cropped face placed into a larger frame.

They let the whole pipeline (detector -> crop -> model) be measured on faces that are *not* pre-cropped, and the
crop be calibrated against the training framing: the face's square in the frame is exactly where the dataset's
crop was. What they cannot show: hair, shoulders and backgrounds of real photos (the surround is noise).
Used by ``scripts/calibrate_crop.py`` and ``tests/test_crop_calibration.py``; not part of ``fer_core``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Placement:
    """Where the face went: centre (x, y), side of its square in pixels, tilt in degrees (clockwise on screen)."""

    cx: float
    cy: float
    side: int
    angle: float


def composite_face(face: np.ndarray, side: int, rng: np.random.Generator, size: tuple[int, int] = (640, 480),
                   angle: float = 0.0) -> tuple[np.ndarray, Placement]:
    """Put a square grey face into a BGR frame of ``size`` (W, H) over mid-grey noise, at a random position.

    Args:
        face: grey (S, S) uint8, e.g. a 48x48 FER2013 face.
        side: side of the face in the frame (upscaled with bicubic interpolation).
        rng: randomness for the position and the background.
        size: frame (width, height).
        angle: tilt of the face, degrees clockwise on screen.

    Returns:
        (frame, placement).
    """
    width, height = size
    up = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    reach = side * (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))) / 2
    cx = float(rng.uniform(reach, width - reach))
    cy = float(rng.uniform(reach, height - reach))
    # the face's pixel (u, v) goes to centre + R(angle) (u - side/2, v - side/2)
    m = cv2.getRotationMatrix2D((side / 2, side / 2), -angle, 1.0)
    m[0, 2] += cx - side / 2
    m[1, 2] += cy - side / 2
    warped = cv2.warpAffine(up, m, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones((side, side), np.float32), m, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.GaussianBlur(mask, (0, 0), max(side / 40, 0.5))
    background = cv2.GaussianBlur(rng.normal(110, 25, (height, width)).astype(np.float32), (0, 0), 3)
    grey = np.clip(warped * mask + background * (1 - mask), 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), Placement(cx, cy, side, angle)


def detection_at(detections, x: float, y: float):
    """The detection whose box contains (x, y) with its centre nearest to it, else ``None``."""
    inside = [d for d in detections
              if d.box[0] <= x <= d.box[0] + d.box[2] and d.box[1] <= y <= d.box[1] + d.box[3]]
    return min(inside, key=lambda d: (d.box[0] + d.box[2] / 2 - x) ** 2 + (d.box[1] + d.box[3] / 2 - y) ** 2,
               default=None)
