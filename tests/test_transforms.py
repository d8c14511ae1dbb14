"""Batch augmentation and evaluation preprocessing in training/transforms.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.transforms import (AugmentConfig, eval_transform, mix_batch, random_erase, tencrop_size,
                                 train_transform, tta_views)

GREY_LEVEL = 1.0 / 127.5  # one uint8 grey level after normalising with mean 0.5, std 0.5


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 48, 48), dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module")
def real_faces(fer2013_root) -> np.ndarray:
    import cv2

    from fer_core.preprocess import prepare_gray

    files = sorted((fer2013_root / "test").glob("*/PrivateTest_1*.jpg"))[:16]
    return np.stack([prepare_gray(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in files])


@pytest.mark.parametrize("size", [32, 48, 64, 112])
def test_train_transform_shape_range_and_channels(faces, size):
    gen = torch.Generator().manual_seed(1)
    x = train_transform(faces, size, gen, AugmentConfig(erase=0.0))
    assert x.shape == (6, 3, size, size) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert x.min() >= -1.0 - 1e-5 and x.max() <= 1.0 + 1e-5
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_train_transform_is_seeded(faces):
    a = train_transform(faces, 64, torch.Generator().manual_seed(3))
    b = train_transform(faces, 64, torch.Generator().manual_seed(3))
    c = train_transform(faces, 64, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identity_augmentation_equals_eval_resize(faces):
    ident = AugmentConfig(scale_min=1.0, ratio=(1.0, 1.0), rotate=0.0, hflip=0.0, erase=0.0)
    gen = torch.Generator().manual_seed(0)
    for size in (48, 64):
        x = train_transform(faces, size, gen, ident)
        ref = eval_transform(faces, size)
        assert (x - ref).abs().max() <= GREY_LEVEL * 0.51 + 1e-5  # eval rounds to whole grey levels
    mirrored = train_transform(faces, 48, gen, AugmentConfig(scale_min=1.0, ratio=(1.0, 1.0), rotate=0.0, hflip=1.0,
                                                             erase=0.0))
    assert torch.allclose(mirrored, eval_transform(faces, 48).flip(-1), atol=1e-5)


def test_channels_last_output(faces):
    x = train_transform(faces, 40, torch.Generator().manual_seed(0), channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", [32, 40, 48, 64, 112, 224])
def test_eval_transform_matches_inference_preprocessing(real_faces, size):
    """Training-side evaluation sees what fer_core.preprocess.to_input feeds the exported model."""
    from fer_core.preprocess import to_input

    ref = np.stack([to_input(f, size) for f in real_faces])
    out = eval_transform(torch.from_numpy(real_faces), size).numpy()
    diff = np.abs(out - ref)
    assert diff.max() <= GREY_LEVEL + 1e-5
    assert diff.mean() <= 0.2 * GREY_LEVEL


def test_eval_transform_matches_inference_when_shrinking_big_faces(real_faces):
    import cv2

    from fer_core.preprocess import to_input

    big = np.stack([cv2.resize(f, (100, 100), interpolation=cv2.INTER_LINEAR) for f in real_faces])
    for size in (32, 48, 64):
        ref = np.stack([to_input(f, size) for f in big])
        out = eval_transform(torch.from_numpy(big), size).numpy()
        assert np.abs(out - ref).max() <= GREY_LEVEL + 1e-5


def test_tta_views(faces):
    assert len(tta_views(faces, 48, "none")) == 1
    flip = tta_views(faces, 48, "flip")
    assert len(flip) == 2 and torch.equal(flip[1], flip[0].flip(-1))
    ten = tta_views(faces, 64, "tencrop")
    assert len(ten) == 10
    assert all(v.shape == (6, 3, 64, 64) for v in ten)
    assert torch.equal(ten[5], ten[0].flip(-1))
    big = eval_transform(faces, tencrop_size(64))
    off = (tencrop_size(64) - 64) // 2
    assert torch.equal(ten[4], big[..., off:off + 64, off:off + 64])
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views(faces, 48, "fivecrop")


def test_random_erase():
    x = torch.zeros(4, 1, 32, 32)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_erase(x, 0.0, (0.02, 0.2), gen), x)
    out = random_erase(x, 1.0, (0.1, 0.2), gen)
    changed = (out != 0).float().mean(dim=(1, 2, 3))
    assert ((changed > 0.02) & (changed < 0.4)).all()


def test_mix_batch_targets():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    y = torch.arange(8) % 7
    same, soft = mix_batch(x, y, 7, 0.0, 0.0, 1.0, gen)
    assert torch.equal(same, x) and torch.equal(soft.argmax(1), y)
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0), (0.4, 1.0)):
        mixed, t = mix_batch(x, y, 7, mixup, cutmix, 1.0, gen)
        assert mixed.shape == x.shape and t.shape == (8, 7)
        assert torch.allclose(t.sum(1), torch.ones(8))
        assert (t >= 0).all()
