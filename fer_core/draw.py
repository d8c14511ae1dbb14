"""The overlay shared by ``fer-run`` and the desktop app: boxes, labels, probability bars, FPS text.

Every size follows the face it belongs to, within limits that grow with the frame (:func:`overlay_unit`), so
the overlay stays readable when a large photo is shown scaled down and stays modest on a small video.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np

from fer_core.labels import class_color

FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKDROP = (24, 24, 24)
TEXT = (255, 255, 255)
HIGHLIGHT = (255, 255, 255)
UNCERTAIN = (140, 140, 140)  # the label colour of a face the model is unsure of
VIEW_PX = 1000  # the overlay is sized for a frame shown about this many pixels across (its longer side)

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def overlay_unit(shape: tuple[int, ...]) -> float:
    """The overlay's size unit for a frame of ``shape``: 1 up to 1000 px on the longer side, then in proportion.

    A 6000x4000 photo gets 6: shown 1000 px wide, its overlay looks as a 1000 px frame's does.
    """
    return max(1.0, max(shape[:2]) / VIEW_PX)


def _fit(value: float, lo: float, hi: float, unit: float) -> float:
    """``value`` (a size that follows the face) kept within ``lo`` to ``hi`` units."""
    return float(np.clip(value, lo * unit, hi * unit))


def _text_style(scale: float) -> tuple[int, int]:
    """Stroke thickness and padding, in pixels, of text drawn at font ``scale``."""
    return max(1, round(2 * scale)), max(3, round(4 * scale))


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


def _text_box(text: str, scale: float) -> tuple[int, int]:
    """Width and height of ``text`` at font ``scale`` with its padding."""
    thick, pad = _text_style(scale)
    w, h, base = _text_size(text, scale, thick)
    return w + 2 * pad, h + base + 2 * pad


def _put_text(img: np.ndarray, text: str, rect: Rect, scale: float, color: tuple[int, int, int]) -> None:
    """``text`` at font ``scale`` inside ``rect``, a box sized by :func:`_text_box`."""
    thick, pad = _text_style(scale)
    base = _text_size(text, scale, thick)[2]
    cv2.putText(img, text, (rect[0] + pad, rect[3] - base - pad), FONT, scale, color, thick, cv2.LINE_AA)


def _label(img: np.ndarray, text: str, rect: Rect, scale: float, color: tuple[int, int, int]) -> None:
    """Text on a filled box of ``color`` (black text on light colours, white on dark ones)."""
    cv2.rectangle(img, rect[:2], (rect[2] - 1, rect[3] - 1), color, -1)
    _put_text(img, text, rect, scale, (0, 0, 0) if sum(color) > 450 else TEXT)


def _overlap_area(a: Rect, b: Rect) -> int:
    """Area shared by two (x0, y0, x1, y1) rectangles."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _covered(rect: Rect, taken: list[Rect]) -> int:
    """Area of ``rect`` over the rectangles in ``taken``, in pixels (counted once per rectangle)."""
    return sum(_overlap_area(rect, t) for t in taken)


def _panel_place(box: tuple[int, int, int, int], size: tuple[int, int], frame: tuple[int, int],
                 taken: list[Rect], gap: int = 6) -> tuple[int, int, int]:
    """Top-left corner for a bar panel beside a face, inside the frame and clear of ``taken``.

    Tries right of the face, then left (top-aligned, then bottom-aligned), then below and above, ``gap`` pixels
    from the face; the first place that covers no other face or panel wins, else the one that covers the least.

    Returns:
        (x, y, covered area in pixels).
    """
    (x, y, w, h), (pw, ph), (W, H) = box, size, frame
    top = int(np.clip(y, 0, max(0, H - ph)))
    bottom = int(np.clip(y + h - ph, 0, max(0, H - ph)))
    cx = int(np.clip(x, 0, max(0, W - pw)))
    sides = [(x + w + gap, top), (x - gap - pw, top), (x + w + gap, bottom), (x - gap - pw, bottom),
             (cx, y + h + gap), (cx, y - gap - ph)]
    inside = [(px, py) for px, py in sides if px >= 0 and py >= 0 and px + pw <= W and py + ph <= H]
    if not inside:
        inside = [(max(0, W - pw), top)]
    scored = [(px, py, _covered((px, py, px + pw, py + ph), taken)) for px, py in inside]
    return min(scored, key=lambda p: p[2])


def _bars(img: np.ndarray, box: tuple[int, int, int, int], probs: np.ndarray, labels: list[str],
          taken: list[Rect], edge: tuple[int, int, int], unit: float) -> None:
    """One coloured bar per class beside the face, placed clear of the rectangles in ``taken`` (then added).

    The row height follows the face height, within 12 to 22 ``unit``; where a full-size panel would cover
    another face or panel, smaller panels are tried before settling for the place that covers the least. The
    panel is outlined in ``edge`` (the colour of the face's box), so it reads as that face's even when it moved.
    """
    H, W = img.shape[:2]
    n = len(labels)
    best = None
    first = round(_fit(box[3] / max(n, 1), 12, 22, unit))
    least = round(12 * unit)
    for row in sorted({first, max(least, first * 2 // 3), least}, reverse=True):
        m = max(2, row // 10)  # margin, inset and line width follow the row
        scale = row / 36.0
        thick = _text_style(scale)[0]
        name_w = max(_text_size(name, scale, thick)[0] for name in labels) + 3 * m
        size = (name_w + 4 * row + 4 * m, row * n + 2 * m)
        px, py, covered = _panel_place(box, size, (W, H), taken, gap=round(6 * unit))
        if best is None or covered < best[0]:
            best = (covered, px, py, row, m, scale, thick, name_w, size)
        if covered == 0:
            break
    _, px, py, row, m, scale, thick, name_w, (panel_w, panel_h) = best
    line = max(1, m // 2)
    taken.append((px, py, px + panel_w, py + panel_h))
    _backdrop(img, px, py, px + panel_w, py + panel_h)
    cv2.rectangle(img, (px, py), (px + panel_w - 1, py + panel_h - 1), edge, line)
    for i, (name, p) in enumerate(zip(labels, probs)):
        top = py + m + i * row
        cv2.putText(img, name, (px + 3 * m // 2, top + row - 2 * m), FONT, scale, TEXT, thick, cv2.LINE_AA)
        bx, bar_w = px + name_w, 4 * row
        length = int(round(float(np.clip(p, 0, 1)) * bar_w))
        cv2.rectangle(img, (bx, top + m), (bx + bar_w, top + row - m), (70, 70, 70), line)
        if length > 0:
            cv2.rectangle(img, (bx, top + m), (bx + length, top + row - m), class_color(name), -1)


def _hud(img: np.ndarray, text: str, unit: float, taken: list[Rect]) -> None:
    """``text`` on a dark backdrop in the corner that covers the least of ``taken`` (top-left on a tie)."""
    H, W = img.shape[:2]
    scale = 0.5 * unit
    w, h = _text_box(text, scale)
    corners = [(x, y, x + w, y + h) for y in (0, max(0, H - h)) for x in (0, max(0, W - w))]
    rect = min(corners, key=lambda r: _covered(r, taken))
    _backdrop(img, *rect, alpha=0.7)
    _put_text(img, text, rect, scale, TEXT)


class _Mark(NamedTuple):
    """Where and how one face's box and label are drawn."""

    face: Any
    box: tuple[int, int, int, int]  # x, y, w, h
    thick: int  # box line width
    scale: float  # label font scale
    text: str
    label: Rect
    label_color: tuple[int, int, int]


def _mark(face: Any, unit: float, height: int) -> _Mark:
    """Lay out a face's box and its label (above the box, below it when there is no room) in a frame ``height``
    pixels high: the line width and the font follow the face, within limits of ``unit``."""
    x, y, w, h = (int(v) for v in face.box)
    thick = round(_fit(max(w, h) / 80, 2, 6, unit))
    scale = _fit(w / 220, 0.45, 1.0, unit)
    uncertain = bool(getattr(face, "uncertain", False))
    text = f"#{face.track_id} {face.label}{'?' if uncertain else ''} {face.score:.0%}"
    lw, lh = _text_box(text, scale)
    lx, ly = x - thick // 2, y - thick - lh if y - thick - lh >= 0 else min(height - lh, y + h + thick)
    return _Mark(face, (x, y, w, h), thick, scale, text, (lx, ly, lx + lw, ly + lh),
                 UNCERTAIN if uncertain else class_color(face.label))  # greyed when unsure


def draw_results(frame: np.ndarray, result, labels: list[str], fps: float | None = None,
                 latency_ms: float | None = None, selected: int | None = None) -> np.ndarray:
    """Draw a :class:`fer_core.pipeline.FrameResult` onto a copy of ``frame``.

    Per face: the box in the colour of its top class, ``#id label score`` above it (below when there
    is no room), and one probability bar per class next to it. ``selected`` (a track id) gets a thicker
    white outline. Sizes follow each face within limits set by the frame size (:func:`overlay_unit`).
    FPS / latency text (only when given) goes in the corner that covers the fewest faces, labels and bars.

    Args:
        frame: BGR, BGRA or grey uint8 image.
        result: the frame's result (``faces`` with ``track_id``, ``box``, ``probs``, ``label``, ``score``).
        labels: class names in the order of ``probs``.
        fps: frames per second to show; ``None`` draws none.
        latency_ms: end-to-end latency to show; ``None`` draws none.
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
    unit = overlay_unit(img.shape)

    # Lay out every face and its label first: no face's bars are to cover another face or label.
    marks = [_mark(face, unit, img.shape[0]) for face in result.faces]
    taken = [r for m in marks for r in ((m.box[0], m.box[1], m.box[0] + m.box[2], m.box[1] + m.box[3]), m.label)]
    for m in marks:
        (x, y, w, h), thick, color = m.box, m.thick, class_color(m.face.label)
        if m.face.track_id == selected:
            cv2.rectangle(img, (x - thick, y - thick), (x + w + thick, y + h + thick), HIGHLIGHT, thick + 2)
        cv2.rectangle(img, (x, y), (x + w, y + h), color, thick)
        _label(img, m.text, m.label, m.scale, m.label_color)
        _bars(img, m.box, m.face.vector(), labels, taken, color, unit)

    parts = [f"{fps:.1f} FPS"] if fps is not None else []
    if latency_ms is not None:
        parts.append(f"{latency_ms:.1f} ms")
    if parts:
        _hud(img, "  ".join(parts), unit, taken)

    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).reshape(frame.shape)
    if frame.shape[2] == 4:
        return np.dstack([img, frame[:, :, 3]])
    return img
