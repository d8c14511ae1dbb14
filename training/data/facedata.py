"""The containers :func:`training.data.load_data` returns: :class:`FaceSplit` and :class:`FaceData`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class FaceSplit:
    """One split of a face dataset, decoded and preprocessed.

    Attributes:
        images: uint8 (N, S, S), already ``prepare_gray``-ed (grey, equalised, at the cache size).
        labels: int64 (N,), index into ``classes``.
        soft: float32 (N, C) target distributions (rows sum to 1), or ``None`` for hard labels.
        files: one source name per image (a file path, or ``fer2013.csv:<row>`` for CSV rows).
        classes: canonical class names, the model's output order.
    """

    images: np.ndarray
    labels: np.ndarray
    soft: np.ndarray | None
    files: list[str]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        """Number of images per class (int64, length ``len(classes)``)."""
        return np.bincount(self.labels, minlength=len(self.classes)).astype(np.int64)

    def take(self, idx: np.ndarray) -> FaceSplit:
        """A new split holding the images at ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        return FaceSplit(
            images=self.images[idx],
            labels=self.labels[idx],
            soft=None if self.soft is None else self.soft[idx],
            files=[self.files[i] for i in idx],
            classes=self.classes,
        )


@dataclass
class FaceData:
    """A dataset ready for training: three splits sharing one class list.

    Attributes:
        train, val, test: the splits.
        classes: canonical class names in output order.
        name: e.g. ``"fer2013"`` or ``"fer2013+folder"``.
        native_size: side length of the cached images (= ``cache_size``).
        equalize: whether histogram equalisation was applied.
        skipped: unreadable images skipped (only with ``skip_bad=True``).
    """

    train: FaceSplit
    val: FaceSplit
    test: FaceSplit
    classes: tuple[str, ...]
    name: str
    native_size: int
    equalize: bool
    skipped: int = 0

    def split(self, name: str) -> FaceSplit:
        """The split called ``name`` ("train", "val" or "test")."""
        if name not in SPLITS:
            raise DataError(f"unknown split '{name}'; valid splits: {', '.join(SPLITS)}")
        return getattr(self, name)
