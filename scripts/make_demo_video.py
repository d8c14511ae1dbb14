"""Write a short demo video of real faces for the README screenshot and for trying the app without a camera.

The clip shows the first FER2013 PrivateTest face of four classes (no choosing), enlarged, each drifting slowly
over a grey background so tracking and smoothing have something to do. The faces are large (about 30% of the
frame width) because the short-range BlazeFace detector is made for faces near the camera. FER2013 is not
in the repository: pass its folder.

    python scripts/make_demo_video.py --data ../shared/data/fer2013 --out runs/demo.mp4
    fer-app --source runs/demo.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("happy", "angry", "sad", "neutral")


def first_private_test_face(fer2013: Path, cls: str) -> np.ndarray:
    """The first (by name) PrivateTest face of a class, as a BGR image."""
    paths = sorted((fer2013 / "test" / cls).glob("PrivateTest_*.jpg"))
    if not paths:
        raise SystemExit(f"no PrivateTest_*.jpg faces in {fer2013 / 'test' / cls}")
    return cv2.cvtColor(cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)


def make_frames(faces: list[np.ndarray], size: tuple[int, int], n_frames: int) -> list[np.ndarray]:
    """Place the faces on a grid and let each drift on its own slow ellipse."""
    W, H = size
    cols = (len(faces) + 1) // 2
    cell_w, cell_h = W // cols, H // 2
    side = int(min(cell_w, cell_h) * 0.8)
    frames = []
    for t in range(n_frames):
        frame = np.full((H, W, 3), 96, np.uint8)
        for i, face in enumerate(faces):
            phase = 2 * np.pi * (t / n_frames + i / len(faces))
            cx = (i % cols) * cell_w + cell_w // 2 + int(0.12 * side * np.cos(phase))
            cy = (i // cols) * cell_h + cell_h // 2 + int(0.08 * side * np.sin(phase))
            img = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
            x0, y0 = cx - side // 2, cy - side // 2
            frame[y0:y0 + side, x0:x0 + side] = img
        frames.append(frame)
    return frames


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
    frames = make_frames(faces, (W, H), int(a.seconds * a.fps))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), a.fps, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {out}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    print(f"wrote {out}: {len(frames)} frames of {W}x{H} at {a.fps:g} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
