"""A dataset packed small enough to travel: every face as a tile of one JPEG mosaic, plus an index.

A GPU box that cannot see the dataset folders gets a pack instead (``fer-train --data packed=PATH``). The pack
holds the decoded grey faces at the cache size *before* histogram equalisation, in a grid of tiles whose side is
a multiple of 8, so JPEG's 8x8 blocks never straddle two faces, and ``index.npz`` with what the folder reader
found (classes, file names, labels, fixed splits, FER+ vote distributions).
A FER2013 pack built with ``--ferplus FOLDER`` also carries the FER+ votes of every face FER+ labels (matched by
pixels, :mod:`training.data.ferplus_match`), so one pack serves both: ``packed=PATH`` gives FER2013's 7 classes,
``packed_ferplus=``, ``packed_ferplus_soft=`` and ``packed_ferplus_majority=`` the FER+ views of the same faces with
the labels, soft targets and dropping rules of ``ferplus=``, ``ferplus_soft=`` and ``ferplus_majority=`` (faces FER+
lacks are left out). FER2013 as WebP q90 with FER+ votes: 30.4 MB, all 35,710 FER+ faces matched. Loading it gives the same images,
labels and splits as the folder it came from, up to JPEG's re-encoding error, which :func:`pack_dataset` measures
and records. FER2013 as progressive JPEG: 35 MB and 1.3 grey levels of mean error at the default quality 93; 37 MB
and 0.8 at quality 94, which the first GPU window used; ``--codec avif --quality 85``: 25.8 MB at 1.59 levels (see
:data:`CODECS`). What travels to a GPU box (tracked files + pack) must stay under 60 MiB: check with
``python -m training.window --check-travel PLAN``.

    python -m training.data.pack --data fer2013=../shared/data/fer2013 --out runs/pack/fer2013
    python -m training.data.pack --data fer2013=../shared/data/fer2013 --ferplus ../shared/data/ferplus \
        --codec webp --quality 90 --out .device/pack/fer2013
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from fer_core.labels import CANONICAL_CLASSES

from .errors import DataError
from .ferplus import targets
from .listing import Listing
from .readers import choose_reader, decode
from .specs import parse_spec
from .splits import complete_splits, subset_indices

log = logging.getLogger(__name__)

MOSAIC_STEM, INDEX = "faces", "index.npz"  # the mosaic is MOSAIC_STEM + its codec's suffix (CODECS)
COLUMNS = 64
MAX_SIDE = 16383  # WebP's largest image side: a big pack gets more columns so its mosaic stays within it
CODECS = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}
VIEWS = ("ferplus", "ferplus_soft", "ferplus_majority")
"""FER+ views of a pack with FER+ votes (``packed_<view>=PATH``), named like the folder kinds they mirror."""
"""Mosaic codecs, measured on the first 8192 FER2013 faces (MB scaled to all 35,887; mean grey-level error):
JPEG q85 24.4 / 2.90, q90 31.0 / 2.50, q93 35.2 / 1.30; WebP q85 23.7 / 2.11, q90 28.7 / 1.54; AVIF q70 17.8 /
2.84, q80 22.9 / 2.01, q85 25.8 / 1.59, q90 31.2 / 0.97 (AVIF encodes ~6 s per 1,000 faces on 2 cores)."""


def mosaic_path(path: Path) -> Path | None:
    """The mosaic file of a pack folder (``faces.jpg``, ``faces.webp`` or ``faces.avif``), or None."""
    found = [path / f"{MOSAIC_STEM}{ext}" for ext in CODECS.values() if (path / f"{MOSAIC_STEM}{ext}").is_file()]
    return found[0] if found else None


def is_pack(path: Path) -> bool:
    """True for a folder holding a pack."""
    return mosaic_path(path) is not None and (path / INDEX).is_file()


def to_mosaic(images: np.ndarray, columns: int = COLUMNS) -> np.ndarray:
    """(N, S, S) uint8 -> one (rows * S, columns * S) image, row-major, zero-padded."""
    n, s = len(images), images.shape[1]
    rows = max(1, -(-n // columns))
    grid = np.zeros((rows * columns, s, s), np.uint8)
    grid[:n] = images
    return grid.reshape(rows, columns, s, s).transpose(0, 2, 1, 3).reshape(rows * s, columns * s)


def from_mosaic(mosaic: np.ndarray, n: int, size: int) -> np.ndarray:
    """The inverse of :func:`to_mosaic`: the first ``n`` tiles as (n, size, size)."""
    rows, columns = mosaic.shape[0] // size, mosaic.shape[1] // size
    tiles = mosaic.reshape(rows, size, columns, size).transpose(0, 2, 1, 3).reshape(rows * columns, size, size)
    return np.ascontiguousarray(tiles[:n])


def pack_dataset(spec: str, out: str | Path, size: int = 48, quality: int = 93, subset: int | None = None,
                 seed: int = 0, progress: bool = True, codec: str = "jpeg",
                 ferplus: str | Path | None = None) -> dict:
    """Decode a dataset spec and write it as a pack in the folder ``out``.

    Args:
        spec: ``KIND=PATH`` as for :func:`training.data.load_data` (fer2013, ferplus, ferplus_soft, ...).
        out: output folder (created).
        size: tile side, the cache size the loaders use (a multiple of 8).
        quality: quality of the mosaic (JPEG, WebP or AVIF scale, 0-100).
        codec: ``jpeg``, ``webp`` or ``avif`` (see :data:`CODECS` for their sizes and errors).
        subset: keep this many images per split (stratified, seeded), for tests.
        seed: seed of the subset and of splits the layout does not fix.
        progress: progress bar while decoding.
        ferplus: a FER+ folder: add the FER+ votes of each FER2013 face (``fer2013`` packs only).

    Returns:
        {"images", "bytes", "mean_abs_error", "max_abs_error", ...} (error of the mosaic against the decoded
        faces); with ``ferplus`` also "ferplus_matched" and "ferplus_mad" (percentiles of the matches' MAD).

    Raises:
        DataError: a bad spec, unreadable images, a size that is not a multiple of 8.
    """
    if size % 8:
        raise DataError(f"the pack's tile size must be a multiple of 8, got {size}")
    if codec not in CODECS:
        raise DataError(f"unknown mosaic codec '{codec}': choose {', '.join(CODECS)}")
    kind, path = parse_spec(spec)
    if kind.startswith("packed"):
        raise DataError(f"{path}: is a pack already; pack a dataset folder instead")
    if ferplus is not None and kind != "fer2013":
        raise DataError(f"--ferplus adds FER+ votes to a fer2013 pack, not to a '{kind}' one")
    _, source, read = choose_reader(kind, path)
    listing = read(source)
    split = complete_splits(listing, seed)
    keep = np.arange(len(listing))
    if subset is not None:
        keep = np.sort(np.concatenate([idx[subset_indices(listing.labels[idx], subset, seed)]
                                       for code in range(3) for idx in [np.flatnonzero(split == code)]]))
    images, ok = decode(listing, keep, size, False, progress, f"pack {kind}")
    if not ok.all():
        bad = listing.files[keep[np.flatnonzero(~ok)[0]]]
        raise DataError(f"{bad}: unreadable image ({int((~ok).sum())} in {path}); fix or remove it before packing")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = {"jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
                       cv2.IMWRITE_JPEG_OPTIMIZE, 1],
              "webp": [cv2.IMWRITE_WEBP_QUALITY, int(quality)],
              "avif": [cv2.IMWRITE_AVIF_QUALITY, int(quality), cv2.IMWRITE_AVIF_SPEED, 6]}[codec]
    columns = max(COLUMNS, -(-len(images) // (MAX_SIDE // size)))
    good, buf = cv2.imencode(CODECS[codec], to_mosaic(images, columns), params)
    if not good:
        raise DataError(f"could not encode the mosaic of {len(images)} faces")
    for ext in CODECS.values():
        (out / f"{MOSAIC_STEM}{ext}").unlink(missing_ok=True)  # one mosaic per pack
    buf.tofile(out / f"{MOSAIC_STEM}{CODECS[codec]}")
    root = path.resolve()
    files = [str(Path(listing.files[i]).resolve().relative_to(root)) if Path(listing.files[i]).is_absolute()
             else listing.files[i] for i in keep]
    arrays = {"kind": np.array(kind), "classes": np.array(listing.classes), "files": np.array(files),
              "labels": listing.labels[keep].astype(np.int64), "split": split[keep].astype(np.int8),
              "size": np.array(size)}
    if listing.soft is not None:
        arrays["soft"] = listing.soft[keep].astype(np.float32)
    extra = {}
    if ferplus is not None:
        from .ferplus_match import match_ferplus

        found = match_ferplus(images, split[keep], Path(ferplus), progress)
        arrays.update(ferplus_votes=found["votes"], ferplus_files=found["files"], ferplus_mad=found["mad"])
        hit = found["files"] != ""
        extra = {"ferplus_matched": int(hit.sum()),
                 "ferplus_mad": {f"p{q:g}": round(float(np.percentile(found["mad"][hit], q)), 3)
                                 for q in (50, 99, 100)} if hit.any() else {},
                 "ferplus_unmatched_mad_min": round(float(np.nanmin(found["mad"][~hit])), 3)
                 if np.isfinite(found["mad"][~hit]).any() else None}
    np.savez_compressed(out / INDEX, **arrays)
    back = from_mosaic(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), len(images), size)
    err = np.abs(back.astype(np.int16) - images.astype(np.int16))
    stats = {"images": len(images), "bytes": int(buf.size + (out / INDEX).stat().st_size),
             "mean_abs_error": float(err.mean()), "max_abs_error": int(err.max()), "quality": int(quality),
             "codec": codec, **extra}
    (out / "pack.json").write_text(json.dumps(dict(stats, kind=kind, source=str(path)), indent=1))
    return stats


def read_pack(path: str | Path, equalize: bool, view: str | None = None) -> tuple[str, Listing, np.ndarray]:
    """``(dataset kind, listing, images)`` of a pack; images equalised when ``equalize``.

    Args:
        path: the pack folder.
        equalize: histogram equalisation.
        view: None for the pack's own kind, or one of :data:`VIEWS`: the FER+ faces of a pack with FER+ votes,
            labelled by the rules of that folder kind (returned as the kind).

    Raises:
        DataError: not a pack, a damaged one, or a FER+ view of a pack without FER+ votes.
    """
    path = Path(path)
    if not is_pack(path):
        raise DataError(f"{path}: not a dataset pack (expected faces.jpg/.webp/.avif and {INDEX}; make one with "
                        "python -m training.data.pack)")
    try:
        with np.load(path / INDEX, allow_pickle=False) as z:
            kind, size = str(z["kind"]), int(z["size"])
            listing = Listing(classes=tuple(z["classes"].tolist()), files=z["files"].tolist(), labels=z["labels"],
                              split=z["split"], soft=z["soft"] if "soft" in z.files else None)
            votes = z["ferplus_votes"] if "ferplus_votes" in z.files else None
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{path / INDEX}: damaged pack index: {err}") from None
    mosaic_file = mosaic_path(path)
    mosaic = cv2.imdecode(np.fromfile(mosaic_file, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mosaic is None or mosaic.shape[0] * mosaic.shape[1] < len(listing) * size * size:
        raise DataError(f"{mosaic_file}: damaged or truncated mosaic")
    images = from_mosaic(mosaic, len(listing), size)
    if view is not None:
        kind, listing, images = ferplus_view(path, listing, images, votes, view)
    if equalize:
        images = np.stack([cv2.equalizeHist(im) for im in images]) if len(images) else images
    return kind, listing, images


def ferplus_view(path: Path, listing: Listing, images: np.ndarray, votes: np.ndarray | None,
                 view: str) -> tuple[str, Listing, np.ndarray]:
    """The FER+ ``view`` (see :data:`VIEWS`) of a pack's faces: those with votes that the view's rule keeps, with
    :func:`training.data.ferplus.targets`' labels and soft targets, in the pack's (official) splits."""
    if view not in VIEWS:
        raise DataError(f"unknown pack view '{view}': choose {', '.join(VIEWS)}")
    if votes is None:
        raise DataError(f"{path}: this pack has no FER+ votes; rebuild it with python -m training.data.pack --data "
                        f"fer2013=FOLDER --ferplus FERPLUS_FOLDER to use packed_{view}=")
    has = np.flatnonzero(~np.isnan(votes).any(axis=1))
    keep, labels, soft = targets(votes[has].astype(np.float64), strict=view == "ferplus_majority")
    rows = has[keep]
    listing = Listing(classes=CANONICAL_CLASSES, files=[listing.files[i] for i in rows], labels=labels,
                      split=listing.split[rows], soft=soft)
    return view, listing, images[rows]


def main(argv: list[str] | None = None) -> int:
    """``python -m training.data.pack``: pack a dataset for a GPU window."""
    p = argparse.ArgumentParser(prog="python -m training.data.pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="KIND=PATH, e.g. fer2013=../shared/data/fer2013")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--codec", choices=tuple(CODECS), default="jpeg", help="mosaic codec (default jpeg)")
    p.add_argument("--quality", type=int, default=93, help="quality of the mosaic, 0-100 (default 93)")
    p.add_argument("--ferplus", metavar="FOLDER", help="FER+ folder: add its votes to a fer2013 pack (matched by pixels)")
    p.add_argument("--subset", type=int, help="images per split (tests)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        stats = pack_dataset(args.data, args.out, quality=args.quality, subset=args.subset, seed=args.seed,
                             codec=args.codec, ferplus=args.ferplus)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"packed {stats['images']} faces into {args.out}: {stats['bytes'] / 1e6:.1f} MB, mean abs error "
          f"{stats['mean_abs_error']:.3f} grey levels (max {stats['max_abs_error']})")
    if "ferplus_matched" in stats:
        print(f"FER+ votes for {stats['ferplus_matched']} of {stats['images']} faces; MAD of the matches (grey "
              f"levels) {stats['ferplus_mad']}, nearest unmatched face {stats['ferplus_unmatched_mad_min']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
