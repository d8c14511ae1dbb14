"""Face preprocessing shared by training and inference.

One recipe for both sides so a model sees at run time what it saw in training:

1. grey (BGR, RGB-agnostic luminance; BGRA and grey accepted),
2. optional downscale to the training data's native resolution (``native_size``, 48 for
   FER2013), so sharp webcam crops look like the training faces,
3. histogram equalisation,
4. resize to the model input size, replicate to three channels, normalise with mean/std
   (0.5/0.5, the CTAN recipe).

Training caches the result of steps 1-3 (:func:`prepare_gray`) as uint8 and does step 4
(plus augmentation) in torch; inference calls :func:`preprocess_face`.
"""

from __future__ import annotations

import cv2
import numpy as np

from fer_core.model_meta import DEFAULT_MEAN, DEFAULT_STD  # set once, in the model contract


def to_gray(img: np.ndarray) -> np.ndarray:
    """Return a uint8 single-channel image from a grey, BGR or BGRA image.

    Raises:
        ValueError: for an image of an unsupported shape or an empty image.
    """
    if img is None or img.size == 0:
        raise ValueError("empty image")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] == 1:
        return img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {img.shape}")


def prepare_gray(img: np.ndarray, native_size: int | None = None, equalize: bool = True) -> np.ndarray:
    """Steps 1-3: grey, optional downscale to ``native_size`` (square), histogram equalisation.

    Args:
        img: face crop, grey/BGR/BGRA uint8.
        native_size: side length the training data was stored at; ``None`` keeps the size.
        equalize: apply ``cv2.equalizeHist``.

    Returns:
        uint8 array (H, W), or (native_size, native_size).
    """
    gray = to_gray(img)
    if native_size and gray.shape != (native_size, native_size):
        interp = cv2.INTER_AREA if gray.shape[0] > native_size else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (native_size, native_size), interpolation=interp)
    if equalize:
        gray = cv2.equalizeHist(np.ascontiguousarray(gray))
    return gray


def to_input(gray: np.ndarray, size: int, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD) -> np.ndarray:
    """Step 4: resize a uint8 grey image to ``size``, scale to [0, 1], normalise, make 3 channels.

    Returns:
        float32 array (3, size, size).
    """
    if gray.shape != (size, size):
        interp = cv2.INTER_AREA if gray.shape[0] > size else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interp)
    x = (gray.astype(np.float32) / 255.0 - mean) / std
    return np.repeat(x[None], 3, axis=0)


def preprocess_face(
    img: np.ndarray,
    size: int,
    native_size: int | None = None,
    equalize: bool = True,
    mean: float = DEFAULT_MEAN,
    std: float = DEFAULT_STD,
) -> np.ndarray:
    """Full preprocessing of one face crop into a model input (3, size, size) float32."""
    return to_input(prepare_gray(img, native_size, equalize), size, mean, std)
