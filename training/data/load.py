"""``load_data``: dataset specs in, a decoded, split, cached :class:`FaceData` out."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import cache
from .combine import combine
from .errors import DataError
from .facedata import SPLITS, FaceData, FaceSplit
from .listing import check_classes
from .pack import read_pack
from .readers import choose_reader, decode
from .specs import parse_spec
from .splits import SplitRule, complete_splits, subset_indices

logger = logging.getLogger(__name__)


def load_one(
    kind: str,
    path: Path,
    cache_size: int,
    equalize: bool,
    skip_bad: bool,
    seed: int,
    subset: int | None,
    cache_dir: Path,
    progress: bool,
    single: bool = False,
    split_rule: SplitRule | None = None,
) -> FaceData:
    """Load one dataset spec (see :func:`load_data`); decodes only the chosen images with ``subset``.

    ``single``: the only spec, so it must hold at least two classes with images (a merged spec may add one class).
    """
    if kind.startswith("packed"):  # a pack is decoded already: no reader, no cache; packed_<view>: FER+ views
        kind, listing, images = read_pack(path, equalize, kind.removeprefix("packed").lstrip("_") or None)
        if images.shape[1] != cache_size:
            raise DataError(f"{path}: the pack holds {images.shape[1]} px faces, cache_size is {cache_size}")
        hit, cache_path = (listing, images, np.ones(len(listing), bool)), None
    else:
        reader_kind, source, read = choose_reader(kind, path)
        cache_path = cache.cache_file(cache_dir, reader_kind, source, cache_size, equalize)
        hit = cache.load(cache_path)
    if hit:
        listing, images, ok = hit
        logger.info("%s: loaded from %s", path, cache_path or "the pack")
    else:
        listing, images, ok = read(source), None, None
    split = complete_splits(listing, seed, split_rule)
    chosen = [np.flatnonzero(split == code) for code in range(len(SPLITS))]
    if subset is not None:
        chosen = [idx[subset_indices(listing.labels[idx], subset, seed)] for idx in chosen]

    pos = np.arange(len(listing))  # item index -> row of ``images``
    if images is None:
        todo = pos if subset is None else np.sort(np.concatenate(chosen))
        images, ok = decode(listing, todo, cache_size, equalize, progress, f"decode {kind} {path.name}")
        if subset is None:
            cache.save(cache_path, listing, images, ok)
        else:
            pos = np.full(len(listing), -1, dtype=np.int64)
            pos[todo] = np.arange(len(todo))

    bad = [i for idx in chosen for i in idx[~ok[pos[idx]]]]
    if bad and not skip_bad:
        raise DataError(
            f"{listing.files[bad[0]]}: unreadable or invalid image ({len(bad)} such image(s) in {path}); "
            "pass skip_bad=True (fer-train --skip-bad) to skip them"
        )
    if bad:
        if len(bad) == sum(len(idx) for idx in chosen):
            raise DataError(f"{path}: none of its {len(bad)} images could be read, e.g. {listing.files[bad[0]]}")
        logger.warning("%s: skipped %d unreadable images, e.g. %s", path, len(bad), listing.files[bad[0]])

    soft = listing.soft if kind == "ferplus_soft" else None
    splits: dict[str, FaceSplit] = {}
    for name, idx in zip(SPLITS, chosen):
        idx = idx[ok[pos[idx]]]
        if idx.size == 0:
            raise DataError(f"{path}: the {name} split is empty")
        splits[name] = FaceSplit(
            images=images[pos[idx]],
            labels=listing.labels[idx].astype(np.int64),
            soft=None if soft is None else soft[idx].astype(np.float32),
            files=[listing.files[i] for i in idx],
            classes=listing.classes,
        )
    if single:
        check_classes(listing, path)
    return FaceData(
        **splits, classes=listing.classes, name=kind, native_size=cache_size, equalize=equalize, skipped=len(bad)
    )


def load_data(
    specs: list[str],
    cache_size: int = 48,
    equalize: bool = True,
    skip_bad: bool = False,
    seed: int = 0,
    subset: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    split_rule: SplitRule | None = None,
) -> FaceData:
    """Load, decode (once, cached) and split one or more face datasets.

    Args:
        specs: ``KIND=PATH`` strings; kinds: fer2013 (Kaggle folders or fer2013.csv), ferplus,
            ferplus_soft, folder. Several specs merge into the eight canonical classes; one spec
            keeps its own classes (FER2013: 7, FER+: 8, a folder dataset: the classes it has).
        cache_size: side length the images are stored at (``prepare_gray`` native size).
        equalize: histogram equalisation.
        skip_bad: skip unreadable images (count in ``FaceData.skipped``) instead of raising.
        seed: seed of the splits that the layout does not fix and of ``subset``.
        subset: keep ``subset`` images of each split, stratified by class, seeded (smoke tests).
            Only those images are decoded when the cache is cold. With several specs, each
            dataset is cut first, then the merged splits.
        cache_dir: cache folder (default: :func:`training.data.cache.default_cache_dir`).
        progress: tqdm bar while decoding.
        split_rule: how items whose split the layout leaves open are split (``--group-by``, ``--folds``):
            :class:`training.data.splits.SplitRule`; default stratified 8:1:1.

    Raises:
        DataError: bad spec, unknown kind, missing path, bad layout or labels, unreadable image,
            empty split; the message names the file or folder.
    """
    if isinstance(specs, (str, Path)):
        specs = [str(specs)]
    if not specs:
        raise DataError("no dataset given: pass at least one KIND=PATH spec, e.g. fer2013=data/fer2013")
    if int(cache_size) < 1:
        raise DataError(f"cache_size must be a positive number of pixels, got {cache_size}")
    if subset is not None and int(subset) < 1:
        raise DataError(f"subset must be at least 1, got {subset}")
    parsed = [parse_spec(s) for s in specs]  # check every spec before the slow part
    folder = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    parts = [
        load_one(kind, path, int(cache_size), equalize, skip_bad, seed, subset, folder, progress, len(parsed) == 1,
                 split_rule)
        for kind, path in parsed
    ]
    data = combine(parts)
    if subset is not None and len(parts) > 1:
        for name in SPLITS:
            split = data.split(name)
            setattr(data, name, split.take(subset_indices(split.labels, subset, seed)))
    logger.info(
        "%s: %d classes, train %d, val %d, test %d images",
        data.name, len(data.classes), len(data.train), len(data.val), len(data.test),
    )
    return data
