"""Write a short demo video of real faces for the README screenshot and for trying the app without a camera.

The clip shows the first FER2013 PrivateTest face of four classes (no choosing), enlarged, each drifting slowly
over a background (``fer_core.synthetic.synthetic_clip``) so tracking and smoothing have something to do. The faces are large (about 30% of the
frame width) because the short-range BlazeFace detector is made for faces near the camera. FER2013 is not
in the repository: pass its folder.

    python scripts/make_demo_video.py --data ../shared/data/fer2013 --out runs/demo.mp4
    fer-app --source runs/demo.mp4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core.synthetic import synthetic_clip  # noqa: E402
from fer_core.video_writer import VideoWriter  # noqa: E402

CLASSES = ("happy", "angry", "sad", "neutral")


def first_private_test_face(fer2013: Path, cls: str) -> np.ndarray:
    """The first (by name) PrivateTest face of a class, as a BGR image."""
    paths = sorted((fer2013 / "test" / cls).glob("PrivateTest_*.jpg"))
    if not paths:
        raise SystemExit(f"no PrivateTest_*.jpg faces in {fer2013 / 'test' / cls}")
    return cv2.cvtColor(cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 folder (Kaggle layout), e.g. ../shared/data/fer2013")
    p.add_argument("--out", default="runs/demo.mp4")
    p.add_argument("--size", default="960x720", help="WxH")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--fps", type=float, default=30.0)
    a = p.parse_args(argv)
    W, H = (int(v) for v in a.size.lower().split("x"))
    faces = [first_private_test_face(Path(a.data), c) for c in CLASSES]
    frames = synthetic_clip(len(faces), (W, H), int(a.seconds * a.fps), fill=0.8, photos=faces)
    out = Path(a.out)
    writer = VideoWriter(out, a.fps)
    for frame in frames:
        writer.write(frame)
    writer.close()
    print(f"wrote {out}: {len(frames)} frames of {W}x{H} at {a.fps:g} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
