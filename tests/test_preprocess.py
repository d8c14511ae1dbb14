"""Small checks of the shared preprocessing, labels, model metadata and face cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_core.crop import crop_face, square_box
from fer_core.labels import CANONICAL_CLASSES, FER2013_CLASSES, canonical_order, class_color, normalize_label
from fer_core.model_meta import ModelMeta
from fer_core.preprocess import prepare_gray, preprocess_face, to_gray, to_input


# ---------------------------------------------------------------------- preprocess
def test_to_gray_accepts_common_layouts():
    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in BGR
    assert to_gray(bgr).shape == (10, 12)
    assert to_gray(bgr)[0, 0] == 76  # OpenCV luma of red
    assert to_gray(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))[0, 0] == 76
    assert to_gray(np.full((4, 4, 1), 9, np.uint8)).shape == (4, 4)
    assert to_gray(np.full((4, 4), 300.0)).max() == 255  # clipped, not wrapped
    with pytest.raises(ValueError):
        to_gray(np.zeros((0, 0), np.uint8))
    with pytest.raises(ValueError):
        to_gray(np.zeros((4, 4, 2), np.uint8))


def test_prepare_gray_downscales_and_equalizes():
    img = np.tile(np.linspace(100, 140, 96).astype(np.uint8), (96, 1))
    out = prepare_gray(img, native_size=48, equalize=True)
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert out.min() < 20 and out.max() > 235  # contrast stretched
    assert prepare_gray(img, None, equalize=False).shape == (96, 96)


def test_to_input_normalizes_to_three_channels():
    x = to_input(np.array([[0, 255], [255, 0]], np.uint8), 4)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[0], x[2])
    assert preprocess_face(np.zeros((30, 30, 3), np.uint8), 16, 48, True).shape == (3, 16, 16)


# ---------------------------------------------------------------------- labels + metadata
def test_labels():
    assert len(FER2013_CLASSES) == 7 and CANONICAL_CLASSES[-1] == "contempt"
    assert normalize_label(" Happiness ") == "happy"
    assert normalize_label("anger") == "angry"
    with pytest.raises(ValueError, match="Did you mean 'surprise'"):
        normalize_label("suprise")
    assert canonical_order(["neutral", "angry", "happy"]) == ("angry", "happy", "neutral")
    assert class_color("joy") == class_color("happy") != class_color("sad")
    assert class_color("whatever") == (200, 200, 200)


def test_model_meta_round_trip():
    meta = ModelMeta(labels=list(CANONICAL_CLASSES), input_size=112, mean=0.4, std=0.3, equalize=False,
                     model="emonext_tiny", data="ferplus", test_accuracy=0.87, extra={"producer": "test"})
    back, missing = ModelMeta.from_props(meta.to_props())
    assert missing == [] and back == meta
    default, missing = ModelMeta.from_props({})
    assert default.labels == list(FER2013_CLASSES) and "labels" in missing and default.input_size == 0


# ---------------------------------------------------------------------- crop
def _frame() -> np.ndarray:
    return np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)


def test_crop_inside_is_a_plain_square_slice():
    frame = _frame()
    crop = crop_face(frame, (40, 30, 20, 20), margin=0.5)
    x0, y0, side = square_box((40, 30, 20, 20), 0.5)
    assert side == 30 and crop.shape == (30, 30, 3)
    np.testing.assert_array_equal(crop, frame[y0:y0 + side, x0:x0 + side])


def test_crop_at_edges_keeps_its_size_and_pads():
    frame = np.full((100, 120, 3), 200, np.uint8)
    for box in ((-10, -10, 40, 40), (100, 80, 30, 30), (0, 0, 120, 100)):
        for pad in ("edge", "zero"):
            crop = crop_face(frame, box, margin=0.2, pad=pad)
            side = square_box(box, 0.2)[2]
            assert crop.shape == (side, side, 3), (box, pad)
    zero = crop_face(frame, (-10, -10, 40, 40), pad="zero")
    assert zero[0, 0].tolist() == [0, 0, 0] and zero[-1, -1].tolist() == [200, 200, 200]
    edge = crop_face(frame, (-10, -10, 40, 40), pad="edge")
    assert (edge == 200).all()


def test_crop_grey_single_channel_and_outside():
    grey = np.full((50, 60), 7, np.uint8)
    assert crop_face(grey, (50, 40, 20, 20)).shape == (24, 24)
    assert crop_face(grey[:, :, None], (50, 40, 20, 20)).shape == (24, 24, 1)
    outside = crop_face(grey, (500, 500, 20, 20))
    assert outside.shape == (24, 24) and not outside.any()
    with pytest.raises(ValueError, match="pad"):
        crop_face(grey, (0, 0, 5, 5), pad="mirror")
