"""Dataset readers on the real data in ../shared/data, plus small datasets built in tmp_path from real images."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.labels import CANONICAL_CLASSES, FER2013_CLASSES, normalize_label
from fer_core.preprocess import prepare_gray
from training.data import DataError, FaceData, load_data
from training.data import images as images_module
from training.data.cache import cache_file
from training.data.ferplus import majority, read_ferplus
from training.data.listing import TEST
from training.data.splits import parse_subject, subset_indices

FER2013_TRAIN_COUNTS = {
    "angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171,
}
FERPLUS_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
FERPLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="module")
def fer2013(fer2013_root: Path, cache_dir: Path) -> FaceData:
    """The full FER2013 from the Kaggle folders, decoded once (fills the module's cache)."""
    start = time.perf_counter()
    data = load_data([f"fer2013={fer2013_root}"], cache_dir=cache_dir, progress=False)
    logging.getLogger(__name__).info("full FER2013 decode: %.1f s", time.perf_counter() - start)
    return data


@pytest.fixture(scope="module")
def ferplus_soft(ferplus_root: Path, cache_dir: Path) -> FaceData:
    """The full FER+ with vote distributions, decoded once (fills the module's cache)."""
    return load_data([f"ferplus_soft={ferplus_root}"], cache_dir=cache_dir, progress=False)


def real_images(fer2013_root: Path, cls: str, prefix: str, n: int, folder: str = "train") -> list[Path]:
    """The first ``n`` FER2013 images of a class with a file-name prefix."""
    names = sorted(f for f in os.listdir(fer2013_root / folder / cls) if f.startswith(prefix))
    return [fer2013_root / folder / cls / f for f in names[:n]]


def make_ck_folder(root: Path, fer2013_root: Path, subjects: int = 10, per_class: int = 2) -> Path:
    """A CK+-style folder dataset with synonym class names, from copied real FER2013 images."""
    sources = {"anger": "angry", "happiness": "happy", "sadness": "sad", "neutrality": "neutral", "contempt": "disgust"}
    for folder, fer_cls in sources.items():
        (root / folder).mkdir(parents=True)
        files = real_images(fer2013_root, fer_cls, "Training_", subjects * per_class)
        for k, src in enumerate(files):
            subject, take = divmod(k, per_class)
            shutil.copy(src, root / folder / f"S{(subject + 1) * 10:03d}_{take + 1:03d}_{k:08d}.jpg")
    return root


def write_fer2013_csv(path: Path, fer2013_root: Path) -> list[tuple[int, str, np.ndarray]]:
    """A fer2013.csv with 35 real images (per class: 3 Training, 1 PublicTest, 1 PrivateTest)."""
    rows: list[tuple[int, str, np.ndarray]] = []
    for cls in FER2013_CLASSES:
        picks = [(p, "Training") for p in real_images(fer2013_root, cls, "Training_", 3)]
        picks += [(p, "PublicTest") for p in real_images(fer2013_root, cls, "PublicTest_", 1, "test")]
        picks += [(p, "PrivateTest") for p in real_images(fer2013_root, cls, "PrivateTest_", 1, "test")]
        for p, usage in picks:
            rows.append((FER2013_CLASSES.index(cls), usage, cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for emotion, usage, img in rows:
            writer.writerow([emotion, " ".join(map(str, img.ravel())), usage])
    return rows


# ------------------------------------------------------------------------------------------------
# FER2013 (Kaggle folders, real data)
# ------------------------------------------------------------------------------------------------


def test_fer2013_official_split(fer2013: FaceData, fer2013_root: Path) -> None:
    assert (len(fer2013.train), len(fer2013.val), len(fer2013.test)) == (28709, 3589, 3589)
    assert fer2013.classes == FER2013_CLASSES
    assert fer2013.name == "fer2013" and fer2013.native_size == 48 and fer2013.equalize
    counts = dict(zip(fer2013.classes, fer2013.train.class_counts().tolist()))
    assert counts == FER2013_TRAIN_COUNTS
    for cls in FER2013_CLASSES:  # val + test together are exactly the test folder of each class
        i = fer2013.classes.index(cls)
        in_folder = len(os.listdir(fer2013_root / "test" / cls))
        assert fer2013.val.class_counts()[i] + fer2013.test.class_counts()[i] == in_folder
    for split, prefix in ((fer2013.train, "Training_"), (fer2013.val, "PublicTest_"), (fer2013.test, "PrivateTest_")):
        assert all(Path(f).name.startswith(prefix) for f in split.files)
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (48, 48)
        assert split.labels.dtype == np.int64 and split.soft is None
    # labels follow the class folder, images are prepare_gray of the file
    for k in (0, 1000, 20000):
        path = Path(fer2013.train.files[k])
        assert fer2013.classes[fer2013.train.labels[k]] == normalize_label(path.parent.name)
        expected = prepare_gray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), native_size=48, equalize=True)
        assert np.array_equal(fer2013.train.images[k], expected)


def test_fer2013_cache_is_hit(fer2013: FaceData, fer2013_root: Path, cache_dir: Path, monkeypatch) -> None:
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds the dataset")

    monkeypatch.setattr("training.data.readers.decode_all", no_decode)
    wall, cpu = time.perf_counter(), time.process_time()
    again = load_data([f"fer2013={fer2013_root}"], cache_dir=cache_dir, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    logging.getLogger(__name__).info("cached FER2013 load: %.2f s wall, %.2f s cpu", wall, cpu)
    assert cpu < 2.0  # CPU time: robust on a shared machine
    assert not list(cache_dir.glob("*.tmp"))  # atomic writes leave no temporary file
    for name in ("train", "val", "test"):
        a, b = fer2013.split(name), again.split(name)
        assert a.files == b.files and np.array_equal(a.labels, b.labels) and np.array_equal(a.images, b.images)


def test_fer2013_subset_from_cache(fer2013: FaceData, fer2013_root: Path, cache_dir: Path) -> None:
    spec = [f"fer2013={fer2013_root}"]
    a = load_data(spec, cache_dir=cache_dir, subset=50, seed=1, progress=False)
    b = load_data(spec, cache_dir=cache_dir, subset=50, seed=1, progress=False)
    c = load_data(spec, cache_dir=cache_dir, subset=50, seed=2, progress=False)
    assert (len(a.train), len(a.val), len(a.test)) == (50, 50, 50)
    assert (a.train.class_counts() > 0).all()  # stratified: every class present, disgust included
    assert a.train.files == b.train.files and a.train.files != c.train.files
    assert set(a.test.files) <= set(fer2013.test.files)


def test_subset_decodes_only_the_chosen_images(fer2013_root: Path, tmp_path: Path, monkeypatch) -> None:
    decoded: list[int] = []
    real = images_module.decode_all

    def counting(sources, *args, **kwargs):
        decoded.append(len(sources))
        return real(sources, *args, **kwargs)

    monkeypatch.setattr("training.data.readers.decode_all", counting)
    data = load_data([f"fer2013={fer2013_root}"], cache_dir=tmp_path, subset=20, progress=False)
    assert (len(data.train), len(data.val), len(data.test)) == (20, 20, 20)
    assert decoded == [60] and not list(tmp_path.iterdir())  # partial decodes are not cached


# ------------------------------------------------------------------------------------------------
# FER+ (real data)
# ------------------------------------------------------------------------------------------------


def expected_ferplus_labels(label_csv: Path) -> dict[str, str]:
    """Independent plurality rule: file name -> canonical label, for rows won by an emotion."""
    out: dict[str, str] = {}
    with open(label_csv, newline="") as f:
        for row in csv.reader(f):
            votes = [int(v) for v in row[2:]]
            best = max(range(10), key=lambda i: (votes[i], -i))  # highest count, earliest column on ties
            if best < 8:
                out[row[0]] = normalize_label(FERPLUS_COLUMNS[best])
    return out


def test_ferplus_majority_and_soft(ferplus_soft: FaceData, ferplus_root: Path, cache_dir: Path) -> None:
    hard = load_data([f"ferplus={ferplus_root}"], cache_dir=cache_dir, progress=False)  # same cache entry
    assert hard.classes == ferplus_soft.classes == CANONICAL_CLASSES
    assert hard.name == "ferplus" and ferplus_soft.name == "ferplus_soft"
    for name, folder in FERPLUS_FOLDERS.items():
        split, soft_split = hard.split(name), ferplus_soft.split(name)
        n_files = len([f for f in os.listdir(ferplus_root / folder) if f.endswith(".png")])
        assert 0 < len(split) <= n_files
        assert (split.class_counts() > 0).all()  # all eight classes present
        assert split.soft is None and split.files == soft_split.files
        assert np.array_equal(split.labels, soft_split.labels)
        soft = soft_split.soft
        assert soft.shape == (len(split), 8) and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
        assert np.allclose(soft[np.arange(len(soft)), soft_split.labels], soft.max(axis=1))
        expected = expected_ferplus_labels(ferplus_root / folder / "label.csv")
        got = {Path(f).name: hard.classes[i] for f, i in zip(split.files, split.labels)}
        assert got == expected
    assert 28000 < len(hard.train) < 28709  # unknown/NF-majority images dropped, most kept


def test_ferplus_strict_majority_rule(ferplus_root: Path) -> None:
    votes = np.array([
        [6, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # 6 of 6 after dropping single votes: neutral
        [4, 3, 1, 1, 1, 0, 0, 0, 0, 0],  # 4 of 7: neutral
        [3, 3, 2, 2, 0, 0, 0, 0, 0, 0],  # 3 of 10: no majority, dropped (plurality keeps it)
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # only single votes: dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 6, 4],  # unknown wins: dropped
        [0, 2, 0, 0, 0, 0, 0, 0, 0, 1],  # the NF single vote is removed: happiness, 2 of 2
    ], dtype=float)
    winner, keep = majority(votes, strict=True)
    assert keep.tolist() == [True, True, False, False, False, True]
    assert winner[keep].tolist() == [0, 0, 1]
    assert majority(votes)[1].tolist() == [True, True, True, True, False, True]

    strict, plural = read_ferplus(ferplus_root, strict=True), read_ferplus(ferplus_root)
    assert set(strict.files) < set(plural.files)  # a subset: the ambiguous faces go
    n_test = int((strict.split == TEST).sum())
    assert 3000 < n_test < int((plural.split == TEST).sum())
    names = {f: strict.labels[i] for i, f in enumerate(strict.files)}
    labels = dict(zip(plural.files, plural.labels))
    assert all(labels[f] == y for f, y in names.items())  # a strict majority is also the plurality


# ------------------------------------------------------------------------------------------------
# FER2013 CSV (built from real images)
# ------------------------------------------------------------------------------------------------


def test_fer2013_csv(fer2013_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    rows = write_fer2013_csv(path, fer2013_root)
    for spec in (f"fer2013={path}", f"fer2013={tmp_path}"):  # the file, or a folder holding fer2013.csv
        data = load_data([spec], cache_dir=tmp_path / "cache", progress=False)
        assert data.classes == FER2013_CLASSES
        assert (len(data.train), len(data.val), len(data.test)) == (21, 7, 7)
        for split, usage in ((data.train, "Training"), (data.val, "PublicTest"), (data.test, "PrivateTest")):
            for f, label, img in zip(split.files, split.labels, split.images):
                emotion, row_usage, pixels = rows[int(f.rsplit(":", 1)[1])]
                assert row_usage == usage and label == emotion
                assert np.array_equal(img, prepare_gray(pixels, native_size=48, equalize=True))
    small = load_data([f"fer2013={path}"], cache_size=32, equalize=False, cache_dir=tmp_path / "cache", progress=False)
    assert small.train.images.shape == (21, 32, 32)


def test_csv_wrong_columns(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_text("label,image,split\n0,1 2 3 4,Training\n")
    with pytest.raises(DataError, match="emotion,pixels,Usage") as err:
        load_data([f"fer2013={path}"], cache_dir=tmp_path, progress=False)
    assert str(path) in str(err.value)


def test_csv_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n9,1 2 3 4,Training\n")
    with pytest.raises(DataError, match="line 2: emotion '9'"):
        load_data([f"fer2013={path}"], cache_dir=tmp_path, progress=False)
    good = " ".join(["128"] * 2304)
    path.write_text(f"emotion,pixels,Usage\n0,{good},Training\n1,1 2 x,Training\n2,{good},PublicTest\n3,{good},PrivateTest\n")
    with pytest.raises(DataError, match=r"fer2013\.csv:1: unreadable or invalid image"):
        load_data([f"fer2013={path}"], cache_dir=tmp_path, progress=False)
    data = load_data([f"fer2013={path}"], cache_dir=tmp_path, skip_bad=True, progress=False)
    assert data.skipped == 1 and len(data.train) == 1


# ------------------------------------------------------------------------------------------------
# class-per-folder datasets (built from real images)
# ------------------------------------------------------------------------------------------------


def test_parse_subject() -> None:
    assert parse_subject("/x/S005_001_00000011.png") == "S005"
    assert parse_subject("KA.AN1.39.tiff") == "KA"
    assert parse_subject("AF01ANS.JPG") == "F01" and parse_subject("BF01ANS.JPG") == "F01"
    assert parse_subject("Training_10118481.jpg") is None and parse_subject("img_001.png") is None


def test_folder_synonyms_and_subject_split(fer2013_root: Path, tmp_path: Path) -> None:
    root = make_ck_folder(tmp_path / "ck", fer2013_root)
    data = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", progress=False)
    assert data.classes == ("angry", "happy", "sad", "neutral", "contempt")
    assert data.name == "folder"
    assert len(data.train) + len(data.val) + len(data.test) == 100
    subjects = {}
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert len(split) > 0
        subjects[name] = {parse_subject(f) for f in split.files}
        for f, label in zip(split.files, split.labels):
            assert data.classes[label] == normalize_label(Path(f).parent.name)
    assert not (subjects["train"] & subjects["val"] or subjects["train"] & subjects["test"] or subjects["val"] & subjects["test"])
    assert len(subjects["train"]) == 8  # 10 subjects, 8:1:1
    again = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", progress=False)
    other = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", seed=5, progress=False)
    assert again.test.files == data.test.files and other.test.files != data.test.files


def test_folder_stratified_and_split_folders(fer2013_root: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for cls in ("happy", "sad"):
        (flat / cls).mkdir(parents=True)
        for k, src in enumerate(real_images(fer2013_root, cls, "Training_", 10)):
            shutil.copy(src, flat / cls / f"img_{k:03d}.jpg")
    data = load_data([f"folder={flat}"], cache_dir=tmp_path / "cache", progress=False)
    assert data.train.class_counts().tolist() == [8, 8]
    assert data.val.class_counts().tolist() == [1, 1] and data.test.class_counts().tolist() == [1, 1]

    split_root = tmp_path / "split"
    shutil.copytree(flat, split_root / "train")
    shutil.copytree(flat / "happy", split_root / "test" / "happiness")
    data = load_data([f"folder={split_root}"], cache_dir=tmp_path / "cache", progress=False)
    assert all(f.startswith(str(split_root / "test")) for f in data.test.files) and len(data.test) == 10
    assert len(data.train) + len(data.val) == 20 and data.val.class_counts().tolist() == [1, 1]


def test_corrupt_file(fer2013_root: Path, tmp_path: Path) -> None:
    root = make_ck_folder(tmp_path / "ck", fer2013_root)
    bad = root / "happiness" / "S010_009_00000099.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="unreadable") as err:
        load_data([f"folder={root}"], cache_dir=tmp_path / "cache", progress=False)
    assert str(bad) in str(err.value)
    data = load_data([f"folder={root}"], cache_dir=tmp_path / "cache", skip_bad=True, progress=False)
    assert data.skipped == 1
    assert len(data.train) + len(data.val) + len(data.test) == 100
    assert str(bad) not in data.train.files + data.val.files + data.test.files


def test_unknown_class_folder(fer2013_root: Path, tmp_path: Path) -> None:
    root = make_ck_folder(tmp_path / "ck", fer2013_root, subjects=3, per_class=1)
    (root / "boredom").mkdir()
    with pytest.raises(DataError, match="boredom") as err:
        load_data([f"folder={root}"], cache_dir=tmp_path / "cache", progress=False)
    assert "happiness" in str(err.value) and "contempt" in str(err.value)  # known names listed


def test_empty_split(fer2013_root: Path, tmp_path: Path) -> None:
    (tmp_path / "tiny" / "happy").mkdir(parents=True)
    for k, src in enumerate(real_images(fer2013_root, "happy", "Training_", 2)):
        shutil.copy(src, tmp_path / "tiny" / "happy" / f"img_{k}.jpg")
    with pytest.raises(DataError, match="split is empty"):
        load_data([f"folder={tmp_path / 'tiny'}"], cache_dir=tmp_path / "cache", progress=False)


def test_cache_key_follows_file_changes(fer2013_root: Path, tmp_path: Path) -> None:
    root = make_ck_folder(tmp_path / "ck", fer2013_root, subjects=3, per_class=1)
    before = cache_file(tmp_path, "folder", root, 48, True)
    file = next((root / "anger").iterdir())
    os.utime(file, (1_000_000, 1_000_000))
    assert cache_file(tmp_path, "folder", root, 48, True) != before
    assert cache_file(tmp_path, "folder", root, 64, True) != cache_file(tmp_path, "folder", root, 48, True)


# ------------------------------------------------------------------------------------------------
# specs and combinations
# ------------------------------------------------------------------------------------------------


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Did you mean 'fer2013'.*Valid kinds: fer2013, ferplus, ferplus_soft, ferplus_majority, folder"):
        load_data([f"fer2031={tmp_path}"], cache_dir=tmp_path)
    with pytest.raises(DataError, match="KIND=PATH"):
        load_data([str(tmp_path)], cache_dir=tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_data([f"folder={tmp_path / 'missing'}"], cache_dir=tmp_path)
    with pytest.raises(DataError, match="FER2013Train"):
        load_data([f"ferplus={tmp_path}"], cache_dir=tmp_path)


def test_combination_maps_to_canonical(fer2013_root: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "fer2013.csv"
    rows = write_fer2013_csv(csv_path, fer2013_root)
    ck = make_ck_folder(tmp_path / "ck", fer2013_root)
    data = load_data([f"fer2013={csv_path}", f"folder={ck}"], cache_dir=tmp_path / "cache", progress=False)
    assert data.classes == CANONICAL_CLASSES and data.name == "fer2013+folder"
    total = len(data.train) + len(data.val) + len(data.test)
    assert total == len(rows) + 100
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert split.classes == CANONICAL_CLASSES and split.soft is None
        for f, label in zip(split.files, split.labels):
            if f.startswith(str(csv_path)):
                expected = FER2013_CLASSES[rows[int(f.rsplit(":", 1)[1])][0]]
            else:
                expected = normalize_label(Path(f).parent.name)
            assert data.classes[label] == expected
    assert data.train.class_counts()[CANONICAL_CLASSES.index("contempt")] > 0


def test_combination_with_soft_targets(ferplus_soft: FaceData, ferplus_root: Path, fer2013_root: Path,
                                       cache_dir: Path, tmp_path: Path) -> None:
    ck = make_ck_folder(tmp_path / "ck", fer2013_root, subjects=5, per_class=1)
    data = load_data([f"ferplus_soft={ferplus_root}", f"folder={ck}"], cache_dir=cache_dir, subset=300,
                     progress=False)
    assert data.classes == CANONICAL_CLASSES and len(data.train) == 300
    soft = data.train.soft
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    from_ck = np.array([f.startswith(str(ck)) for f in data.train.files])
    assert from_ck.any() and not from_ck.all()
    one_hot = np.eye(8, dtype=np.float32)[data.train.labels]
    assert np.array_equal(soft[from_ck], one_hot[from_ck])  # hard labels become one-hot targets


def test_subset_indices_stratified() -> None:
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    idx = subset_indices(labels, 10, seed=0)
    assert len(idx) == 10 and len(set(idx)) == 10
    assert np.bincount(labels[idx], minlength=3).tolist() == [8, 1, 1]
    assert np.array_equal(idx, subset_indices(labels, 10, seed=0))
    assert len(subset_indices(labels, 500)) == 100
