"""Seeded splits: stratified by class, or by group (no group in two splits); k folds; stratified subsets.

Rules (the same for every dataset kind; :class:`SplitRule` holds the options, one log line per dataset says which
rule was used and how many images and groups went to each split):

- Items whose split the layout fixes (split folders, FER2013 file names, FER+ folders) keep it.
- The other items get a seeded 8:1:1 train/val/test split:

  - **by group** with ``group_by`` (``fer-train --group-by REGEX``): a group is the regex's first capture group
    (its whole match when it has none), searched in each file's name (no folders); every name must match. All
    images of a group land in the same split. Groups are dealt out largest first (ties in seeded order), each to
    the split whose class counts then stay closest to 8:1:1, so the splits are as stratified as whole groups allow;
  - without ``group_by``, **by subject** when every file name follows a known naming (CK+ ``S005_001_00000011.png``
    -> ``S005``, JAFFE ``KA.AN1.39.tiff`` -> ``KA``, KDEF ``AF01ANS.JPG`` -> ``F01``) with at least 3 subjects;
  - else **stratified by class** (per class: round(10 %) to val and to test, at least one each from 3 images on).

- ``folds=K, fold=k`` (``fer-train --folds K``): the same items are dealt into K folds instead (by group or
  stratified, as above); fold k (1..K) is the test split, and the validation split is carved out of the rest.
- A dataset without a validation (or test) split gets one carved out of its training split (10 %, by group or
  stratified as above).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .listing import TEST, TRAIN, UNASSIGNED, VAL, Listing

logger = logging.getLogger(__name__)

THREE_WAY: tuple[float, float, float] = (0.8, 0.1, 0.1)
CARVE_FRACTION = 0.1
SPLIT_NAMES = ("train", "val", "test")

SUBJECT_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^(S\d{2,4})_\d+_\d+", re.IGNORECASE),  # CK+: S005_001_00000011.png
    re.compile(r"^([A-Z]{2})\.[A-Z]{2}\d*\.\d+\.", re.IGNORECASE),  # JAFFE: KA.AN1.39.tiff
    re.compile(r"^[AB]([FM]\d{2})[A-Z]{2}(?:S|HL|HR|FL|FR)\.", re.IGNORECASE),  # KDEF: AF01ANS.JPG (A/B = session)
)


@dataclass(frozen=True)
class SplitRule:
    """How items without a fixed split are split (see the module rules).

    Attributes:
        group_by: regex on file names whose first group (else whole match) is an item's group, e.g. ``^(S\\d+)_``.
        folds: deal the items into this many folds (k-fold cross-validation) instead of 8:1:1.
        fold: the fold (1..folds) that is the test split.
    """

    group_by: str | None = None
    folds: int | None = None
    fold: int | None = None


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


def compile_group_by(pattern: str) -> re.Pattern[str]:
    """The compiled ``group_by`` regex.

    Raises:
        DataError: not a valid regular expression.
    """
    try:
        return re.compile(pattern)
    except re.error as err:
        raise DataError(f"--group-by '{pattern}' is not a valid regular expression: {err}") from None


def groups_by_regex(files: Sequence[str], pattern: str) -> np.ndarray:
    """The group of every file: the first capture group (else the whole match) of ``pattern`` in its name.

    Raises:
        DataError: an invalid regex, or names it does not match (how many matched, and one that did not).
    """
    regex = compile_group_by(pattern)
    ids: list[str] = []
    missed: list[str] = []
    for f in files:
        name = os.path.basename(f)
        match = regex.search(name)
        group = None if match is None else (match.group(1) if regex.groups else match.group(0))
        if group:
            ids.append(group)
        else:
            missed.append(name)
    if missed:
        raise DataError(f"--group-by '{pattern}' matched {len(files) - len(missed)} of {len(files)} file names; "
                        f"it must match every one (e.g. it does not match '{missed[0]}')")
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


def group_parts(labels: np.ndarray, groups: np.ndarray, fractions: Sequence[float],
                rng: np.random.Generator) -> np.ndarray:
    """Assign whole groups to parts, as stratified by class as whole groups allow; every part gets a group.

    Groups go largest first (equal sizes in seeded order), each to the part after which the parts' shares of
    every class (count / (fraction * class total)) differ least (mean over classes of their standard deviation);
    ties go to the part least full overall.
    """
    uniq, inverse = np.unique(groups, return_inverse=True)
    _, cls = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(uniq), cls.max() + 1))
    np.add.at(counts, (inverse, cls), 1)
    frac = np.asarray(fractions, dtype=np.float64)[:, None]
    target = frac * counts.sum(axis=0)  # (parts, classes): the count each part should get
    n_parts = len(fractions)
    fill = np.zeros_like(target)  # share of its target each part holds
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    part_of = np.zeros(len(uniq), dtype=np.int64)
    for g in order:
        add = counts[g] / target  # (parts, classes): what the group adds to each candidate part
        s1, s2 = fill.sum(axis=0), (fill**2).sum(axis=0)
        s1_new = s1 + add
        s2_new = s2 - fill**2 + (fill + add) ** 2
        spread = np.sqrt(np.maximum(s2_new / n_parts - (s1_new / n_parts) ** 2, 0)).mean(axis=1)
        overall = (fill * target).sum(axis=1) / target.sum(axis=1)
        best = np.flatnonzero(spread <= spread.min() + 1e-12)
        p = best[np.argmin(overall[best])]
        part_of[g] = p
        fill[p] += add[p]
    sizes = counts.sum(axis=1)
    for p in range(n_parts):  # a part left without groups takes the smallest group of the part with the most
        if not (part_of == p).any() and len(uniq) >= n_parts:
            donor = np.bincount(part_of, minlength=n_parts).argmax()
            members = np.flatnonzero(part_of == donor)
            part_of[members[np.argmin(sizes[members])]] = p
    return part_of[inverse]


def split_parts(labels: np.ndarray, groups: np.ndarray | None, fractions: Sequence[float],
                rng: np.random.Generator, strict: bool = False) -> np.ndarray:
    """By group when ``groups`` is given (and holds a group per part), else stratified by class.

    Raises:
        DataError: ``strict`` (groups the user asked for) and fewer groups than parts.
    """
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups >= len(fractions):
            return group_parts(labels, groups, fractions, rng)
        if strict:
            raise DataError(f"--group-by found {n_groups} group(s) among {len(labels)} images; splitting them into "
                            f"{len(fractions)} parts needs at least {len(fractions)} groups")
    return stratified_parts(labels, fractions, rng)


def fold_parts(listing: Listing, idx: np.ndarray, groups: np.ndarray | None, folds: int,
               rng: np.random.Generator) -> np.ndarray:
    """The fold (0 .. folds-1) of each item ``idx`` of ``listing``.

    Raises:
        DataError: fewer groups than folds, or (without groups) a class with fewer images than folds.
    """
    labels = listing.labels[idx]
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < folds:
            raise DataError(f"--folds {folds} needs at least {folds} groups (subjects), found {n_groups}; "
                            f"use --folds {max(n_groups, 2)} or fewer")
        return group_parts(labels, groups, [1 / folds] * folds, rng)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        name = listing.classes[classes[counts.argmin()]]
        raise DataError(f"--folds {folds}: class '{name}' has only {counts.min()} image(s) to deal into folds; "
                        f"use --folds {max(counts.min(), 2)} or fewer, or add images")
    return stratified_parts(labels, [1 / folds] * folds, rng)


def needs_split(split: np.ndarray) -> bool:
    """True when some item has no split or the layout lacks a validation or test split."""
    return bool((split == UNASSIGNED).any() or not (split == VAL).any() or not (split == TEST).any())


def complete_splits(listing: Listing, seed: int = 0, rule: SplitRule | None = None) -> np.ndarray:
    """The final split code (TRAIN/VAL/TEST) of every item of ``listing`` (see the module rules).

    Args:
        listing: the dataset's items.
        seed: seed of every random choice.
        rule: the split options (default: none, the plain rules).

    Raises:
        DataError: a bad ``group_by`` (invalid, or not matching every name, or too few groups), folds on a layout
            that fixes every split, or more folds than groups / images of a class.
    """
    rule = rule or SplitRule()
    split = listing.split.astype(np.int8).copy()
    if not needs_split(split) and not rule.folds:
        if rule.group_by:
            logger.warning("%s: --group-by has no effect, the layout fixes every split", where(listing))
        return split
    strict = bool(rule.group_by)
    if rule.group_by:
        groups, how = groups_by_regex(listing.files, rule.group_by), f"by --group-by '{rule.group_by}'"
    else:
        groups = subjects_of(listing.files)
        how = ("stratified by class (--group-by REGEX splits by subject)" if groups is None
               else "by subject (CK+/JAFFE/KDEF file names)")
    free = np.flatnonzero(split == UNASSIGNED)
    if rule.folds:
        if not free.size:
            raise DataError(f"{where(listing)}: --folds deals out only images whose split the layout leaves open, "
                            "and this dataset fixes every split (split folders or official splits)")
        if not 1 <= (rule.fold or 0) <= rule.folds:
            raise DataError(f"fold must be between 1 and {rule.folds}, got {rule.fold}")
        rng = np.random.default_rng([seed, 0])
        sub = None if groups is None else groups[free]
        parts = fold_parts(listing, free, sub, rule.folds, rng)
        split[free] = np.where(parts == rule.fold - 1, TEST, TRAIN)
        how += f", fold {rule.fold} of {rule.folds} as test"
    elif free.size:
        rng = np.random.default_rng([seed, 0])
        sub = None if groups is None else groups[free]
        split[free] = np.array([TRAIN, VAL, TEST], dtype=np.int8)[
            split_parts(listing.labels[free], sub, THREE_WAY, rng, strict)]
    for target in (VAL, TEST):
        train = np.flatnonzero(split == TRAIN)
        if (split == target).any() or train.size < 2:
            continue
        rng = np.random.default_rng([seed, target])
        sub = None if groups is None else groups[train]
        parts = split_parts(listing.labels[train], sub, (1 - CARVE_FRACTION, CARVE_FRACTION), rng, strict)
        split[train[parts == 1]] = target
    logger.info("%s: split %s: %s", where(listing), how, split_counts(split, groups))
    return split


def split_counts(split: np.ndarray, groups: np.ndarray | None) -> str:
    """"train 80, val 10, test 10 images" (plus the groups in each when there are groups)."""
    images = ", ".join(f"{name} {int((split == code).sum())}" for code, name in enumerate(SPLIT_NAMES))
    if groups is None:
        return images + " images"
    counts = ", ".join(f"{name} {len(np.unique(groups[split == code]))}" for code, name in enumerate(SPLIT_NAMES))
    return f"{images} images; {len(np.unique(groups))} groups: {counts}"


def where(listing: Listing) -> str:
    """A short name for a listing in messages: the folder its first and last file share."""
    try:
        return os.path.commonpath([listing.files[0], listing.files[-1]]) or "dataset"
    except (ValueError, IndexError):
        return "dataset"


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
