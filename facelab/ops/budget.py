"""Perturbation budgets on the [0,1] pixel scale (ε = 8/255, not 8)."""
from __future__ import annotations

from typing import Literal

import torch

Norm = Literal["linf", "l2"]


def lp_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-image norm of a perturbation batch, shape (N,)."""
    flat = delta.flatten(1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return torch.linalg.vector_norm(flat, dim=1)
    raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")


def project(delta: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project each perturbation onto the ε-ball of ``norm``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = lp_norm(delta, norm).clamp_min(1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.ndim - 1)))


def clip_to_budget(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` into the budget around ``x`` and the valid [0,1] box.

    The box clamp only shrinks each pixel's change, so the result stays inside
    the ε-ball of either norm.
    """
    return (x + project(x_adv - x, eps, norm)).clamp(0.0, 1.0)


def steepest_step(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Unit steepest-ascent direction for ``norm``: sign(g) for L∞, g/‖g‖₂ for L2."""
    if norm == "linf":
        return grad.sign()
    n = lp_norm(grad, "l2").clamp_min(1e-12)
    return grad / n.view(-1, *([1] * (grad.ndim - 1)))


def random_in_ball(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    """A random perturbation inside the ε-ball (uniform per pixel for L∞; a
    random direction with radius ε·u, u ~ U(0,1), for L2), seeded on the CPU
    so the same seed gives the same start on any device."""
    if norm == "linf":
        return ((torch.rand(x.shape, generator=generator) * 2 - 1) * eps).to(x)
    d = torch.randn(x.shape, generator=generator)
    d = d / lp_norm(d, "l2").view(-1, *([1] * (x.ndim - 1)))
    r = torch.rand(x.shape[0], generator=generator).view(-1, *([1] * (x.ndim - 1)))
    return (d * r * eps).to(x)
