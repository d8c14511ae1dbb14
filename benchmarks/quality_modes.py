"""Frames/s at 1, 4 and 8 faces and PrivateTest accuracy for each quality (best / balanced / fastest): the README's
table, repeatable.

    python benchmarks/quality_modes.py --data ../shared/data/fer2013            # fps table + accuracy
    python benchmarks/quality_modes.py --faces 1,4,8 --rounds 7 --json q.json   # fps only, more rounds

One recogniser (the shipped default model unless --model) switches quality between runs, as the app does. Each
round times every quality x face count back to back (``--frames`` frames after a warm-up, on the synthetic clip
of ``fer-bench``), the order of the qualities turning each round, so that whatever else the machine runs falls on
all of them alike; the table gives the median over the rounds and their range. "read" is the faces classified
per frame (the rest show their last reading, ``Face.age_ms`` old). Accuracy is the classifier's on the FER2013
PrivateTest faces (``test/<class>/PrivateTest_*.jpg``), with and without mirror averaging: ``fer-eval --model ...
--split test --tta none`` gives the same figure for ``best``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer_core.api import EmotionRecognizer  # noqa: E402
from fer_core.labels import normalize_label  # noqa: E402
from fer_core.model_zoo import default_model_path  # noqa: E402
from fer_core.pipeline import QUALITY_PLANS  # noqa: E402
from fer_core.session import EmotionClassifier  # noqa: E402
from fer_core.settings import QUALITIES  # noqa: E402
from fer_core.synthetic import synthetic_clip  # noqa: E402


def time_qualities(model: str | None, faces: list[int], rounds: int, frames: int, warmup: int) -> dict:
    """``{quality: {faces: {"fps": [per round], "read": mean faces read a frame, "found": mean faces found}}}``."""
    clips = {n: synthetic_clip(n, n_frames=30) for n in faces}
    out = {q: {n: {"fps": [], "read": [], "found": []} for n in faces} for q in QUALITIES}
    with EmotionRecognizer(model, provider="cpu") as rec:
        for r in range(rounds):
            order = QUALITIES[r % len(QUALITIES):] + QUALITIES[:r % len(QUALITIES)]
            for quality in order:
                rec.settings = rec.settings.replace(quality=quality)
                for n in faces:
                    rec.reset()
                    clip, busy, read, found = clips[n], 0.0, 0, 0
                    for i in range(warmup + frames):
                        frame = clip[i % len(clip)]
                        t0 = time.perf_counter()
                        result = rec.process(frame)
                        if i >= warmup:
                            busy += time.perf_counter() - t0
                            read += sum(f.age_ms == 0 for f in result.faces)
                            found += len(result.faces)
                    row = out[quality][n]
                    row["fps"].append(frames / busy)
                    row["read"].append(read / frames)
                    row["found"].append(found / frames)
    return out


def private_test_accuracy(model: str | None, data: Path) -> dict[str, float]:
    """PrivateTest accuracy with (``best``) and without (``balanced``, ``fastest``) mirror averaging."""
    clf = EmotionClassifier(model or default_model_path(), provider="cpu")  # as the fps half: $FER_MODEL too
    faces, truth = [], []
    for folder in sorted((data / "test").iterdir()):
        label = normalize_label(folder.name)
        for path in sorted(folder.glob("PrivateTest_*.jpg")):  # test/ holds PublicTest (val) too
            faces.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
            truth.append(clf.labels.index(label))
    batch = clf.preprocess(faces)
    acc = {}
    for mirror in (True, False):
        clf.mirror = mirror
        probs = np.concatenate([clf.predict_batch(batch[i:i + 256]) for i in range(0, len(batch), 256)])
        acc[mirror] = float((probs.argmax(1) == np.asarray(truth)).mean())
    return {q: acc[QUALITY_PLANS[q].mirror] for q in QUALITIES} | {"images": len(faces)}


def table(fps: dict, faces: list[int], accuracy: dict | None) -> str:
    """The markdown table: frames/s median (range) per face count, faces read per frame, accuracy."""
    head = ["quality"] + [f"{n} face{'s' * (n != 1)} fps (read)" for n in faces] + ["PrivateTest"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for q in QUALITIES:
        cells = [q]
        for n in faces:
            row = fps[q][n]
            v = row["fps"]
            cells.append(f"{np.median(v):.0f} ({min(v):.0f}-{max(v):.0f}) ({np.mean(row['read']):.1f})")
        cells.append(f"{100 * accuracy[q]:.1f}%" if accuracy else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="ONNX model (default: the shipped default)")
    p.add_argument("--faces", default="1,4,8", help="face counts of the synthetic clip (1,4,8)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every quality x face count (5)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per run (60)")
    p.add_argument("--warmup", type=int, default=10, help="untimed frames first (10)")
    p.add_argument("--data", type=Path,
                   help="FER2013 folders (test/<class>/PrivateTest_*.jpg) for the accuracy column")
    p.add_argument("--json", type=Path, help="write every figure here")
    a = p.parse_args()
    faces = [int(v) for v in a.faces.split(",")]
    load = os.getloadavg()
    t0 = time.time()
    fps = time_qualities(a.model, faces, a.rounds, a.frames, a.warmup)
    accuracy = private_test_accuracy(a.model, a.data) if a.data else None
    print(table(fps, faces, accuracy))
    cond = (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average "
            f"{load[0]:.1f} before / {os.getloadavg()[0]:.1f} after, {a.rounds} rounds x {a.frames} frames, "
            f"{time.time() - t0:.0f} s")
    print(cond)
    if a.json:
        a.json.write_text(json.dumps({"fps": fps, "accuracy": accuracy, "conditions": cond}, indent=1) + "\n")


if __name__ == "__main__":
    main()
