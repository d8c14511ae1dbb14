"""Parsing dataset specs such as ``fer2013=PATH`` (the ``--data`` command-line values)."""

from __future__ import annotations

from pathlib import Path

from fer_core.suggest import did_you_mean

from .errors import DataError

#: Valid dataset kinds and what they read.
KINDS: dict[str, str] = {
    "fer2013": "FER2013: Kaggle folders (train/<class>, test/<class>) or the original fer2013.csv",
    "ferplus": "FER+: FER2013Train/Valid/Test + label.csv, plurality-vote labels",
    "ferplus_soft": "FER+ with the vote distribution as soft targets",
    "ferplus_majority": "FER+ with the official strict-majority labels (ambiguous faces dropped)",
    "folder": "any class-per-folder dataset (CK+48, JAFFE, KDEF, RAF-DB style)",
    "packed": "a dataset pack (python -m training.data.pack): any of the above as one JPEG mosaic + index",
    "packed_ferplus": "the FER+ view of a FER2013 pack built with --ferplus: labels as ferplus",
    "packed_ferplus_soft": "the FER+ view of a FER2013 pack built with --ferplus: soft targets as ferplus_soft",
    "packed_ferplus_majority": "the FER+ view of a FER2013 pack built with --ferplus: labels as ferplus_majority",
}


def check_kind(kind: str) -> str:
    """Return ``kind`` normalised (lower case, '-' -> '_').

    Raises:
        DataError: for an unknown kind, with a "did you mean" hint and the valid kinds.
    """
    key = kind.strip().lower().replace("-", "_")
    if key in KINDS:
        return key
    hint = did_you_mean(key, KINDS, cutoff=0.5)
    raise DataError(f"unknown dataset kind '{kind}'.{hint} Valid kinds: {', '.join(KINDS)}")


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``KIND=PATH`` into a valid kind and an existing path.

    Raises:
        DataError: malformed spec, unknown kind or a path that does not exist.
    """
    kind, sep, path = spec.partition("=")
    if not sep or not kind.strip() or not path.strip():
        raise DataError(f"bad dataset spec '{spec}': expected KIND=PATH, e.g. fer2013=data/fer2013 (kinds: {', '.join(KINDS)})")
    kind = check_kind(kind)
    where = Path(path.strip()).expanduser()
    if not where.exists():
        raise DataError(f"{where}: dataset path not found (from '{spec}')")
    return kind, where
