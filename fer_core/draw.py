"""The overlay shared by ``fer-run`` and the desktop app: boxes, labels, probability bars, FPS text."""

from __future__ import annotations

import cv2
import numpy as np

from fer_core.labels import class_color

FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKDROP = (24, 24, 24)
TEXT = (255, 255, 255)
HIGHLIGHT = (255, 255, 255)
UNCERTAIN = (140, 140, 140)  # the label colour of a face the model is unsure of


def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return w, h, base


def _backdrop(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.6) -> None:
    """Darken a rectangle in place (clipped to the image)."""
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[:] = cv2.addWeighted(roi, 1.0 - alpha, np.full_like(roi, BACKDROP), alpha, 0)


def _label(img: np.ndarray, text: str, x: int, y: int, scale: float, color: tuple[int, int, int]) -> None:
    """Text on a filled box of ``color`` whose bottom-left corner is (x, y)."""
    thick = max(1, int(round(scale * 2)))
    w, h, base = _text_size(text, scale, thick)
    cv2.rectangle(img, (x, y - h - base - 4), (x + w + 6, y), color, -1)
    dark = sum(color) > 450
    cv2.putText(img, text, (x + 3, y - base - 2), FONT, scale, (0, 0, 0) if dark else TEXT, thick, cv2.LINE_AA)


def _overlap_area(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Area shared by two (x0, y0, x1, y1) rectangles."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _panel_place(box: tuple[int, int, int, int], size: tuple[int, int], frame: tuple[int, int],
                 taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int]:
    """Top-left corner for a bar panel beside a face, inside the frame and clear of ``taken``.

    Tries right of the face, then left (top-aligned, then bottom-aligned), then below and above; the first
    place that covers no other face or panel wins, else the one that covers the least.

    Returns:
        (x, y, covered area in pixels).
    """
    (x, y, w, h), (pw, ph), (W, H), gap = box, size, frame, 6
    top = int(np.clip(y, 0, max(0, H - ph)))
    bottom = int(np.clip(y + h - ph, 0, max(0, H - ph)))
    cx = int(np.clip(x, 0, max(0, W - pw)))
    sides = [(x + w + gap, top), (x - gap - pw, top), (x + w + gap, bottom), (x - gap - pw, bottom),
             (cx, y + h + gap), (cx, y - gap - ph)]
    inside = [(px, py) for px, py in sides if px >= 0 and py >= 0 and px + pw <= W and py + ph <= H]
    if not inside:
        inside = [(max(0, W - pw), top)]
    scored = [(px, py, sum(_overlap_area((px, py, px + pw, py + ph), t) for t in taken)) for px, py in inside]
    return min(scored, key=lambda p: p[2])


def _bars(img: np.ndarray, box: tuple[int, int, int, int], probs: np.ndarray, labels: list[str],
          taken: list[tuple[int, int, int, int]], edge: tuple[int, int, int]) -> None:
    """One coloured bar per class beside the face, placed clear of the rectangles in ``taken`` (then added).

    The row height follows the face size; where a full-size panel would cover another face or panel,
    smaller panels are tried before settling for the place that covers the least. The panel is outlined
    in ``edge`` (the colour of the face's box), so it reads as that face's even when it had to move.
    """
    H, W = img.shape[:2]
    n = len(labels)
    best = None
    first = int(np.clip(box[3] / max(n, 1), 12, 22))
    for row in sorted({first, max(12, first * 2 // 3), 12}, reverse=True):
        scale = row / 36.0
        name_w = max(_text_size(name, scale, 1)[0] for name in labels) + 6
        bar_w = int(row * 4)
        size = (name_w + bar_w + 8, row * n + 4)
        px, py, covered = _panel_place(box, size, (W, H), taken)
        if best is None or covered < best[0]:
            best = (covered, px, py, row, scale, name_w, bar_w, size)
        if covered == 0:
            break
    _, px, py, row, scale, name_w, bar_w, (panel_w, panel_h) = best
    taken.append((px, py, px + panel_w, py + panel_h))
    _backdrop(img, px, py, px + panel_w, py + panel_h)
    cv2.rectangle(img, (px, py), (px + panel_w - 1, py + panel_h - 1), edge, 1)
    for i, (name, p) in enumerate(zip(labels, probs)):
        top = py + 2 + i * row
        color = class_color(name)
        cv2.putText(img, name, (px + 3, top + row - 4), FONT, scale, TEXT, 1, cv2.LINE_AA)
        bx = px + name_w
        length = int(round(float(np.clip(p, 0, 1)) * bar_w))
        cv2.rectangle(img, (bx, top + 2), (bx + bar_w, top + row - 2), (70, 70, 70), 1)
        if length > 0:
            cv2.rectangle(img, (bx, top + 2), (bx + length, top + row - 2), color, -1)


def draw_results(frame: np.ndarray, result, labels: list[str], fps: float | None = None,
                 latency_ms: float | None = None, selected: int | None = None) -> np.ndarray:
    """Draw a :class:`fer_core.pipeline.FrameResult` onto a copy of ``frame``.

    Per face: the box in the colour of its top class, ``#id label score`` above it (below when there
    is no room), and one probability bar per class next to it. ``selected`` (a track id) gets a thicker
    white outline. FPS / latency text goes top-left on a dark backdrop.

    Args:
        frame: BGR, BGRA or grey uint8 image.
        result: the frame's result (``faces`` with ``track_id``, ``box``, ``probs``, ``label``, ``score``).
        labels: class names in the order of ``probs``.
        fps: frames per second to show, if any.
        latency_ms: end-to-end latency to show, if any.
        selected: track id to highlight.

    Returns:
        A new image of the same shape and dtype as ``frame``.
    """
    if frame.ndim == 2 or frame.shape[2] == 1:
        img = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        img = np.ascontiguousarray(frame[:, :, :3])
    else:
        img = frame.copy()

    # Faces, with room for their label above, are not to be covered by another face's bars.
    taken = [(int(x), int(y) - 28, int(x + w), int(y + h)) for x, y, w, h in (f.box for f in result.faces)]
    for face in result.faces:
        x, y, w, h = (int(v) for v in face.box)
        color = class_color(face.label)
        thick = int(np.clip(round(max(w, h) / 80), 2, 6))
        if face.track_id == selected:
            cv2.rectangle(img, (x - thick, y - thick), (x + w + thick, y + h + thick), HIGHLIGHT, thick + 2)
        cv2.rectangle(img, (x, y), (x + w, y + h), color, thick)
        scale = float(np.clip(w / 220, 0.45, 1.0))
        uncertain = bool(getattr(face, "uncertain", False))
        text = f"#{face.track_id} {face.label}? {face.score:.0%}" if uncertain else \
            f"#{face.track_id} {face.label} {face.score:.0%}"
        th = _text_size(text, scale, 1)[1] + 10
        ty = y - thick if y - thick - th >= 0 else min(img.shape[0] - 1, y + h + thick + th)
        _label(img, text, x - thick // 2, ty, scale, UNCERTAIN if uncertain else color)  # greyed when unsure
        _bars(img, (x, y, w, h), face.probs, labels, taken, color)

    parts = []
    if fps is not None:
        parts.append(f"{fps:.1f} FPS")
    if latency_ms is not None:
        parts.append(f"{latency_ms:.1f} ms")
    if parts:
        text = "  ".join(parts)
        scale = float(np.clip(img.shape[1] / 1280, 0.5, 1.2))
        thick = max(1, int(round(scale * 2)))
        tw, th, base = _text_size(text, scale, thick)
        _backdrop(img, 0, 0, tw + 16, th + base + 14, alpha=0.7)
        cv2.putText(img, text, (8, th + 7), FONT, scale, TEXT, thick, cv2.LINE_AA)

    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).reshape(frame.shape)
    if frame.shape[2] == 4:
        return np.dstack([img, frame[:, :, 3]])
    return img
