"""Momentum accumulation of MI-FGSM (Dong et al., 2018, Eq. 6)."""
from __future__ import annotations

import torch


def accumulate_momentum(g: torch.Tensor, grad: torch.Tensor, mu: float) -> torch.Tensor:
    """g_{t+1} = μ·g_t + ∇ / ‖∇‖₁, the L1 norm taken per image.

    The per-image mean |∇| is used instead of the sum: they differ by the
    constant pixel count, which only rescales g and leaves sign(g) unchanged.
    """
    l1 = grad.abs().flatten(1).mean(dim=1).clamp_min(1e-12)
    return mu * g + grad / l1.view(-1, *([1] * (grad.ndim - 1)))
