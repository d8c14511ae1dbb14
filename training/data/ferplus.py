"""FER+ in the official layout: ``FER2013{Train,Valid,Test}/fer<row>.png`` + ``label.csv`` per folder.

Each ``label.csv`` row (no header): ``file name, "(x, y, w, h)"``, then ten vote counts in the
order of :data:`VOTE_COLUMNS` (neutral .. contempt, unknown, NF).

Label rule (plurality vote, ``ferplus``/``ferplus_soft``): the label is the argmax over all ten counts,
ties going to the first column in the FER+ order above. Images whose label is ``unknown`` or ``NF`` (or
that got no emotion vote) are dropped. The same images are kept for hard and soft targets; the soft
target is the eight emotion counts divided by their sum (so its argmax is the label, up to ties).

``ferplus_majority`` applies the official FER+ generator's stricter "majority" rule instead: single votes
are removed as outliers, and a face keeps its label only when that label then holds more than half of the
votes; the others (the most ambiguous faces) are dropped. Published FER+ accuracies mostly use this rule.
Classes are the eight canonical classes in canonical order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_core.labels import CANONICAL_CLASSES, normalize_label

from .errors import DataError
from .listing import TEST, TRAIN, VAL, Listing

VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)
N_EMOTIONS = 8
FOLDERS: dict[str, int] = {"FER2013Train": TRAIN, "FER2013Valid": VAL, "FER2013Test": TEST}
#: Canonical index of each FER+ emotion column.
TO_CANONICAL = np.array([CANONICAL_CLASSES.index(normalize_label(c)) for c in VOTE_COLUMNS[:N_EMOTIONS]])


def read_votes(label_csv: Path) -> tuple[list[str], np.ndarray]:
    """File names and vote counts (N, 10) of one ``label.csv``; rows with an empty name are skipped.

    Raises:
        DataError: unreadable file or a row without the twelve fields, naming file and line.
    """
    names: list[str] = []
    votes: list[list[float]] = []
    try:
        with open(label_csv, newline="", encoding="utf-8-sig") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                if not row or not row[0].strip():
                    continue
                if len(row) != 2 + len(VOTE_COLUMNS):
                    raise DataError(
                        f"{label_csv}: line {line_no}: {len(row)} fields, expected {2 + len(VOTE_COLUMNS)} "
                        f"(file name, face box, votes {','.join(VOTE_COLUMNS)})"
                    )
                try:
                    counts = [float(v) for v in row[2:]]
                except ValueError:
                    raise DataError(f"{label_csv}: line {line_no}: vote counts must be numbers: {row[2:]}") from None
                if min(counts) < 0:
                    raise DataError(f"{label_csv}: line {line_no}: negative vote count")
                names.append(row[0].strip())
                votes.append(counts)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{label_csv}: cannot read: {err}") from None
    return names, np.array(votes, dtype=np.float64).reshape(-1, len(VOTE_COLUMNS))


def majority(votes: np.ndarray, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Label (FER+ column index) of each row and the mask of rows kept (an emotion won).

    Args:
        votes: (N, 10) vote counts.
        strict: the official rule: drop single votes, then the winner needs more than half of the rest.
    """
    if strict:
        votes = np.where(votes > 1, votes, 0)
    winner = votes.argmax(axis=1)  # first maximum: ties go to the earlier FER+ column
    keep = (winner < N_EMOTIONS) & (votes[:, :N_EMOTIONS].sum(axis=1) > 0)
    if strict:
        keep &= votes.max(axis=1) > 0.5 * votes.sum(axis=1)
    return winner, keep


def targets(votes: np.ndarray, strict: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keep, labels, soft)`` of (N, 10) vote counts: the rows the rule keeps, their canonical labels and
    their vote distributions over the canonical classes (see the module docstring)."""
    winner, keep = majority(votes, strict)
    emotions = votes[keep, :N_EMOTIONS]
    soft = np.zeros((len(emotions), len(CANONICAL_CLASSES)), dtype=np.float32)
    soft[:, TO_CANONICAL] = emotions / emotions.sum(axis=1, keepdims=True)
    return keep, TO_CANONICAL[winner[keep]].astype(np.int64), soft


def read_ferplus(root: Path, strict: bool = False) -> Listing:
    """List FER+ (see the module docstring); ``soft`` always holds the vote distributions.

    ``strict`` keeps only the faces the official majority rule labels (``ferplus_majority``).

    Raises:
        DataError: no FER2013Train/Valid/Test folder, or a folder without ``label.csv``.
    """
    present = [(root / name, code) for name, code in FOLDERS.items() if (root / name).is_dir()]
    if not present:
        raise DataError(f"{root}: not a FER+ folder: expected {', '.join(FOLDERS)} sub-folders, each with label.csv")
    files: list[str] = []
    labels: list[np.ndarray] = []
    soft: list[np.ndarray] = []
    split: list[np.ndarray] = []
    for folder, code in present:
        label_csv = folder / "label.csv"
        if not label_csv.is_file():
            raise DataError(f"{folder}: label.csv is missing (FER+ vote counts)")
        names, votes = read_votes(label_csv)
        keep, hard, dist = targets(votes, strict)
        files.extend(str(folder / n) for n, k in zip(names, keep) if k)
        labels.append(hard)
        soft.append(dist)
        split.append(np.full(len(hard), code, dtype=np.int8))
    return Listing(
        classes=CANONICAL_CLASSES,
        files=files,
        labels=np.concatenate(labels).astype(np.int64),
        split=np.concatenate(split),
        soft=np.concatenate(soft),
    )
