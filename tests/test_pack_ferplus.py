"""One FER2013 pack that carries FER+ votes too: pixel matching of FER+ PNGs to FER2013 JPEGs, and the pack's
FER+ views against the FER+ folder reader (real data in ../shared, small subsets; skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_core.labels import CANONICAL_CLASSES
from training.data import load_data
from training.data.errors import DataError
from training.data.fer2013 import read_fer2013_folders
from training.data.ferplus import read_ferplus
from training.data.ferplus_match import MAX_MAD, assign, match_ferplus, nearest
from training.data.images import decode_all, read_image
from training.data.listing import TEST
from training.data.pack import pack_dataset

SUBSET = 40


@pytest.fixture(scope="module")
def pack(fer2013_root: Path, ferplus_root: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pack") / "fer2013"
    stats = pack_dataset(f"fer2013={fer2013_root}", out, subset=SUBSET, progress=False, codec="webp", quality=90,
                         ferplus=ferplus_root)
    return out, stats


def test_nearest_and_assign_pair_duplicates_one_to_one() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (6, 48, 48), dtype=np.uint8)
    base[5] = base[4]  # a duplicate face
    queries = np.clip(base[[2, 4, 5, 0]].astype(int) + rng.integers(-1, 2, (4, 48, 48)), 0, 255).astype(np.uint8)
    index, mad = nearest(queries, base, chunk=3)
    assert index[0, 0] == 2 and index[3, 0] == 0 and mad[:, 0].max() < 1
    match = assign(index, mad)
    assert match[0] == 2 and match[3] == 0 and sorted(match[1:3]) == [4, 5]
    far = np.clip(queries.astype(int) + 40, 0, 255).astype(np.uint8)  # no face within MAX_MAD
    assert (assign(*nearest(far, base)) == -1).all()


def test_every_ferplus_test_face_matches_one_privatetest_jpeg(fer2013_root: Path, ferplus_root: Path) -> None:
    listing = read_fer2013_folders(fer2013_root)
    idx = np.flatnonzero(listing.split == TEST)
    images, ok = decode_all([listing.files[i] for i in idx], read_image, 48, False, False)
    assert ok.all()
    found = match_ferplus(images, listing.split[idx], ferplus_root)
    matched = found["files"][found["files"] != ""]
    n_png = len(list((ferplus_root / "FER2013Test").glob("*.png")))
    assert len(matched) == len(set(matched)) == n_png  # all FER+ test faces, each once
    assert all(f.startswith("FER2013Test/") for f in matched)
    assert np.nanmax(found["mad"][found["files"] != ""]) <= MAX_MAD
    assert np.isnan(found["votes"][found["files"] == ""]).all()
    np.testing.assert_array_equal(found["votes"][found["files"] != ""].sum(axis=1), 10)  # ten annotators


def test_ferplus_views_of_the_pack_match_the_ferplus_reader(pack, ferplus_root: Path) -> None:
    path, stats = pack
    assert stats["ferplus_matched"] >= 3 * SUBSET - 3 and stats["ferplus_mad"]["p100"] <= MAX_MAD
    with np.load(path / "index.npz") as z:
        pack_files, fer_files, split = z["files"].tolist(), z["ferplus_files"], z["split"]
    for view, strict in (("ferplus_soft", False), ("ferplus_majority", True)):
        ref = read_ferplus(ferplus_root, strict=strict)  # what load_data(["ferplus_soft=..."]) labels with
        by_file = {str(Path(f).relative_to(ferplus_root)): (l, s) for f, l, s in zip(ref.files, ref.labels, ref.soft)}
        packed = load_data([f"packed_{view}={path}"], progress=False)
        assert packed.name == view and packed.classes == CANONICAL_CLASSES
        seen = 0
        for code, name in enumerate(("train", "val", "test")):
            part = packed.split(name)
            expected = [i for i in np.flatnonzero(split == code) if fer_files[i] in by_file]
            assert len(part) == len(expected) > 0  # the split minus unmatched or dropped faces
            for k, i in enumerate(expected):
                label, soft = by_file[fer_files[i]]
                assert part.files[k] == pack_files[i] and part.labels[k] == label
                if view == "ferplus_soft":
                    np.testing.assert_allclose(part.soft[k], soft, atol=1e-6)
                else:
                    assert part.soft is None
                seen += 1
        assert seen >= SUBSET  # the majority rule drops some faces, never most
    plain = load_data([f"packed={path}"], progress=False)
    assert plain.name == "fer2013" and len(plain.classes) == 7 and len(plain.test) == SUBSET


def test_a_pack_without_votes_asked_for_a_ferplus_view_says_rebuild(fer2013_root: Path, tmp_path: Path) -> None:
    pack_dataset(f"fer2013={fer2013_root}", tmp_path / "p", subset=4, progress=False)
    with pytest.raises(DataError, match=r"no FER\+ votes; rebuild it with .*--ferplus"):
        load_data([f"packed_ferplus={tmp_path / 'p'}"], progress=False)
