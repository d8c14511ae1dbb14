"""What travels to a GPU window stays small: the travel check, and teacher logits stored in 8 bits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from fer_core.probs import softmax
from training import window
from training.teacher_logits import read_teacher_logits, save_teacher_logits


def _repo(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".device/\nbig_ignored.bin\n")
    (root / "tracked.txt").write_bytes(b"x" * 1000)
    subprocess.run(["git", "add", ".gitignore", "tracked.txt"], cwd=root, check=True)
    (root / "untracked.bin").write_bytes(b"u" * 3000)  # not ignored: it travels too
    (root / "big_ignored.bin").write_bytes(b"i" * 50000)  # ignored: stays home
    pack = root / ".device" / "pack" / "fer2013"
    pack.mkdir(parents=True)
    (pack / "faces.jpg").write_bytes(b"j" * 20000)  # ignored, but the plan carries it
    (pack / "index.npz").write_bytes(b"n" * 500)
    (root / "plan.yaml").write_text("data: [packed=.device/pack/fer2013]\njobs:\n  - {name: a, budget: 10}\n")
    return root


def test_travel_counts_tracked_untracked_and_the_plans_pack(tmp_path):
    root = _repo(tmp_path)
    items = window.travel_items(window.load_plan(root / "plan.yaml"), root)
    assert items["tracked.txt"] == 1000 and items["untracked.bin"] == 3000
    assert items[".device/pack/fer2013/faces.jpg"] == 20000 and items[".device/pack/fer2013/index.npz"] == 500
    assert "big_ignored.bin" not in items
    line = window.check_travel(root / "plan.yaml", root)
    assert "biggest, MiB: .device/pack/fer2013/faces.jpg" in line


def test_travel_over_the_limit_refuses_naming_the_biggest(tmp_path):
    root = _repo(tmp_path)
    limit = 24000 / 2**20  # the pack alone is 20,500 bytes; with the rest 25,000 and more
    with pytest.raises(ValueError, match=r"too much to travel.*faces\.jpg"):
        window.check_travel(root / "plan.yaml", root, limit_mib=limit)


def test_a_missing_pack_is_named_before_a_window_starts(tmp_path):
    root = _repo(tmp_path)
    (root / "plan.yaml").write_text("data: [packed=.device/pack/fer2013]\njobs:\n  - {name: a, budget: 10}\n"
                                    "  - {name: b, budget: 10, data: [packed_ferplus_soft=.device/pack/other]}\n")
    with pytest.raises(ValueError, match=r"pack \.device/pack/other is missing"):
        window.check_travel(root / "plan.yaml", root)


def test_check_travel_command(tmp_path, capsys, monkeypatch):
    root = _repo(tmp_path)
    monkeypatch.chdir(root)
    assert window.main(["--check-travel", "plan.yaml"]) == 0
    assert capsys.readouterr().out.startswith("travel 0.0 MiB of 60 MiB")
    (root / "untracked.bin").write_bytes(b"u" * (61 * 2**20))
    assert window.main(["--check-travel", "plan.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("window: error: too much to travel") and "untracked.bin 61.0" in err and "\n" not in err


def test_teacher_logits_in_8_bits_within_tolerance(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.3, (500, 7)).astype(np.float32)  # a range like the shipped teachers (-4..5.4)
    files = [f"Training_{i}.jpg" for i in range(500)]
    split = np.repeat(np.array([0, 1, 2], np.int8), [300, 100, 100])
    path = tmp_path / "t.npz"
    save_teacher_logits(path, files, logits, ("a", "b", "c", "d", "e", "f", "g"), split, "emonext_atto")
    t = read_teacher_logits(path)
    assert t["files"] == files and t["classes"] == tuple("abcdefg") and t["model"] == "emonext_atto"
    assert (t["split"] == split).all() and t["logits"].dtype == np.float32
    step = (logits.max() - logits.min()) / 255
    err = np.abs(t["logits"] - logits)
    assert err.max() <= step / 2 + 1e-6 and err.max() > 0  # quantised, and no worse than half a step

    assert np.abs(softmax(t["logits"]) - softmax(logits)).max() < 0.01  # the distillation tolerance at T = 1
    old = tmp_path / "old.npz"  # the float16 layout of the first files still reads
    np.savez_compressed(old, files=np.array(files), logits=logits.astype(np.float16), classes=np.array(list("abcdefg")),
                        split=split, model=np.array("m"))
    assert np.allclose(read_teacher_logits(old)["logits"], logits, atol=5e-3)


def test_shipped_teacher_logits_are_8_bit():
    paths = sorted((REPO / "models" / "teachers").glob("*.npz"))
    assert paths  # found from any working folder
    for path in paths:
        with np.load(path) as z:
            assert "logits_q" in z.files and z["logits_q"].dtype == np.uint8, path
        assert len(read_teacher_logits(path)["files"]) > 30000


@pytest.mark.parametrize("codec", ["webp", "avif"])
def test_pack_codecs_read_back_the_same_faces(codec, fer2013_root, tmp_path):
    from training.data import load_data
    from training.data.pack import pack_dataset

    out = tmp_path / codec
    jpeg = pack_dataset(f"fer2013={fer2013_root}", out, subset=4, progress=False)
    stats = pack_dataset(f"fer2013={fer2013_root}", out, subset=4, progress=False, codec=codec, quality=85)
    assert stats["codec"] == codec and stats["mean_abs_error"] < 3.0 and stats["bytes"] < jpeg["bytes"] * 1.5
    assert sorted(p.name for p in out.iterdir()) == ["faces." + codec, "index.npz", "pack.json"]
    packed = load_data([f"packed={out}"], equalize=False, progress=False)
    folder = load_data([f"fer2013={fer2013_root}"], equalize=False, subset=4, cache_dir=tmp_path, progress=False)
    for name in ("train", "val", "test"):
        a, b = packed.split(name), folder.split(name)
        assert [Path(f).name for f in a.files] == [Path(f).name for f in b.files] and (a.labels == b.labels).all()
        assert np.abs(a.images.astype(int) - b.images.astype(int)).mean() < 3.0
