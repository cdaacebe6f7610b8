"""Translation-invariant gradient smoothing (TI, Dong et al., CVPR 2019)."""
from __future__ import annotations

import kornia
import torch


def gaussian_kernel(size: int = 7, nsig: float = 3.0) -> torch.Tensor:
    """Normalised 2-D Gaussian of shape (size, size), as TI's reference code
    builds it: the normal pdf sampled at ``size`` points evenly spread over
    ±``nsig`` standard deviations, i.e. a pixel σ of (size − 1) / (2·nsig) —
    (size − 1)/6 for the reference nsig = 3 (σ = 1 for facelab's default 7,
    the face robustness benchmark's TIM kernel; the ImageNet default of 15
    over-smooths a 112-px crop).

    >>> gaussian_kernel(7).shape
    torch.Size([7, 7])
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be an odd int >= 1, got {size!r}")
    if not (nsig > 0):
        raise ValueError(f"nsig must be > 0, got {nsig!r}")
    if size == 1:  # no smoothing
        return torch.ones(1, 1)
    sigma = (size - 1) / (2 * nsig)
    k = kornia.filters.get_gaussian_kernel2d((size, size), (sigma, sigma), dtype=torch.float64)[0]
    return (k / k.sum()).float()


def translation_invariant(grad: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of the gradient with ``kernel`` (same size out),
    zero-padded at the border as TI's reference (TF ``SAME``) does."""
    return kornia.filters.filter2d(grad, kernel.to(grad)[None], border_type="constant")
