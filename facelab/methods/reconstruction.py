"""White-box face reconstruction from shallow features (PMT's Level-2 attacker,
Eq. 2–4; Mahendran & Vedaldi-style inversion, the paper's [19]).

The attacker holds the shallow model E_c (bought with a client device) and a
user's uploaded features z = E_c(x), and searches for an image x̂ whose
features match while staying smooth:

    J(x̂, z) = ‖E_c(x̂) − z‖₂ + λ·TV(x̂)                                   (Eq. 2)
    TV(x)   = Σ_ij ((x_i,j−1 − x_i,j)² + (x_i+1,j − x_i,j)²)^(β/2)        (Eq. 3)
    x̂_{i+1} = Clip_[0,1](x̂_i − α·sign(∇J))                                (Eq. 4)

Choices (docs/pmt.md): Eq. 4 prints "+ α·sign(∇J)", an ascent; minimising J
needs the minus sign.  The feature term is divided by ‖z‖ and TV is averaged
over pixels and channels, so λ means the same for every model and image size
(Eq. 2 has no weight; with raw sums TV would swamp the feature term).  TV is
Eq. 3 itself: kornia's ``total_variation`` is the anisotropic Σ|dx| + |dy|,
which is not Eq. 3 for any β, so Eq. 3 is written out (three lines).  The
start is mid-grey (the paper does not say; grey assumes nothing about the
face), and α decays linearly to ``alpha_min`` as in :func:`facelab.methods.pmt.pmt`.
"""
from __future__ import annotations

from typing import Iterator

import torch

from .. import validate
from ..steps import Step


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Eq. 3 per image, averaged over pixels and channels: mean of
    ((x_i,j−1 − x_i,j)² + (x_i+1,j − x_i,j)²)^(β/2), shape (N,)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2) + 1e-12).pow(beta / 2).flatten(1).mean(1)


def white_box_reconstruction(
    z: torch.Tensor,
    shallow,
    *,
    size: int | None = None,
    steps: int = 300,
    alpha: float = 4 / 255,
    alpha_min: float = 0.25 / 255,
    tv_weight: float = 5.0,
    beta: float = 2.0,
    original: torch.Tensor | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """Reconstruct faces from shallow features ``z`` = E_c(x) (N, C, h, w) with
    the attacker's copy of ``shallow`` (a :class:`~facelab.models.shallow.ShallowModel`),
    by Eq. 2–4.  ``size``: the side of x̂ (default the model's input size);
    ``tv_weight`` λ, ``beta`` β of Eq. 3; ``steps``, ``alpha`` → ``alpha_min``:
    the sign-step schedule.  ``original``: the true faces, only to report
    SSIM / PSNR against them in the state (the attacker never sees them).
    ``seed``: a tiny jitter of the grey start, so the sign of a zero gradient is not
    0 everywhere.

    Yields ``steps`` + 1 Steps (i = 0: the grey start).  ``losses``: ``"loss"``
    J, ``"feature"`` ‖E_c(x̂) − z‖/‖z‖, ``"tv"`` TV(x̂), all (N,); ``state``:
    ``"ssim"``, ``"psnr"`` (N,) to ``original`` when given, ``"alpha"``.
    """
    if not isinstance(z, torch.Tensor) or z.ndim < 2:
        raise TypeError("z must be a tensor of shallow features (N, C, h, w), e.g. shallow(x)")
    if not hasattr(shallow, "features") or not hasattr(shallow, "model"):
        raise TypeError("shallow must be a shallow model: models.load(name).shallow(n_layers)")
    size = shallow.model.input_size if size is None else validate.integer(size, "size")
    steps = validate.integer(steps, "steps", minimum=0)
    alpha = validate.step_size(alpha, "linf", "alpha")
    tv_weight = validate.non_negative(tv_weight, "tv_weight")
    beta = validate.positive(beta, "beta")
    if original is not None:
        original = validate.images(original, "original")
    gen = torch.Generator(device="cpu").manual_seed(validate.seed(seed))
    z = z.detach()
    n = z.shape[0]
    z_norm = z.flatten(1).norm(dim=1).clamp_min(1e-12)
    x_hat = (0.5 + 1e-3 * torch.randn((n, 3, size, size), generator=gen)).to(z.device).clamp(0, 1)

    from ..metrics.quality import psnr, ssim

    for i in range(steps + 1):
        a = alpha * (1 - i / steps) + alpha_min * (i / steps) if steps else alpha
        xa = x_hat.clone().requires_grad_(True)
        feature = (shallow(xa) - z).flatten(1).norm(dim=1) / z_norm
        tv = total_variation(xa, beta)
        loss = feature + tv_weight * tv
        if i < steps:
            (g,) = torch.autograd.grad(loss.sum(), xa)
        state = {"alpha": a}
        if original is not None:
            ref = original if original.shape[-1] == size else torch.nn.functional.interpolate(
                original, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            state.update(ssim=ssim(x_hat, ref), psnr=psnr(x_hat, ref))
        yield Step(i, x_hat, {"loss": loss.detach(), "feature": feature.detach(), "tv": tv.detach()}, state)
        if i < steps:
            x_hat = (x_hat - a * g.sign()).clamp(0, 1)
