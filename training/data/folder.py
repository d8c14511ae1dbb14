"""Class-per-folder datasets (CK+48, JAFFE, KDEF, RAF-DB style).

Layouts::

    root/<class>/*.png                      no split folders: seeded split (see splits.py)
    root/{train,val,test}/<class>/*.png     split folders (val may be missing: carved out of train;
                                            also accepted: training, valid, validation, testing)

Class folder names are normalised with ``fer_core.labels.normalize_label`` (anger -> angry,
happiness -> happy, sadness -> sad, neutrality -> neutral, ...); images may sit in sub-folders of a
class folder. Images are stored square at the cache size (``prepare_gray`` resizes without
cropping), so non-square photos (e.g. full KDEF frames) should be face-cropped first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fer_core.labels import canonical_order

from .errors import DataError
from .listing import SPLIT_DIRS, UNASSIGNED, Listing, read_class_folders, subdirs

logger = logging.getLogger(__name__)


def read_folder(root: Path, base_classes: Iterable[str] = ()) -> Listing:
    """List a class-per-folder dataset.

    Args:
        root: dataset folder.
        base_classes: canonical classes always included in the class list (even without images).

    Raises:
        DataError: unknown class folder (known names listed), no class folders, or no images.
    """
    dirs = subdirs(root)
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_DIRS]
    items: list[tuple[Path, str, int]] = []
    if split_dirs:
        ignored = [d.name for d in dirs if d not in split_dirs]
        if ignored:
            logger.warning("%s: ignoring folders beside the split folders: %s", root, ", ".join(ignored))
        for d in split_dirs:
            code = SPLIT_DIRS[d.name.lower()]
            items.extend((path, name, code) for path, name in read_class_folders(d))
    else:
        items.extend((path, name, UNASSIGNED) for path, name in read_class_folders(root))
    if not items:
        raise DataError(f"{root}: no images found in its class folders")
    classes = canonical_order([name for _, name, _ in items] + list(base_classes))
    index = {name: i for i, name in enumerate(classes)}
    return Listing(
        classes=classes,
        files=[str(path) for path, _, _ in items],
        labels=np.array([index[name] for _, name, _ in items], dtype=np.int64),
        split=np.array([code for _, _, code in items], dtype=np.int8),
    )
