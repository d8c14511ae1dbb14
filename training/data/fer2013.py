"""FER2013 in the Kaggle folder layout: ``train/<class>/*.jpg``, ``test/<class>/*.jpg``.

The official three-way split is recovered from the file-name prefixes: ``Training_`` -> train,
``PublicTest_`` -> val, ``PrivateTest_`` -> test, wherever the file sits. Files without such a
prefix follow their split folder (``train``/``val``/``test``; a missing val split is carved out of
train, see splits.py). The class list is always the seven FER2013 classes.
"""

from __future__ import annotations

from pathlib import Path

from fer_core.labels import FER2013_CLASSES

from .folder import read_folder
from .listing import TEST, TRAIN, VAL, Listing

PREFIXES: dict[str, int] = {"Training_": TRAIN, "PublicTest_": VAL, "PrivateTest_": TEST}


def split_from_name(file_name: str) -> int | None:
    """Official split code from a Kaggle FER2013 file name, or ``None`` without a known prefix."""
    base = Path(file_name).name
    for prefix, code in PREFIXES.items():
        if base.startswith(prefix):
            return code
    return None


def read_fer2013_folders(root: Path) -> Listing:
    """List FER2013 in the Kaggle folder layout (see the module docstring)."""
    listing = read_folder(root, base_classes=FER2013_CLASSES)
    for i, name in enumerate(listing.files):
        code = split_from_name(name)
        if code is not None:
            listing.split[i] = code
    return listing
