"""Spatial Transformer (Jaderberg et al. 2015) as EmoNeXt puts it in front of the ConvNeXt stem.

The localisation network is EmoNeXt's (Conv 3->8 k7, BatchNorm, MaxPool 2, ReLU, Conv 8->10 k5, BatchNorm,
MaxPool 2, ReLU); its feature map is average-pooled to a fixed ``pool_size`` grid so any input size works
(the published code hard-wires 10 x 52 x 52 features, i.e. 224 px inputs). The regressor's last layer starts at
zero weights and an identity-affine bias, so the module is the identity at initialisation.

Two pieces are written out instead of calling ``F.adaptive_avg_pool2d`` / ``F.affine_grid`` so the model exports
to ONNX opset 17 at every input size: ONNX has no adaptive pooling when the input size is not a multiple of the
output size, and ``affine_grid`` only exports from opset 20. Both give the same numbers as the torch functions.
Their constant tensors (pooling matrices, the base grid) are made once per size, device and dtype and cached
(not while tracing or compiling, where they become part of the graph).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def _cached(key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``make()`` once per ``key`` (always anew while tracing or compiling: the graph then holds it)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return make()
    value = _CONSTANTS.get(key)
    if value is None:
        value = _CONSTANTS[key] = make()
    return value


def adaptive_pool_matrix(n_in: int, n_out: int, device=None, dtype=None) -> torch.Tensor:
    """(n_out, n_in) matrix whose rows average the windows that ``adaptive_avg_pool`` uses."""
    rows = torch.arange(n_out, device=device)
    start = torch.div(rows * n_in, n_out, rounding_mode="floor")
    end = torch.div((rows + 1) * n_in + n_out - 1, n_out, rounding_mode="floor")  # ceil
    cols = torch.arange(n_in, device=device)
    mask = (cols[None, :] >= start[:, None]) & (cols[None, :] < end[:, None])
    mask = mask.to(dtype or torch.float32)
    return mask / mask.sum(dim=1, keepdim=True)


def adaptive_avg_pool2d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` as two matrix products (exports to ONNX at any input size)."""
    h, w = x.shape[-2:]
    ph = _cached(("pool", h, size, x.device, x.dtype), lambda: adaptive_pool_matrix(h, size, x.device, x.dtype))
    pw = _cached(("pool_t", w, size, x.device, x.dtype),
                 lambda: adaptive_pool_matrix(w, size, x.device, x.dtype).transpose(0, 1).contiguous())
    return ph @ x @ pw


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, height, width), align_corners=True)`` from basic ops.

    Args:
        theta: (B, 2, 3) affine matrices mapping output to input coordinates in [-1, 1].

    Returns:
        (B, height, width, 2) sampling grid (x, y) for ``grid_sample``.
    """
    base = _cached(("grid", height, width, theta.device, theta.dtype),
                   lambda: base_grid(height, width, theta.device, theta.dtype))
    grid = base @ theta.transpose(1, 2)
    return grid.reshape(-1, height, width, 2)


def base_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """(1, height * width, 3) homogeneous pixel-centre coordinates (x, y, 1) in [-1, 1] (``align_corners=True``)."""
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, height * width, 3)


def _float32(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``x``'s device (nothing to switch off on devices without autocast, e.g. meta)."""
    if x.device.type in ("cpu", "cuda"):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


class SpatialTransformer(nn.Module):
    """Learned affine warp of the input image (identity at initialisation).

    Args:
        in_chans: Image channels.
        pool_size: Side of the grid the localisation features are pooled to (8 = no-op at 48 px inputs).
        hidden: Width of the regressor's hidden layer (32 in EmoNeXt).
    """

    def __init__(self, in_chans: int = 3, pool_size: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.localization = nn.Sequential(
            nn.Conv2d(in_chans, 8, kernel_size=7),
            nn.BatchNorm2d(8),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.BatchNorm2d(10),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(inplace=True),
        )
        self.fc_loc = nn.Sequential(
            nn.Linear(10 * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 6),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal init (std 0.02, as EmoNeXt), then the last layer to the identity transform."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        last = self.fc_loc[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], device=last.bias.device))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 2, 3) affine matrices predicted for ``x``, in float32 even under autocast."""
        xs = adaptive_avg_pool2d(self.localization(x), self.pool_size)
        with _float32(x):
            return self.fc_loc(xs.flatten(1).float()).reshape(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The warp runs in float32: a bf16 grid is up to 0.6 px off at 224 px, against the fp32 ONNX model.
        theta = self.theta(x)
        with _float32(x):
            grid = affine_grid(theta, x.shape[-2], x.shape[-1])
            out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.to(x.dtype)
