"""Images handed to the Python API, as the BGR uint8 frames the pipeline reads.

    as_bgr_uint8(image)     # float [0, 1] or [0, 255], uint16, grey, BGRA ... -> (H, W, 3) uint8 BGR

What converts: uint8 as is; float in [0, 1] scaled by 255; float in [0, 255] rounded; uint16 shifted by 8 bits
(>> 8); other integers with values in 0..255 cast; grey (H, W) or (H, W, 1) and BGRA (H, W, 4) to BGR. Anything
else (bool masks, NaN or inf, not 2-D or 3-D, other channel counts, empty, values out of range) is an
:class:`ImageInputError` with a one-line message.
"""

from __future__ import annotations

import cv2
import numpy as np

from fer_core.errors import FerError


class ImageInputError(FerError, ValueError):
    """An array that is not an image the recogniser can read."""


def as_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """``image`` as a contiguous (H, W, 3) uint8 BGR array (see the module docstring for the rules).

    Raises:
        TypeError: not a numpy array.
        ImageInputError: an array that does not convert.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image (H, W[, C]), got {type(image).__name__}")
    what = f"image of shape {image.shape} and dtype {image.dtype}"
    if image.ndim not in (2, 3):
        raise ImageInputError(f"{what}: a {image.ndim}-D array, expected (H, W) grey or (H, W, C) colour")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ImageInputError(f"{what}: {image.shape[2]} channels, expected 1 (grey), 3 (BGR) or 4 (BGRA)")
    if image.size == 0:
        raise ImageInputError(f"{what}: the image is empty")
    if image.dtype == np.bool_:
        raise ImageInputError(f"{what}: a bool mask, not an image (convert it, e.g. mask.astype(np.uint8) * 255)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ImageInputError(f"{what}: has NaN or inf values")
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 255:
            raise ImageInputError(f"{what}: values {low:g}..{high:g} are outside [0, 1] and [0, 255]")
        image = np.rint(image * 255 if high <= 1 else image).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.integer) and image.dtype != np.uint8:
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 255:
            raise ImageInputError(f"{what}: values {low}..{high} are outside 0..255 (uint16 is shifted by 8 bits)")
        image = image.astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageInputError(f"{what}: not a numeric image")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)
