"""Image quality of a protected image against its original: PSNR, SSIM, MMD.

The measures TIP-IM reports (§5.1, Table 3): PSNR (dB) and SSIM (Wang et al.,
2004), higher = closer to the original, and MMD between the batch of
protected and the batch of original images, lower = more natural.  Images
are float [0,1] NCHW; PSNR and SSIM are per image.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .. import validate as V
from ..ops.mmd import DEFAULT_BANDWIDTHS
from ..ops.mmd import mmd as _mmd


def _pair(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0) -> float:
    """Check two image batches of one shape with finite values in [0, max_val]; returns max_val."""
    max_val = V.positive(max_val, "max_val", hint="the largest pixel value, 1.0 for [0,1] images")
    V.images(x, "x", max_value=max_val)
    V.images(y, "y", max_value=max_val)
    V.same_batch(x, y, "x", "y")
    return max_val


def psnr(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 10·log10(max² / MSE), shape (N,); +inf for identical images."""
    max_val = _pair(x, y, max_val)
    mse = (x.detach().double() - y.detach().double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(max_val**2 / mse)).float()


def ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, max_val: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM (Gaussian window 11, σ 1.5, as Wang et al.) via kornia, shape (N,)."""
    from kornia.metrics import ssim as kssim

    max_val = _pair(x, y, max_val)
    window_size = V.odd_size(window_size, "window_size")
    with torch.no_grad():
        return kssim(x.detach().float(), y.detach().float(), window_size, max_val=max_val).flatten(1).mean(1)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS) -> float:
    """MMD² between the batch ``x`` and the batch ``y`` (TIP-IM Eq. 4, pixel kernel of
    :mod:`facelab.ops.mmd`), a float; lower = the two sets are closer.  The two
    batches may differ in size, not in image shape."""
    V.images(x, "x")
    V.images(y, "y")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"x and y must hold images of one shape (3, H, W); got {tuple(x.shape[1:])} and {tuple(y.shape[1:])}")
    if len(bandwidths) == 0:
        raise ValueError("bandwidths must hold at least one kernel width (pixel RMS on the [0,1] scale)")
    bandwidths = [V.positive(b, f"bandwidths[{j}]") for j, b in enumerate(bandwidths)]
    with torch.no_grad():
        return float(_mmd(x.detach().float(), y.detach().float(), bandwidths))
