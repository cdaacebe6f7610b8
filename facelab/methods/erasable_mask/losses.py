"""ErasableMask's loss terms and the noise pool, one function per equation.

The paper's equation bodies are lost; each function says which reading
facelab chose and why (collected in docs/erasable_mask.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from kornia.enhance import jpeg_codec_differentiable
from torch import nn

NOISES: tuple[str, ...] = ("none", "jpeg", "gaussian", "resize")


# -- the noise pool (§IV-D) -----------------------------------------------------


def jpeg(x: torch.Tensor, quality: float | torch.Tensor) -> torch.Tensor:
    """Differentiable JPEG (kornia) at ``quality`` (one value, or one per image)."""
    q = torch.as_tensor(quality, dtype=x.dtype, device=x.device).reshape(-1)
    return jpeg_codec_differentiable(x, q).clamp(0, 1)


def gaussian(x: torch.Tensor, sigma: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation ``sigma`` on the [0,1] scale."""
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    return (x + sigma * noise).clamp(0, 1)


def resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Down to ``scale``·side (antialiased) and back up: what a platform's resize does."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(8, round(h * scale)), max(8, round(w * scale))), mode="bilinear",
                          align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def distort(x: torch.Tensor, kind: str, strength: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """One named distortion of the pool: ``"jpeg"`` (strength = quality 1–100),
    ``"gaussian"`` (σ), ``"resize"`` (scale), ``"none"``."""
    if kind == "none":
        return x
    if kind == "jpeg":
        return jpeg(x, strength)
    if kind == "gaussian":
        return gaussian(x, strength, gen)
    if kind == "resize":
        return resize(x, strength)
    raise ValueError(f"unknown distortion {kind!r}; choose one of {NOISES}")


def noise_pool(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, str]:
    """One random member of the noise pool applied to the whole batch
    (differentiable, so the attack and the restorer learn through it):
    identity, JPEG with quality U(50, 95), Gaussian noise σ ~ U(0, 0.04),
    resize to U(0.5, 0.9) of the side and back.

    The paper lists JPEG, Gaussian noise and resizing without their ranges;
    these cover what a social platform does to a face photo (quality 70–90
    is typical, downscaling by half common).  Keeping the identity in the pool
    means a quarter of the steps see the exact protected face, which is what
    the clean-channel metrics measure.
    """
    kind = NOISES[int(torch.randint(len(NOISES), (1,), generator=gen))]
    u = float(torch.rand((), generator=gen))
    strength = {"none": 0.0, "jpeg": 50 + 45 * u, "gaussian": 0.04 * u, "resize": 0.5 + 0.4 * u}[kind]
    return distort(x, kind, strength, gen), kind


# -- AttGAN terms (Eq. 3–5) --------------------------------------------------------


def reconstruction(x_rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. (5): ℓ1 between G(x, a) (source attributes) and x; the paper names ℓ1."""
    return (x_rec - x).abs().mean()


def attribute(logits: torch.Tensor, b01: torch.Tensor) -> torch.Tensor:
    """Eq. (4): binary cross-entropy of the classifier head against the wanted
    attributes (AttGAN's form)."""
    return F.binary_cross_entropy_with_logits(logits, b01)


def gradient_penalty(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """WGAN-GP's penalty (AttGAN's adversarial loss, Eq. 3): (‖∇D(x̂)‖₂ − 1)² on
    random interpolates of real and generated faces."""
    t = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(real.device)
    mix = (t * real + (1 - t) * fake).requires_grad_(True)
    score, _ = disc(mix)
    (grad,) = torch.autograd.grad(score.sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


# -- the protection terms (Eq. 8–12) ---------------------------------------------------


def perturbation(x_p: torch.Tensor, x_b: torch.Tensor, kappa: float) -> torch.Tensor:
    """Eq. (8), read as a hinge on the per-image RMS difference between the
    protected face x_p and the attribute-edited face x_b (= G without P):

        L_pert = mean_i max(0, RMS(x_p,i − x_b,i) − κ).

    The paper keeps the norm's symbol unreadable and sets its constant to
    30.0; facelab reads the constant as a budget on the 0–255 scale, i.e.
    κ = 30/255 on [0,1] (an RMS change of 30 grey levels, PSNR ≈ 18.6 dB to
    x_b).  A hinge lets the attack use the budget freely and only pushes back
    past it; a plain norm penalty would fight the attack everywhere.
    """
    rms = (x_p - x_b).pow(2).flatten(1).mean(1).add(1e-12).sqrt()
    return F.relu(rms - kappa).mean()


def dodging(model: nn.Module, x_adv: torch.Tensor, e_clean: torch.Tensor) -> torch.Tensor:
    """One surrogate's adversarial loss L_k: 1 + cos(f_k(x_p), f_k(x)), mean
    over the batch, in [0, 2]; minimising it pushes the protected face's
    embedding away from the clean face's.

    Cosine on every model, also the dlib port whose native metric is L2
    (its embeddings are near unit norm, so the two rank alike), so all L_k
    share one scale; shifted by 1 to keep L_k > 0, which the ratios of the
    self-adaptive weights (Eq. 11) need."""
    return 1 + F.cosine_similarity(model(x_adv), e_clean, dim=-1).mean()


class AdaptiveWeights:
    """Eq. (11): self-adaptive surrogate weights from epoch-mean losses, read
    as Dynamic Weight Average (Liu et al., CVPR 2019), the scheme the prose
    describes ("computed from the mean of L_k in the t-th epoch", "keeps
    easily attacked surrogates from dominating"):

        w_k(t) = L̄_k(t−1) / L̄_k(t−2),   λ_k(t) = K · exp(w_k / T) / Σ_j exp(w_j / T)

    A surrogate whose loss falls fast (easy to attack) gets w_k < 1 and a
    smaller weight; λ_k = 1 for the first two epochs.  ``T`` = 2 as in DWA.
    """

    def __init__(self, names: Sequence[str], T: float = 2.0):
        self.names = list(names)
        self.T = T
        self.history: list[dict[str, float]] = []  # epoch means, oldest first
        self._sums = {n: 0.0 for n in self.names}
        self._count = 0
        self.weights = {n: 1.0 for n in self.names}

    def record(self, losses: dict[str, torch.Tensor]) -> None:
        """Add one iteration's L_k (detached 0-d tensors) to the running epoch sums."""
        for n in self.names:  # tensors, summed on the device: no sync per step
            self._sums[n] = self._sums[n] + losses[n].detach()
        self._count += 1

    def end_epoch(self) -> None:
        if self._count:
            self.history.append({n: float(s) / self._count for n, s in self._sums.items()})
        self._sums = {n: 0.0 for n in self.names}
        self._count = 0
        if len(self.history) >= 2:
            prev, prev2 = self.history[-1], self.history[-2]
            w = torch.tensor([prev[n] / max(prev2[n], 1e-8) for n in self.names], dtype=torch.float64)
            lam = len(self.names) * torch.softmax(w / self.T, 0)
            self.weights = dict(zip(self.names, lam.tolist()))

    def state_dict(self) -> dict:
        return {"history": self.history, "weights": self.weights, "T": self.T}


def meta_inner_step(params: dict[str, torch.Tensor], loss: torch.Tensor, alpha: float) -> dict[str, torch.Tensor]:
    """Alg. 1 meta-train (Eq. 9): fast weights θ' = θ − α·∇_θ L_primary.

    First-order (the gradient is detached, as first-order MAML): the
    auxiliary losses at θ' still reach θ through θ' = θ − α·g, but the
    second derivative is skipped — a full second-order step would double the
    cost of every stage-2 iteration on a CPU.  The gradient is scaled to unit
    RMS per tensor so α means "relative step" whatever the loss scale."""
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], retain_graph=True, allow_unused=True)
    fast = {}
    for n, g in zip(names, grads):
        if g is None:
            fast[n] = params[n]
            continue
        g = g.detach()
        rms = g.pow(2).mean().sqrt().clamp_min(1e-12)
        scale = params[n].detach().pow(2).mean().sqrt().clamp_min(1e-3)
        fast[n] = params[n] - alpha * scale * g / rms
    return fast


def psnr_db(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB on [0,1] images (for the preview state)."""
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


__all__ = [
    "NOISES", "jpeg", "gaussian", "resize", "distort", "noise_pool", "reconstruction", "attribute",
    "gradient_penalty", "perturbation", "dodging", "AdaptiveWeights", "meta_inner_step", "psnr_db",
]
