"""Folder datasets of small posed sets: subject-independent splits, k folds, and one-line errors for bad input.

Everything runs on tiny synthetic image folders written to tmp_path (random 24 px faces; names like CK+'s, but
with a ``P`` so that only ``--group-by`` groups them).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from training.cli import train_main
from training.data import DataError, load_data
from training.data.listing import TEST, TRAIN, UNASSIGNED, VAL, Listing
from training.data.splits import SplitRule, complete_splits
from training.kfold import spread

GROUP_BY = r"^(P\d+)_"
CLASSES = ("angry", "happy", "sad")


def write_folder(root: Path, subjects: int = 12, per_class: int = 2, classes: tuple[str, ...] = CLASSES,
                 seed: int = 0) -> Path:
    """``root/<class>/P<subject>_<take>.png``: every subject posed ``per_class`` times in every class."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for s in range(1, subjects + 1):
            for take in range(per_class):
                img = rng.integers(0, 256, (24, 24), dtype=np.uint8)
                cv2.imwrite(str(root / cls / f"P{s:02d}_{take:03d}.png"), img)
    return root


def make_listing(labels: list[int], subjects: list[int], classes: tuple[str, ...] = CLASSES) -> Listing:
    """A listing of file names only (no images): ``/d/<class>/P<subject>_<i>.png``."""
    files = [f"/d/{classes[c]}/P{s:02d}_{i:04d}.png" for i, (c, s) in enumerate(zip(labels, subjects))]
    return Listing(classes=classes, files=files, labels=np.array(labels, dtype=np.int64),
                   split=np.full(len(labels), UNASSIGNED, dtype=np.int8))


def subject_of(path: str) -> str:
    return re.match(GROUP_BY, Path(path).name).group(1)


def groups_by_split(split: np.ndarray, files: list[str]) -> list[set[str]]:
    return [{subject_of(f) for f, s in zip(files, split) if s == code} for code in (TRAIN, VAL, TEST)]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("fer-train: error:")]


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = train_main([*args, "--device", "cpu", "--no-progress"])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# the split rules, on listings (no images)
# ------------------------------------------------------------------------------------------------


def test_group_split_keeps_subjects_apart_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    labels, subjects = [], []
    for s in range(40):  # subjects of 2-9 images, of one to three classes each
        for _ in range(int(rng.integers(2, 10))):
            labels.append(int(rng.integers(0, 3)))
            subjects.append(s)
    listing = make_listing(labels, subjects)
    rule = SplitRule(group_by=GROUP_BY)
    split = complete_splits(listing, seed=0, rule=rule)
    parts = groups_by_split(split, listing.files)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])  # no subject in two splits
    assert sum(len(p) for p in parts) == 40 and all(parts)
    shares = np.bincount(split, minlength=3) / len(split)
    assert abs(shares[0] - 0.8) < 0.05 and abs(shares[1] - 0.1) < 0.04 and abs(shares[2] - 0.1) < 0.04
    assert np.array_equal(split, complete_splits(listing, seed=0, rule=rule))  # reproducible
    assert not np.array_equal(split, complete_splits(listing, seed=1, rule=rule))  # and the seed matters


def test_group_split_is_stratified_as_far_as_groups_allow() -> None:
    """30 subjects of one class each (10 per class): val and test each get a subject of every class."""
    labels = [s % 3 for s in range(30) for _ in range(4)]
    subjects = [s for s in range(30) for _ in range(4)]
    listing = make_listing(labels, subjects)
    for seed in range(5):
        split = complete_splits(listing, seed=seed, rule=SplitRule(group_by=GROUP_BY))
        for code in (VAL, TEST):
            assert sorted(set(listing.labels[split == code])) == [0, 1, 2], (seed, code)
        assert np.bincount(split, minlength=3).tolist() == [96, 12, 12]


def test_stratified_split_without_groups_is_8_1_1() -> None:
    listing = make_listing([0] * 10 + [1] * 10 + [2] * 30, list(range(50)))
    listing.files = [f"/d/x/img_{i:03d}.png" for i in range(50)]  # no subject ids: stratified by class
    split = complete_splits(listing, seed=0, rule=SplitRule())
    counts = [np.bincount(listing.labels[split == code], minlength=3).tolist() for code in (TRAIN, VAL, TEST)]
    assert counts == [[8, 8, 24], [1, 1, 3], [1, 1, 3]]
    assert np.array_equal(split, complete_splits(listing, seed=0))
    assert not np.array_equal(split, complete_splits(listing, seed=3))


@pytest.mark.parametrize("group_by", [GROUP_BY, None])
def test_folds_are_disjoint_and_cover_every_image(group_by: str | None) -> None:
    labels = [s % 3 for s in range(20) for _ in range(3)]
    subjects = [s for s in range(20) for _ in range(3)]
    listing = make_listing(labels, subjects)
    if group_by is None:
        listing.files = [f"/d/x/img_{i:03d}.png" for i in range(len(labels))]
    tests = []
    for k in range(1, 5):
        split = complete_splits(listing, seed=0, rule=SplitRule(group_by=group_by, folds=4, fold=k))
        assert (split == TRAIN).any() and (split == VAL).any() and (split == TEST).any()
        tests.append(np.flatnonzero(split == TEST))
        if group_by:
            parts = groups_by_split(split, listing.files)
            assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        else:  # stratified: every class in every test fold
            assert sorted(set(listing.labels[split == TEST])) == [0, 1, 2]
    everything = np.concatenate(tests)
    assert len(everything) == len(labels) and len(set(everything.tolist())) == len(labels)  # each image once
    assert all(10 <= len(t) <= 20 for t in tests)  # about a quarter each


def test_split_rule_reaches_load_data(tmp_path: Path, caplog) -> None:
    root = write_folder(tmp_path / "faces", subjects=10, per_class=1)
    with caplog.at_level(logging.INFO, logger="training.data.splits"):
        data = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", cache_size=24, progress=False,
                         split_rule=SplitRule(group_by=GROUP_BY))
    parts = [{subject_of(f) for f in data.split(name).files} for name in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    lines = [r.getMessage() for r in caplog.records if "split by --group-by" in r.getMessage()]
    assert len(lines) == 1 and "10 groups: train 8, val 1, test 1" in lines[0]


def test_spread() -> None:
    s = spread([0.5, 0.7, 0.6])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    assert (s["min"], s["max"]) == (0.5, 0.7)


# ------------------------------------------------------------------------------------------------
# k-fold cross-validation, end to end (tiny model, 1 epoch)
# ------------------------------------------------------------------------------------------------


def test_kfold_run_writes_each_fold_and_the_summary(tmp_path: Path, capsys) -> None:
    root = write_folder(tmp_path / "faces", subjects=9, per_class=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = train_main(["--model", "ctan_test", "--data", f"folder={root}", "--group-by", GROUP_BY,
                           "--folds", "3", "--epochs", "1", "--img-size", "32", "--cache-size", "24",
                           "--batch-size", "16", "--warmup-epochs", "1", "--cache-dir", str(tmp_path / "cache"),
                           "--project", str(tmp_path / "runs"), "--name", "cv", "--device", "cpu", "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert code == 0
    base = tmp_path / "runs" / "cv"
    summary = json.loads((base / "folds.json").read_text())
    assert summary["folds"] == 3 and summary["group_by"] == GROUP_BY and len(summary["runs"]) == 3
    for k, run in enumerate(summary["runs"], start=1):
        assert Path(run["run_dir"]) == base / f"fold{k}" and (base / f"fold{k}" / "best.pt").is_file()
        cfg = yaml.safe_load((base / f"fold{k}" / "config.yaml").read_text())
        assert (cfg["folds"], cfg["fold"], cfg["group_by"]) == (3, k, GROUP_BY)
        report = json.loads((base / f"fold{k}" / "report.json").read_text())
        assert run["accuracy"] == report["tta"]["none"]["accuracy"]
        assert run["macro_f1"] == report["tta"]["none"]["macro_f1"]
    assert sum(r["test_images"] for r in summary["runs"]) == 9 * 2 * 3  # every image tested once
    for metric in ("accuracy", "macro_f1"):
        values = [r[metric] for r in summary["runs"]]
        assert summary[metric]["mean"] == pytest.approx(np.mean(values))
        assert summary[metric]["std"] == pytest.approx(np.std(values, ddof=1))
        assert (summary[metric]["min"], summary[metric]["max"]) == (min(values), max(values))
    table = out.splitlines()
    assert table[0].split() == ["fold", "test", "images", "accuracy", "macro-F1"]
    assert [line.split()[0] for line in table[1:7]] == ["1", "2", "3", "mean", "std", "min-max"]
    assert f"{summary['accuracy']['mean']:.4f}" in table[4] and str(base / "folds.json") in out


# ------------------------------------------------------------------------------------------------
# bad input: one line, exit code 2
# ------------------------------------------------------------------------------------------------


def base_args(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    return ["--model", "ctan_test", "--data", f"folder={root}", "--epochs", "1", "--img-size", "32",
            "--cache-size", "24", "--cache-dir", str(tmp_path / "cache"), "--project", str(tmp_path / "runs"),
            *extra]


def assert_one_error(code: int, err: str, *needles: str) -> str:
    assert code == 2 and "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_one_class_folder(tmp_path: Path, capsys) -> None:
    root = write_folder(tmp_path / "faces", subjects=4, classes=("happy",))
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root)), "only one class has images ('happy')")


def test_empty_class_folders_are_skipped(tmp_path: Path, capsys, caplog) -> None:
    root = write_folder(tmp_path / "faces", subjects=5, per_class=1, classes=("happy", "sad"))
    (root / "fear").mkdir()
    (root / "anger").mkdir()
    with caplog.at_level(logging.WARNING):
        data = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", cache_size=24, progress=False)
    assert data.classes == ("happy", "sad")
    warned = [r.getMessage() for r in caplog.records if "without images" in r.getMessage()]
    assert len(warned) == 1 and "anger, fear" in warned[0]

    lone = write_folder(tmp_path / "lone", subjects=4, classes=("happy",))
    (lone / "sad").mkdir()
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, lone)), "only one class has images")


def test_unreadable_images(tmp_path: Path, capsys, caplog) -> None:
    root = write_folder(tmp_path / "faces", subjects=5, per_class=1)
    for name in ("P90_000.png", "P91_000.png"):
        (root / "happy" / name).write_bytes(b"not an image")
    line = assert_one_error(*run_cli(capsys, *base_args(tmp_path, root)), "unreadable", "--skip-bad")
    assert str(root / "happy") in line
    with caplog.at_level(logging.WARNING):
        data = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", cache_size=24, skip_bad=True,
                         progress=False)
    assert data.skipped == 2 and len(data.train) + len(data.val) + len(data.test) == 15
    skipped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(skipped) == 1 and "skipped 2 unreadable images, e.g. " in skipped[0]

    broken = tmp_path / "broken"
    for cls in ("happy", "sad"):
        (broken / cls).mkdir(parents=True)
        for k in range(3):
            (broken / cls / f"P{k:02d}_000.png").write_bytes(b"")
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, broken, "--skip-bad")), "none of its 6 images")


def test_bad_group_by(tmp_path: Path, capsys) -> None:
    root = write_folder(tmp_path / "faces", subjects=4, per_class=1)
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--group-by", "^(P\\d+")),
                     "not a valid regular expression")
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--group-by", r"^(S\d+)_")),
                     "matched 0 of 12 file names", "does not match 'P0")
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--group-by", r"^(P)")),
                     "found 1 group(s)")
    (root / "happy" / "odd_name.png").write_bytes((root / "happy" / "P01_000.png").read_bytes())
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--group-by", GROUP_BY)),
                     "matched 12 of 13 file names", "'odd_name.png'")


def test_too_many_folds(tmp_path: Path, capsys) -> None:
    root = write_folder(tmp_path / "faces", subjects=4, per_class=1)
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--group-by", GROUP_BY, "--folds", "5")),
                     "--folds 5 needs at least 5 groups", "found 4")
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--folds", "5")),
                     "has only 4 image(s)", "--folds 4 or fewer")
    assert_one_error(*run_cli(capsys, *base_args(tmp_path, root, "--folds", "1")), "folds must be at least 2")
    assert not (tmp_path / "runs").exists()  # nothing trained, no folder left behind


def test_folds_need_images_without_a_fixed_split(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    write_folder(root / "train", subjects=4, per_class=1)
    write_folder(root / "test", subjects=2, per_class=1, seed=1)
    with pytest.raises(DataError, match="fixes every split"):
        load_data([f"folder={root}"], cache_dir=tmp_path / "cache", cache_size=24, progress=False,
                  split_rule=SplitRule(folds=3, fold=1))


def test_split_options_are_config_fields() -> None:
    from training.config import ConfigError, build_config

    cfg = build_config({"data": ["folder=x"], "group_by": GROUP_BY, "folds": 5})  # as a plan's YAML gives them
    assert (cfg.group_by, cfg.folds, cfg.fold) == (GROUP_BY, 5, None)
    assert cfg.split_rule() == SplitRule(group_by=GROUP_BY, folds=5)
    with pytest.raises(ConfigError, match="fold must be between 1 and folds"):
        build_config({"folds": 5, "fold": 6})
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        build_config({"group_by": "(P"})
