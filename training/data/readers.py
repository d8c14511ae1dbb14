"""Which reader reads a dataset spec, and decoding the items of a listing: what loading and packing share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import DataError
from .fer2013 import read_fer2013_folders
from .fer2013_csv import read_fer2013_csv
from .ferplus import read_ferplus
from .folder import read_folder
from .images import decode_all, parse_pixels, read_image
from .listing import SPLIT_DIRS, Listing, subdirs

Reader = Callable[[Path], Listing]


def choose_reader(kind: str, path: Path) -> tuple[str, Path, Reader]:
    """``(reader kind, path it reads, reader)`` for a spec; the reader kind names the cache entry.

    ``fer2013`` reads a CSV when ``path`` is a file, or a folder holding ``fer2013.csv`` and no split folders
    (train/val/test); otherwise the Kaggle folders. ``ferplus_soft`` shares the ``ferplus`` reader and cache;
    ``ferplus_majority`` has its own (fewer images).
    """
    if kind == "fer2013":
        if path.is_file():
            return "fer2013_csv", path, read_fer2013_csv
        if (path / "fer2013.csv").is_file() and not any(d.name.lower() in SPLIT_DIRS for d in subdirs(path)):
            return "fer2013_csv", path / "fer2013.csv", read_fer2013_csv
        return "fer2013", path, read_fer2013_folders
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder for the '{kind}' dataset kind")
    if kind in ("ferplus", "ferplus_soft"):
        return "ferplus", path, read_ferplus
    if kind == "ferplus_majority":
        return "ferplus_majority", path, functools.partial(read_ferplus, strict=True)
    return "folder", path, read_folder


def decode(
    listing: Listing, idx: np.ndarray, size: int, equalize: bool, progress: bool, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the items ``idx`` of a listing (image files, or CSV pixel strings): ``(images, ok)``."""
    if listing.pixels is not None:
        sources = [listing.pixels[i] for i in idx]
        return decode_all(sources, parse_pixels, size, equalize, progress, desc, workers=1)
    return decode_all([listing.files[i] for i in idx], read_image, size, equalize, progress, desc)
