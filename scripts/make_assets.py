"""Regenerate the small face photos bundled in ``fer_core/assets/`` (used by the synthetic benchmark clip).

Sources (both shipped with scikit-image, both free of copyright restrictions):

- ``skimage.data.astronaut()``: Eileen Collins, NASA photograph, public domain.
- ``skimage.data.camera()``: "cameraman" by Lav Varshney, CC0.

Each output is a square head-and-shoulders crop centred on the face, the face about 56% of the
crop's width, saved as a small JPEG. Run once and commit the result::

    python scripts/make_assets.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "fer_core" / "assets"
SIDE = 176  # output side in pixels
FACE_FRACTION = 0.56  # face box width / crop width

# Face boxes (x, y, w, h) in the 512x512 originals, found once with the BlazeFace detector.
FACES = {
    "astronaut": (177, 82, 95, 95),
    "cameraman": (182, 124, 87, 87),
}


def _load(name: str) -> np.ndarray:
    """Return the original photo as BGR uint8."""
    import skimage.data

    if name == "astronaut":
        return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR)


def make_crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Square crop centred on ``box`` so that the face is ``FACE_FRACTION`` of its width, resized to ``SIDE``."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half = max(w, h) / FACE_FRACTION / 2
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    x1, y1 = int(round(cx + half)), int(round(cy + half))
    padded = cv2.copyMakeBorder(img, 256, 256, 256, 256, cv2.BORDER_REPLICATE)
    crop = padded[y0 + 256:y1 + 256, x0 + 256:x1 + 256]
    return cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def main() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    for name, box in FACES.items():
        out = ASSETS / f"{name}.jpg"
        cv2.imwrite(str(out), make_crop(_load(name), box), [cv2.IMWRITE_JPEG_QUALITY, 88])
        print(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
