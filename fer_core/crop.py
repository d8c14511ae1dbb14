"""Square face crops around detector boxes, framed like the training faces, optionally turned upright.

The live crop must frame a face the way FER2013's 48x48 images do, or the model sees something else than it
learnt. :data:`CROP_MARGIN` and :data:`CROP_SHIFT` were fitted by ``scripts/calibrate_crop.py``: BlazeFace run on
FER2013 training faces composited into larger frames, the known position of each face against the box the
detector returned (median over the faces found, the same with and without the small-face tiles). With the eye
keypoints, the crop is also rotated so the eyes are level, as FER2013's faces mostly are.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_BORDERS = {"edge": cv2.BORDER_REPLICATE, "zero": cv2.BORDER_CONSTANT}

#: Crop side = box side x (1 + CROP_MARGIN) (calibrated: FER2013's face side is 1.19-1.20 BlazeFace box widths).
CROP_MARGIN = 0.2
#: Crop centre = box centre moved by CROP_SHIFT box widths along the face's downward axis (calibrated: -0.10,
#: FER2013 crops sit higher than BlazeFace's boxes: they include the forehead).
CROP_SHIFT = -0.10
#: Faces tilted more than this (degrees) are not turned upright: keypoints that far off are rather wrong.
MAX_TILT = 45.0


def crop_side(box: tuple[int, int, int, int], margin: float) -> int:
    """Side of the square crop of ``box``: ``max(w, h) * (1 + margin)``, at least 1 pixel."""
    return max(1, int(round(max(box[2], box[3]) * (1.0 + margin))))


def square_box(box: tuple[int, int, int, int], margin: float = 0.2, shift: float = 0.0) -> tuple[int, int, int]:
    """The square (x0, y0, side) with side ``max(w, h) * (1 + margin)``, centred on ``box`` moved down by
    ``shift * w``."""
    x, y, w, h = box
    side = crop_side(box, margin)
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 + shift * w - side / 2))
    return x0, y0, side


def eye_angle(eyes) -> float:
    """Tilt of the line between the eyes in degrees (positive: the face leans clockwise on screen)."""
    (lx, ly), (rx, ry) = sorted(eyes)
    return math.degrees(math.atan2(ry - ly, rx - lx))


def crop_face(frame: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.2, pad: str = "edge",
              shift: float = 0.0, eyes=None) -> np.ndarray:
    """Cut a square face crop around ``box``.

    Args:
        frame: image (H, W) or (H, W, C).
        box: (x, y, w, h) in pixels.
        margin: the side is ``max(w, h) * (1 + margin)`` (0.2 = 10 % more on each side).
        pad: where the square leaves the frame: ``"edge"`` repeats the border pixels (keeps the
            histogram equalisation sane), ``"zero"`` fills with black.
        shift: move the centre by ``shift * w`` along the face's downward axis (negative = up).
        eyes: the two eye centres (x, y); when given, the crop is rotated about its centre so they are level.

    Returns:
        Array (side, side[, C]) of the frame's dtype; always square, even for boxes at or past the edges.
    """
    if pad not in _BORDERS:
        raise ValueError(f"pad must be one of {sorted(_BORDERS)}, not {pad!r}")
    angle = eye_angle(eyes) if eyes is not None else 0.0
    if abs(angle) > MAX_TILT:
        angle = 0.0
    if abs(angle) >= 0.5:
        return _rotated_crop(frame, box, margin, pad, shift, angle)
    x0, y0, side = square_box(box, margin, shift)
    h, w = frame.shape[:2]
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(w, x0 + side), min(h, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:  # entirely outside the frame
        return np.zeros((side, side) + frame.shape[2:], frame.dtype)
    region = frame[cy0:cy1, cx0:cx1]
    top, left = cy0 - y0, cx0 - x0
    bottom, right = side - top - region.shape[0], side - left - region.shape[1]
    if top or left or bottom or right:
        region = cv2.copyMakeBorder(region, top, bottom, left, right, _BORDERS[pad], value=0)
        if frame.ndim == 3 and region.ndim == 2:  # OpenCV drops a single channel axis
            region = region[:, :, None]
    return region


def _rotated_crop(frame: np.ndarray, box: tuple[int, int, int, int], margin: float, pad: str, shift: float,
                  angle: float) -> np.ndarray:
    """The crop of :func:`crop_face` turned by ``angle`` degrees so the face is upright."""
    x, y, w, h = box
    side = crop_side(box, margin)
    a = math.radians(angle)
    cx = x + w / 2 - math.sin(a) * shift * w  # the face's downward axis is (-sin a, cos a)
    cy = y + h / 2 + math.cos(a) * shift * w
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[0, 2] += side / 2 - cx
    m[1, 2] += side / 2 - cy
    out = cv2.warpAffine(frame, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=_BORDERS[pad], borderValue=0)
    if frame.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out
