"""Batch preprocessing and augmentation in torch, on whatever device the cached faces live on.

Inputs are uint8 face batches ``(B, S, S)`` as cached by ``training.data`` (grey, equalised, native size S).
Outputs are float model inputs ``(B, 3, size, size)`` normalised with mean/std (0.5/0.5), the same recipe as
:func:`fer_core.preprocess.to_input` uses at inference time.

Training: random resized crop + rotation + horizontal flip as ONE affine warp per image
(``affine_grid``/``grid_sample``), then random erasing; optional mixup/cutmix on the batch.
Evaluation: resize only (bilinear with pixel-centre alignment when enlarging, area averaging when shrinking,
rounded to whole grey levels: OpenCV's uint8 ``INTER_LINEAR``/``INTER_AREA`` as in inference, within one level), plus the test-time augmentations "flip" (image and mirror) and "tencrop" (EmoNeXt's protocol:
resize to ~1.15x, four corner crops and the centre crop, and their mirrors).

All randomness comes from an explicit ``torch.Generator`` so runs are repeatable and resumable.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fer_core.model_meta import DEFAULT_MEAN, DEFAULT_STD

TTA_MODES = ("none", "flip", "tencrop")
TENCROP_SCALE = 1.15


@dataclass
class AugmentConfig:
    """Training augmentation strengths.

    Attributes:
        scale_min: smallest crop area as a fraction of the face (random resized crop).
        ratio: aspect-ratio range of the crop.
        rotate: maximal rotation in degrees (uniform in +-rotate).
        hflip: probability of a horizontal flip.
        erase: probability of random erasing per image.
        erase_area: erased area range as a fraction of the image.
        padding: ``grid_sample`` padding mode for pixels the warp pulls from outside the face.
    """

    scale_min: float = 0.75
    ratio: tuple[float, float] = (0.9, 1.1)
    rotate: float = 20.0
    hflip: float = 0.5
    erase: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.2)
    padding: str = "reflection"


def _normalize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (x - mean) / std


def to_three_channels(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 3, H, W) by repetition (optionally channels_last memory)."""
    x = x.expand(-1, 3, -1, -1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def area_matrix(src: int, dst: int, device: torch.device | None = None) -> torch.Tensor:
    """(dst, src) weights of an area-average shrink: each output pixel averages the input pixels its footprint
    covers, weighted by overlap (OpenCV's ``INTER_AREA`` for downscaling). Cached, except while compiling."""
    if torch.compiler.is_compiling():
        return _area_matrix(src, dst, device)
    return _cached_area_matrix(src, dst, device)


def _area_matrix(src: int, dst: int, device: torch.device | None = None) -> torch.Tensor:
    edges = torch.arange(dst + 1, dtype=torch.float64) * (src / dst)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = torch.arange(src, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(hi, j + 1) - torch.maximum(lo, j)).clamp(min=0)
    return (overlap / (src / dst)).float().to(device)


_cached_area_matrix = functools.lru_cache(maxsize=32)(_area_matrix)


def resize_float(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float (B, C, H, W) to square ``size`` the way :func:`fer_core.preprocess.to_input` does with OpenCV:
    area averaging when shrinking, bilinear (``align_corners=False``, pixel centres) when enlarging."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if size < h and size < w:
        return area_matrix(h, size, x.device) @ x @ area_matrix(w, size, x.device).T
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def resize_gray(images: torch.Tensor, size: int, round_levels: bool = True) -> torch.Tensor:
    """Resize uint8 (B, S, S) faces to float (B, 1, size, size) in [0, 1], as inference does.

    Rounded to whole grey levels when ``round_levels`` (OpenCV's uint8 resize rounds too).
    """
    x = images.unsqueeze(1).float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = resize_float(x, size)
        if round_levels:
            x = x.round().clamp_(0, 255)
    return x / 255.0


def eval_transform(images: torch.Tensor, size: int, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD,
                   channels_last: bool = False) -> torch.Tensor:
    """Plain evaluation preprocessing: uint8 (B, S, S) -> normalised float (B, 3, size, size)."""
    return to_three_channels(_normalize(resize_gray(images, size), mean, std), channels_last)


def tta_views(images: torch.Tensor, size: int, mode: str = "none", mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD,
              channels_last: bool = False) -> list[torch.Tensor]:
    """All test-time views of a batch; the caller averages the class probabilities over them.

    Args:
        images: uint8 (B, S, S).
        size: model input size.
        mode: "none" (1 view), "flip" (2: image, mirror) or "tencrop" (10: resize to ``1.15 * size``, four
            corner crops + centre crop, each also mirrored).

    Returns:
        list of float tensors (B, 3, size, size).
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode '{mode}', expected one of {', '.join(TTA_MODES)}")
    if mode == "none":
        return [eval_transform(images, size, mean, std, channels_last)]
    if mode == "flip":
        x = eval_transform(images, size, mean, std, channels_last)
        return [x, x.flip(-1)]
    big = tencrop_size(size)
    x = to_three_channels(_normalize(resize_gray(images, big), mean, std), channels_last)
    views = [x[..., top:top + size, left:left + size] for top, left in tencrop_offsets(size)]
    return views + [v.flip(-1) for v in views]


def tencrop_size(size: int) -> int:
    """Side the image is resized to before ten-crop (about 1.15x the input size)."""
    return int(round(size * TENCROP_SCALE))


def tencrop_offsets(size: int) -> list[tuple[int, int]]:
    """(top, left) of the 4 corner crops and the centre crop inside the ``tencrop_size(size)`` image."""
    big = tencrop_size(size)
    far, mid = big - size, (big - size) // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]


AFFINE_DRAWS, ERASE_DRAWS = 6, 5  # uniform numbers per image: warp (area, ratio, cx, cy, angle, flip), erasing


def affine_from_draws(u: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """(n, 2, 3) matrices for ``affine_grid`` from (n, 6) uniform [0, 1) numbers: flip, rotate, crop scale/aspect
    and crop position.

    Output coordinates (u, v) in [-1, 1] map to input coordinates
    ``[sw * R(theta) * (f * u, v)] + (cx, cy)`` where f = -1 mirrors the image.
    """
    area = u[:, 0] * (1.0 - cfg.scale_min) + cfg.scale_min
    lo, hi = math.log(cfg.ratio[0]), math.log(cfg.ratio[1])
    ratio = (u[:, 1] * (hi - lo) + lo).exp()
    sw = (area * ratio).sqrt().clamp(max=1.0)
    sh = (area / ratio).sqrt().clamp(max=1.0)
    cx = (u[:, 2] * 2.0 - 1.0) * (1.0 - sw)
    cy = (u[:, 3] * 2.0 - 1.0) * (1.0 - sh)
    theta = (u[:, 4] * 2.0 - 1.0) * (cfg.rotate * math.pi / 180.0)
    flip = torch.where(u[:, 5] < cfg.hflip, -1.0, 1.0)
    cos, sin = theta.cos(), theta.sin()
    row0 = torch.stack([sw * cos * flip, -sw * sin, cx], dim=1)
    row1 = torch.stack([sh * sin * flip, sh * cos, cy], dim=1)
    return torch.stack([row0, row1], dim=1)


def affine_matrices(n: int, cfg: AugmentConfig, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random (n, 2, 3) warp matrices (see :func:`affine_from_draws`), from one draw."""
    return affine_from_draws(torch.rand(n, AFFINE_DRAWS, generator=gen, device=device), cfg)


def erase_from_draws(x: torch.Tensor, u: torch.Tensor, noise: torch.Tensor, prob: float,
                     area: tuple[float, float]) -> torch.Tensor:
    """Random erasing from (B, 5) uniform numbers and the (B, C, H, W) unit Gaussian noise that fills it."""
    b, _, h, w = x.shape
    frac = u[:, 0] * (area[1] - area[0]) + area[0]
    aspect = (u[:, 1] * (math.log(3.3) - math.log(0.3)) + math.log(0.3)).exp()
    eh = (frac * h * w * aspect).sqrt().clamp(1, h)
    ew = (frac * h * w / aspect).sqrt().clamp(1, w)
    top = u[:, 2] * (h - eh)
    left = u[:, 3] * (w - ew)
    apply = u[:, 4] < prob
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    mask = ((ys >= top.view(-1, 1, 1)) & (ys < (top + eh).view(-1, 1, 1))
            & (xs >= left.view(-1, 1, 1)) & (xs < (left + ew).view(-1, 1, 1)) & apply.view(-1, 1, 1))
    return torch.where(mask.unsqueeze(1), noise.to(x.dtype), x)


def random_erase(x: torch.Tensor, prob: float, area: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Replace one random rectangle per image (with probability ``prob``) by unit Gaussian noise.

    Works on normalised (B, C, H, W) batches, vectorised over the batch.
    """
    if prob <= 0:
        return x
    u = torch.rand(x.shape[0], ERASE_DRAWS, generator=gen, device=x.device)
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return erase_from_draws(x, u, noise, prob, area)


def augment_draws(n: int, size: int, cfg: AugmentConfig, gen: torch.Generator,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All random numbers of a batch's augmentation in two draws: (n, 11) uniforms and the erasing noise."""
    u = torch.rand(n, AFFINE_DRAWS + ERASE_DRAWS, generator=gen, device=device)
    noise = torch.randn(n, 1, size, size, generator=gen, device=device) if cfg.erase > 0 else None
    return u, noise


def augment_from_draws(images: torch.Tensor, u: torch.Tensor, noise: torch.Tensor | None, size: int,
                       cfg: AugmentConfig, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD,
                       channels_last: bool = False) -> torch.Tensor:
    """The deterministic part of :func:`train_transform` (no generator, so ``torch.compile`` takes it whole)."""
    x = images.unsqueeze(1).float() / 255.0
    if size < x.shape[-1]:
        x = resize_float(x, size)
    theta = affine_from_draws(u[:, :AFFINE_DRAWS], cfg)
    grid = F.affine_grid(theta, [x.shape[0], 1, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode=cfg.padding, align_corners=False)
    x = _normalize(x, mean, std)
    if noise is not None:
        x = erase_from_draws(x, u[:, AFFINE_DRAWS:], noise, cfg.erase, cfg.erase_area)
    return to_three_channels(x, channels_last)


def train_transform(images: torch.Tensor, size: int, gen: torch.Generator, cfg: AugmentConfig | None = None,
                    mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD, channels_last: bool = False,
                    augment: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Augment a uint8 (B, S, S) batch into normalised float (B, 3, size, size) on the images' device.

    The warp samples straight from the cached faces (upscaling needs no extra pass); when ``size`` is smaller
    than the faces they are first shrunk by area averaging so the warp does not alias. All random numbers come
    from two draws (:func:`augment_draws`); ``augment``: a compiled :func:`augment_from_draws` to use instead.
    """
    cfg = cfg or AugmentConfig()
    u, noise = augment_draws(images.shape[0], size, cfg, gen, images.device)
    return (augment or augment_from_draws)(images, u, noise, size, cfg, mean, std, channels_last)


def one_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 (B,) labels -> float (B, C); float (B, C) targets pass through."""
    if target.is_floating_point():
        return target
    return F.one_hot(target, num_classes).float()


def mix_batch(x: torch.Tensor, target: torch.Tensor, num_classes: int, mixup: float, cutmix: float,
              prob: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-wise mixup or cutmix (one of them, chosen at random when both are on) with the reversed batch.

    Args:
        x: normalised (B, C, H, W).
        target: int64 (B,) or soft (B, num_classes).
        mixup, cutmix: Beta(alpha, alpha) concentrations; 0 disables.
        prob: chance to mix a given batch.
        gen: a CPU generator (the few scalar draws per batch).

    Returns:
        mixed images and soft targets (B, num_classes); unchanged images (and soft targets) when not mixed.
    """
    soft = one_hot(target, num_classes)
    if (mixup <= 0 and cutmix <= 0) or torch.rand(1, generator=gen).item() >= prob:
        return x, soft
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(1, generator=gen).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    beta_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen).item())
    lam = float(np.random.default_rng(beta_seed).beta(alpha, alpha))
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy = int(torch.randint(0, h, (1,), generator=gen).item())
        cx = int(torch.randint(0, w, (1,), generator=gen).item())
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    else:
        x = x * lam + x.flip(0) * (1.0 - lam)
    return x, soft * lam + soft.flip(0) * (1.0 - lam)
