"""On-disk cache of decoded datasets: one uncompressed ``.npz`` per (dataset, cache size, equalize).

The key hashes the reader kind, the absolute path, the number of files below it with their total
size and modification times, the cache size, the equalize flag and :data:`CACHE_VERSION`; editing,
adding or removing a file therefore makes a new entry. Files are written atomically (temporary
file + ``os.replace``), so an interrupted run never leaves a half-written cache.
Default folder: ``platformdirs.user_cache_dir("fer-app")/datasets``, or ``$FER_DATA_CACHE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .listing import Listing

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$FER_DATA_CACHE`` if set, else ``<user cache dir>/fer-app/datasets``."""
    env = os.environ.get("FER_DATA_CACHE")
    if env:
        return Path(env)
    try:  # platformdirs is not everywhere (a bare GPU box); the cache is then under ~/.cache
        import platformdirs
    except ImportError:
        return Path.home() / ".cache" / "fer-app" / "datasets"
    return Path(platformdirs.user_cache_dir("fer-app")) / "datasets"


def tree_stats(path: Path) -> tuple[int, int, int]:
    """(file count, total bytes, total mtime in ns) of a file or of every visible file below a folder."""
    if path.is_file():
        st = path.stat()
        return 1, st.st_size, st.st_mtime_ns
    count = size = mtime = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    count, size, mtime = count + 1, size + st.st_size, mtime + st.st_mtime_ns
    return count, size, mtime


def cache_file(cache_dir: Path, kind: str, path: Path, cache_size: int, equalize: bool) -> Path:
    """Cache file name for a dataset: ``<kind>-<folder name>-<hash>.npz``."""
    path = path.resolve()
    count, size, mtime = tree_stats(path)
    key = json.dumps(
        {"kind": kind, "path": str(path), "files": count, "bytes": size, "mtime": mtime,
         "cache_size": cache_size, "equalize": equalize, "version": CACHE_VERSION},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)[:40]
    return Path(cache_dir) / f"{kind}-{slug}-{cache_size}{'e' if equalize else ''}-{digest}.npz"


def save(file: Path, listing: Listing, images: np.ndarray, ok: np.ndarray) -> None:
    """Write a decoded dataset atomically; a failure only logs a warning."""
    arrays = {
        "classes": np.array(listing.classes),
        "files": np.array(listing.files),
        "labels": listing.labels,
        "split": listing.split,
        "images": images,
        "ok": ok,
    }
    if listing.soft is not None:
        arrays["soft"] = listing.soft
    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, file)
    except OSError as err:
        logger.warning("could not write the dataset cache %s: %s", file, err)
        tmp.unlink(missing_ok=True)


def load(file: Path) -> tuple[Listing, np.ndarray, np.ndarray] | None:
    """``(listing, images, ok)`` from a cache file, or ``None`` when absent or unreadable."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            listing = Listing(
                classes=tuple(z["classes"].tolist()),
                files=z["files"].tolist(),
                labels=z["labels"],
                split=z["split"],
                soft=z["soft"] if "soft" in z.files else None,
            )
            return listing, z["images"], z["ok"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        logger.warning("ignoring the unreadable dataset cache %s: %s", file, err)
        return None
