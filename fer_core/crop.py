"""Square face crops around detector boxes, padded where the square leaves the frame."""

from __future__ import annotations

import cv2
import numpy as np

_BORDERS = {"edge": cv2.BORDER_REPLICATE, "zero": cv2.BORDER_CONSTANT}


def square_box(box: tuple[int, int, int, int], margin: float = 0.2) -> tuple[int, int, int]:
    """The square (x0, y0, side) centred on ``box`` with side ``max(w, h) * (1 + margin)``."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1.0 + margin))))
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 - side / 2))
    return x0, y0, side


def crop_face(frame: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.2,
              pad: str = "edge") -> np.ndarray:
    """Cut a square face crop around ``box``, enlarged by ``margin``.

    Args:
        frame: image (H, W) or (H, W, C).
        box: (x, y, w, h) in pixels.
        margin: the side is ``max(w, h) * (1 + margin)`` (0.2 = 10 % more on each side).
        pad: where the square leaves the frame: ``"edge"`` repeats the border pixels (keeps the
            histogram equalisation sane), ``"zero"`` fills with black.

    Returns:
        Array (side, side[, C]) of the frame's dtype; always square, even for boxes at or past the edges.
    """
    if pad not in _BORDERS:
        raise ValueError(f"pad must be one of {sorted(_BORDERS)}, not {pad!r}")
    x0, y0, side = square_box(box, margin)
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
