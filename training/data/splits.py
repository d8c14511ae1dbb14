"""Seeded splits: stratified by class, by subject (no subject in two splits), and stratified subsets.

Rules (the same for every dataset kind):

- Items whose split the layout does not fix get a seeded 8:1:1 train/val/test split: by subject when
  every file name carries a subject id (CK+ ``S005_001_00000011.png`` -> ``S005``, JAFFE
  ``KA.AN1.39.tiff`` -> ``KA``, KDEF ``AF01ANS.JPG`` -> ``F01``), else stratified by class.
- A dataset without a validation (or test) split gets one carved out of its training split
  (10 %, by subject or stratified as above).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from .listing import TEST, TRAIN, UNASSIGNED, VAL, Listing

THREE_WAY: tuple[float, float, float] = (0.8, 0.1, 0.1)
CARVE_FRACTION = 0.1

SUBJECT_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^(S\d{2,4})_\d+_\d+", re.IGNORECASE),  # CK+: S005_001_00000011.png
    re.compile(r"^([A-Z]{2})\.[A-Z]{2}\d*\.\d+\.", re.IGNORECASE),  # JAFFE: KA.AN1.39.tiff
    re.compile(r"^[AB]([FM]\d{2})[A-Z]{2}(?:S|HL|HR|FL|FR)\.", re.IGNORECASE),  # KDEF: AF01ANS.JPG (A/B = session)
)


def parse_subject(file_name: str) -> str | None:
    """Subject id from a file name (CK+, JAFFE or KDEF naming), or ``None``."""
    base = os.path.basename(file_name)
    for pattern in SUBJECT_PATTERNS:
        match = pattern.match(base)
        if match:
            return match.group(1).upper()
    return None


def subjects_of(files: Sequence[str]) -> np.ndarray | None:
    """Subject ids of all files, or ``None`` unless every name parses and there are at least 3 subjects."""
    ids = [parse_subject(f) for f in files]
    if not ids or any(s is None for s in ids) or len(set(ids)) < 3:
        return None
    return np.array(ids)


def stratified_parts(labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Assign each item a part (0 .. len(fractions)-1), per class in the given proportions.

    Parts after the first get ``round(fraction * n)`` items of each class, and at least one when the
    class has at least ``len(fractions)`` items; part 0 gets the rest.
    """
    parts = np.zeros(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for p, frac in enumerate(fractions[1:], start=1):
            k = int(np.floor(frac * len(idx) + 0.5))
            if k == 0 and len(idx) >= len(fractions):
                k = 1
            parts[idx[start : start + k]] = p
            start += k
    return parts


def subject_parts(groups: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Assign whole subjects to parts so that image counts follow ``fractions``; every part gets a subject."""
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    bounds = np.cumsum(fractions) * len(groups)
    part_of = np.zeros(len(uniq), dtype=np.int64)
    done = 0
    for k in rng.permutation(len(uniq)):
        middle = done + counts[k] / 2
        part_of[k] = min(int(np.searchsorted(bounds, middle, side="right")), len(fractions) - 1)
        done += counts[k]
    for p in range(len(fractions)):  # a part left without subjects takes one from the fullest part
        if not (part_of == p).any() and len(uniq) >= len(fractions):
            fullest = np.bincount(part_of, minlength=len(fractions)).argmax()
            part_of[np.flatnonzero(part_of == fullest)[-1]] = p
    return part_of[inverse]


def split_parts(
    labels: np.ndarray, groups: np.ndarray | None, fractions: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """By subject when ``groups`` is given, else stratified by class."""
    if groups is not None and len(np.unique(groups)) >= len(fractions):
        return subject_parts(groups, fractions, rng)
    return stratified_parts(labels, fractions, rng)


def complete_splits(listing: Listing, seed: int = 0) -> np.ndarray:
    """The final split code (TRAIN/VAL/TEST) of every item of ``listing`` (see the module rules)."""
    split = listing.split.astype(np.int8).copy()
    groups = subjects_of(listing.files)
    free = np.flatnonzero(split == UNASSIGNED)
    if free.size:
        rng = np.random.default_rng([seed, 0])
        sub = None if groups is None else groups[free]
        split[free] = np.array([TRAIN, VAL, TEST], dtype=np.int8)[split_parts(listing.labels[free], sub, THREE_WAY, rng)]
    for target in (VAL, TEST):
        train = np.flatnonzero(split == TRAIN)
        if (split == target).any() or train.size < 2:
            continue
        rng = np.random.default_rng([seed, target])
        sub = None if groups is None else groups[train]
        parts = split_parts(listing.labels[train], sub, (1 - CARVE_FRACTION, CARVE_FRACTION), rng)
        split[train[parts == 1]] = target
    return split


def subset_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` items, stratified by class (largest remainder), seeded.

    Every class present gets at least one item when ``n`` allows it. All items when ``n >= len(labels)``.
    """
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 7])
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / counts.sum()
    take = np.floor(quota).astype(np.int64)
    if n >= len(classes):
        take = np.maximum(take, 1)
    while take.sum() > n:  # minimum of one per class overshot: trim the largest
        take[take.argmax()] -= 1
    for k in np.argsort(-(quota - take), kind="stable"):  # hand out the rest by largest remainder
        if take.sum() >= n:
            break
        if take[k] < counts[k]:
            take[k] += 1
    idx = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(idx))
