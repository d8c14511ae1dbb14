"""What a dataset reader finds before any image is decoded, and helpers to find image files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.labels import normalize_label
from fer_core.sources import IMAGE_EXTS

from .errors import DataError

logger = logging.getLogger(__name__)

#: Split codes used in :attr:`Listing.split`; ``UNASSIGNED`` items get a seeded split later.
TRAIN, VAL, TEST, UNASSIGNED = 0, 1, 2, -1

#: Folder names that mean a split (lower case).
SPLIT_DIRS: dict[str, int] = {
    "train": TRAIN, "training": TRAIN,
    "val": VAL, "valid": VAL, "validation": VAL,
    "test": TEST, "testing": TEST,
}


@dataclass
class Listing:
    """A dataset's items: files, labels and the splits the layout fixes.

    Attributes:
        classes: canonical class names of this dataset, in canonical order.
        files: one name per item (a path, or ``<csv>:<row>``).
        labels: int64 (N,) index into ``classes``.
        split: int8 (N,) ``TRAIN``/``VAL``/``TEST``, or ``UNASSIGNED`` when the layout does not say.
        soft: float32 (N, C) vote distributions, or ``None``.
        pixels: CSV pixel strings (one per item) when images come from a CSV instead of files.
    """

    classes: tuple[str, ...]
    files: list[str]
    labels: np.ndarray
    split: np.ndarray
    soft: np.ndarray | None = None
    pixels: list[str] | None = None

    def __len__(self) -> int:
        return len(self.files)


def is_image(path: Path) -> bool:
    """True for a visible file with an image extension."""
    return path.suffix.lower() in IMAGE_EXTS and not path.name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """All image files below ``folder`` (recursive), sorted for a stable order."""
    return sorted(p for p in folder.rglob("*") if is_image(p) and p.is_file())


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_of_folder(folder: Path) -> str:
    """Canonical class name of a class folder.

    Raises:
        DataError: for a folder name that is no known emotion; the message lists the known names.
    """
    try:
        return normalize_label(folder.name)
    except ValueError as err:
        raise DataError(f"{folder}: unknown class folder: {err}") from None


def read_class_folders(folder: Path) -> list[tuple[Path, str]]:
    """(image path, canonical class) for every image in the class folders of ``folder``.

    Class folders without images are skipped with one warning naming them.

    Raises:
        DataError: for an unknown class folder, or when ``folder`` holds no class folders.
    """
    classes = subdirs(folder)
    if not classes:
        raise DataError(f"{folder}: no class folders found (expected e.g. {folder / 'happy'}/)")
    items: list[tuple[Path, str]] = []
    empty: list[str] = []
    for sub in classes:
        name = class_of_folder(sub)
        files = image_files(sub)
        if not files:
            empty.append(sub.name)
        items.extend((p, name) for p in files)
    if empty:
        logger.warning("%s: skipping class folders without images: %s", folder, ", ".join(empty))
    return items


def check_classes(listing: Listing, where: Path) -> None:
    """Raise unless at least two classes have images (a classifier needs two).

    Raises:
        DataError: naming the one class found.
    """
    present = sorted({listing.classes[i] for i in np.unique(listing.labels)})
    if len(present) < 2:
        found = f"only one class has images ('{present[0]}')" if present else "no class has images"
        raise DataError(f"{where}: {found}; training needs at least 2 class folders with images, "
                        f"e.g. {where / 'happy'}/ and {where / 'sad'}/")
