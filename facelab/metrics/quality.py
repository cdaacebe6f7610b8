"""Image quality of a protected image against its original: PSNR, SSIM, MMD.

The measures TIP-IM reports (§5.1, Table 3): PSNR (dB) and SSIM (Wang et al.,
2004), higher = closer to the original, and MMD between the batch of
protected and the batch of original images, lower = more natural.  Images
are float [0,1] NCHW; PSNR and SSIM are per image.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..ops.mmd import DEFAULT_BANDWIDTHS
from ..ops.mmd import mmd as _mmd


def _pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"need two NCHW batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 10·log10(max² / MSE), shape (N,); +inf for identical images."""
    _pair(x, y)
    mse = (x.detach().double() - y.detach().double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(max_val**2 / mse)).float()


def ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, max_val: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM (Gaussian window 11, σ 1.5, as Wang et al.) via kornia, shape (N,)."""
    from kornia.metrics import ssim as kssim

    _pair(x, y)
    with torch.no_grad():
        return kssim(x.detach().float(), y.detach().float(), window_size, max_val=max_val).flatten(1).mean(1)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS) -> float:
    """MMD² between the batch ``x`` and the batch ``y`` (TIP-IM Eq. 4, pixel kernel of
    :mod:`facelab.ops.mmd`), a float; lower = the two sets are closer."""
    with torch.no_grad():
        return float(_mmd(x.detach().float(), y.detach().float(), bandwidths))
