"""Maximum mean discrepancy with a multi-bandwidth Gaussian kernel.

MMD (Gretton et al.; Borgwardt et al., 2006) between two samples
X = {x_1..x_n}, Y = {y_1..y_m}, in the biased (V-statistic) form that is the
squared RKHS distance of the two mean embeddings — TIP-IM's Eq. (4)::

    MMD²(X, Y) = ‖(1/n)Σ φ(x_i) − (1/m)Σ φ(y_j)‖²_H
               = mean k(x, x') + mean k(y, y') − 2·mean k(x, y)

with k the mean of Gaussian kernels over several bandwidths,
``k(a, b) = (1/S) Σ_s exp(−d(a, b) / (2 σ_s²))``.

**What the kernel sees.**  ``d(a, b)`` is the squared Euclidean distance of the
flattened tensors divided by their number of elements, i.e. the mean squared
pixel difference, so the bandwidths σ are in pixel units on the [0,1] scale
whatever the image size (a 112² and a 160² crop give the same kernel values
for the same per-pixel change).  The default bandwidths are the octaves
2/255 … 128/255: from less than a typical adversarial perturbation's RMS
(ε = 12/255 saturates at RMS ≈ 12/255) up to the difference between two
different faces (RMS ≈ 0.2–0.4).  TIP-IM's public code uses the *raw* squared
distance with 19 bandwidths 1e-6 … 1e6; on a 112² crop all but a handful of
those are saturated at 0 or 1, contributing nothing but a constant.

The value is in [0, 2] for this normalised kernel (k(a, a) = 1); it is not
clamped, so rounding may leave it a hair below 0 for identical samples.
"""
from __future__ import annotations

from typing import Sequence

import torch

#: default σ values (pixel RMS on the [0,1] scale): 2/255 … 128/255, one per octave
DEFAULT_BANDWIDTHS: tuple[float, ...] = tuple(2.0**k / 255 for k in range(1, 8))


def pairwise_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between every row of ``a`` (n, ...) and of ``b`` (m, ...): (n, m).

    Computed as ‖a‖² + ‖b‖² − 2a·b (one matmul), clamped at 0.
    """
    a2, b2 = a.flatten(1), b.flatten(1)
    if a2.shape[1] != b2.shape[1]:
        raise ValueError(f"samples differ in size: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    d = (a2 * a2).sum(1, keepdim=True) + (b2 * b2).sum(1)[None] - 2.0 * a2 @ b2.T
    return d.clamp_min(0.0) / a2.shape[1]


def gaussian_kernel_matrix(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS) -> torch.Tensor:
    """k(a_i, b_j) = mean_s exp(−d_ij / (2σ_s²)), shape (n, m); d as in :func:`pairwise_sq_dist`."""
    if len(bandwidths) == 0:
        raise ValueError("at least one bandwidth is needed")
    d = pairwise_sq_dist(a, b)
    s2 = 2.0 * torch.as_tensor(bandwidths, dtype=d.dtype, device=d.device) ** 2
    return torch.exp(-d[..., None] / s2).mean(-1)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS,
        k_yy: torch.Tensor | None = None) -> torch.Tensor:
    """Biased MMD² between the samples ``x`` (n, ...) and ``y`` (m, ...) (TIP-IM Eq. 4), a 0-d tensor.

    Differentiable in both arguments.  ``k_yy``, the mean of k over y×y, may
    be passed precomputed when y is fixed (the real images in TIP-IM).
    """
    if x.shape[0] < 1 or y.shape[0] < 1:
        raise ValueError("both samples need at least one element")
    kxx = gaussian_kernel_matrix(x, x, bandwidths).mean()
    kyy = gaussian_kernel_matrix(y, y, bandwidths).mean() if k_yy is None else k_yy
    kxy = gaussian_kernel_matrix(x, y, bandwidths).mean()
    return kxx + kyy - 2.0 * kxy
