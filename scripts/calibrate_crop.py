"""Calibrate the live face crop against FER2013's framing, and measure the whole pipeline on uncropped faces.

    python scripts/calibrate_crop.py fit --data ../shared/data/fer2013 --n 600
    python scripts/calibrate_crop.py evaluate --data ../shared/data/fer2013 --n 1000 --json runs/crop_eval.json

``fit`` places FER2013 *training* faces (128-240 px, upright) into 640x480 frames of grey noise
(``scripts/composite.py``), runs BlazeFace on them, and prints the median of (face side / box width) and of
(face centre - box centre) / box width, with and without the small-face tiles: the values of
``fer_core.crop.CROP_MARGIN`` (side / width - 1) and ``CROP_SHIFT``.

``evaluate`` does the same with *test* faces (PrivateTest, 96-240 px, tilted up to +-20 degrees) and scores the
whole pipeline: the face counts as right when a detected face's top label is the true one (a missed face counts
as wrong), for the old crop (margin 0.2, centred), the calibrated crop, and the calibrated crop turned upright.
``--lag 0.05,0.1`` also scores the calibrated upright crop (the default) of a box found before the face moved by
that part of its side (in a random direction): what reusing a frame's boxes in the next costs (``quality="fastest"``)
at that speed.
``--one-view`` reads each face once, as the qualities balanced and fastest do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from composite import composite_face, detection_at  # noqa: E402  (scripts/composite.py, beside this file)
from fer_core.crop import CROP_MARGIN, CROP_SHIFT, crop_face  # noqa: E402
from fer_core.detector import FaceDetector  # noqa: E402
from fer_core.labels import normalize_label  # noqa: E402

CROPS = {"old (margin 0.2, centred)": dict(margin=0.2, shift=0.0, align=False),
         "calibrated": dict(margin=CROP_MARGIN, shift=CROP_SHIFT, align=False),
         "calibrated + upright": dict(margin=CROP_MARGIN, shift=CROP_SHIFT, align=True)}


def faces(root: Path, prefix: str, n: int, rng: np.random.Generator) -> list[tuple[Path, str]]:
    """``n`` random (file, label) pairs of a FER2013 split (file names start with ``prefix``)."""
    files = sorted(root.glob(f"*/*/{prefix}_*.jpg"))
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    return [(files[i], normalize_label(files[i].parent.name)) for i in sorted(pick)]


def fit(args: argparse.Namespace) -> dict:
    import cv2

    rng = np.random.default_rng(args.seed)
    picked = faces(Path(args.data), "Training", args.n, rng)
    out = {}
    for small in (False, True):
        rows = []
        with FaceDetector(args.face_model, running_mode="image", small_faces=small) as det:
            for path, _ in picked:
                frame, place = composite_face(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE),
                                              int(rng.choice([128, 160, 192, 240])), rng)
                d = detection_at(det.detect(frame), place.cx, place.cy)
                if d is None:
                    continue
                x, y, w, h = d.box
                rows.append((place.side / w - 1.0, (place.cy - (y + h / 2)) / w, (place.cx - (x + w / 2)) / w))
        a = np.array(rows)
        key = "small faces" if small else "whole frame"
        out[key] = {"found": len(rows), "of": len(picked), "margin": float(np.median(a[:, 0])),
                    "shift": float(np.median(a[:, 1])), "shift_x": float(np.median(a[:, 2])),
                    "margin_iqr": np.percentile(a[:, 0], [25, 75]).round(3).tolist()}
        print(f"{key:<12} found {len(rows)}/{len(picked)}: margin {out[key]['margin']:+.3f} "
              f"(IQR {out[key]['margin_iqr']}), shift {out[key]['shift']:+.3f}, sideways {out[key]['shift_x']:+.3f}")
    return out


def evaluate(args: argparse.Namespace) -> dict:
    import cv2

    from fer_core.session import EmotionClassifier

    rng = np.random.default_rng(args.seed)
    picked = faces(Path(args.data), "PrivateTest", args.n, rng)
    clf = EmotionClassifier(args.model, provider="cpu")
    clf.mirror = not args.one_view
    frames = []
    for path, label in picked:
        frame, place = composite_face(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE),
                                      int(rng.choice([96, 128, 160, 192, 240])), rng,
                                      angle=float(rng.uniform(-20, 20)))
        frames.append((frame, place, label))
    out = {"faces": len(frames), "model": Path(args.model).name if args.model else "default"}
    found_whole = []  # (frame, place, label, detection) of the faces the whole-frame search found
    for small in (False, True):
        key = "small faces" if small else "whole frame"
        right = {name: 0 for name in CROPS}
        found = 0
        with FaceDetector(args.face_model, running_mode="image", small_faces=small) as det:
            for frame, place, label in frames:
                d = detection_at(det.detect(frame), place.cx, place.cy)
                if d is None:
                    continue
                found += 1
                if not small:
                    found_whole.append((frame, place, label, d))
                for name, c in CROPS.items():
                    crop = crop_face(frame, d.box, c["margin"], shift=c["shift"], eyes=d.eyes if c["align"] else None)
                    probs = clf.predict([crop])[0]
                    right[name] += clf.labels[int(np.argmax(probs))] == label
        out[key] = {"found": found, **{name: right[name] / len(frames) for name in CROPS}}
        print(f"{key}: {found}/{len(frames)} faces found; accuracy (missed faces count as wrong): "
              + ", ".join(f"{name} {right[name] / len(frames):.1%}" for name in CROPS))
    if args.lag:
        out["held boxes"] = held_boxes(args.lag, clf, found_whole, len(frames), rng)
    return out


def held_boxes(lags: list[float], clf, found: list, faces: int, rng: np.random.Generator) -> dict[str, float]:
    """Accuracy of the calibrated upright crop of each face in ``found`` (frame, place, label, its whole-frame
    detection) when the face has moved by ``lag`` of its side since its box was found, for each of ``lags``; of
    ``faces`` in all, the ones not found counting as wrong."""
    right = dict.fromkeys(lags, 0)
    for frame, place, label, d in found:
        turn = rng.uniform(0, 2 * np.pi)
        x, y, w, h = d.box
        for lag in lags:  # the face moved by (dx, dy): the held box sits that far behind it
            dx, dy = -lag * place.side * np.cos(turn), -lag * place.side * np.sin(turn)
            eyes = None if d.eyes is None else tuple((ex + dx, ey + dy) for ex, ey in d.eyes)
            crop = crop_face(frame, (round(x + dx), round(y + dy), w, h), CROP_MARGIN, shift=CROP_SHIFT, eyes=eyes)
            right[lag] += clf.labels[int(np.argmax(clf.predict([crop])[0]))] == label
    result = {f"lag {lag:g}": right[lag] / faces for lag in lags}
    print("held boxes (whole frame, calibrated + upright): "
          + ", ".join(f"{k} {v:.1%}" for k, v in result.items()))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("fit", "evaluate"))
    p.add_argument("--data", required=True, help="FER2013 Kaggle folders (train/, test/)")
    p.add_argument("--n", type=int, default=600, help="faces to use")
    p.add_argument("--model", default=None, help="ONNX model for evaluate (default: the shipped default)")
    p.add_argument("--face-model", default=None, help="BlazeFace .tflite (default: the usual search)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--one-view", action="store_true",
                   help="evaluate: read each face once, without the model's mirror averaging (balanced, fastest)")
    p.add_argument("--lag", type=lambda v: [float(x) for x in v.split(",")], default=[],
                   help="evaluate: also score held boxes, the face moved by these parts of its side (0,0.05,0.1)")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if args.what == "evaluate" and args.model is None:
        from fer_core.model_zoo import default_model_path

        args.model = str(default_model_path())
    result = fit(args) if args.what == "fit" else evaluate(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
