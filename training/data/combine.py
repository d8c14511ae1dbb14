"""Merging several datasets into the eight-class canonical label space."""

from __future__ import annotations

import numpy as np

from fer_core.labels import CANONICAL_CLASSES

from .facedata import SPLITS, FaceData, FaceSplit


def to_classes(split: FaceSplit, classes: tuple[str, ...], with_soft: bool) -> FaceSplit:
    """Re-express a split's labels (and soft targets) in another class list that contains its classes.

    With ``with_soft`` a split without soft targets gets one-hot ones.
    """
    index = np.array([classes.index(c) for c in split.classes], dtype=np.int64)
    soft = None
    if with_soft:
        soft = np.zeros((len(split), len(classes)), dtype=np.float32)
        if split.soft is None:
            soft[np.arange(len(split)), index[split.labels]] = 1.0
        else:
            soft[:, index] = split.soft
    return FaceSplit(split.images, index[split.labels], soft, list(split.files), classes)


def concat(splits: list[FaceSplit]) -> FaceSplit:
    """Concatenate splits that share one class list."""
    soft = None if splits[0].soft is None else np.concatenate([s.soft for s in splits])
    return FaceSplit(
        images=np.concatenate([s.images for s in splits]),
        labels=np.concatenate([s.labels for s in splits]),
        soft=soft,
        files=[f for s in splits for f in s.files],
        classes=splits[0].classes,
    )


def combine(parts: list[FaceData]) -> FaceData:
    """One dataset from several: classes = CANONICAL_CLASSES, splits concatenated in ``parts`` order.

    A single part is returned unchanged (it keeps its own classes).
    """
    if len(parts) == 1:
        return parts[0]
    classes = CANONICAL_CLASSES
    with_soft = any(p.train.soft is not None for p in parts)
    merged = {
        name: concat([to_classes(p.split(name), classes, with_soft) for p in parts]) for name in SPLITS
    }
    return FaceData(
        **merged,
        classes=classes,
        name="+".join(p.name for p in parts),
        native_size=parts[0].native_size,
        equalize=parts[0].equalize,
        skipped=sum(p.skipped for p in parts),
    )
