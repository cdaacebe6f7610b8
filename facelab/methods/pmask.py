"""PMask: privacy masks for gallery photos (Chow, Hu, Huang, Ilhan, Wei, Liu,
"Diversity-driven Privacy Protection Masks Against Unauthorized Face
Recognition", PoPETs 2024(4)).

The intruder identifies a probe x^P by the identity of its nearest gallery
image (Eq. 1).  PMask masks every gallery photo x^G of the protected person ℓ
so that ℓ's probes are no longer matched to ℓ (Eq. 2), minimising per photo

    L_RevTriplet = Σ_{F∈𝒯} max(DIST(F(x^G), F(𝒩(x^G))) + m
                              − min_{x̃∈𝒟_ℓ^G} DIST(F(x^G + M), F(x̃)), 0)      (Eq. 4)
    m            = δ · DIST(F(x^G), F(𝒩(x^G)))                                 (Eq. 5)
    L_Impercept  = max(½(1 − SSIM(x^G, x^G + M)) − ω, 0)                       (Eq. 6–7)
    M*           = argmin_M  L_RevTriplet + κ · L_Impercept                    (Eq. 8)

𝒩(x^G) is the nearest gallery image of a *different* person under each team
model F; the masked photo must end farther from every one of ℓ's original
gallery photos than (1 + δ) times that distance.  A photo is finished
("converged") once Eq. 4 is zero for every team model and SSIM ≥ 1 − 2ω
(i.e. Eq. 7 is zero too); from then on it no longer changes.

Choices facelab makes where the paper is silent (see docs/pmask.md):

* **DIST.**  "a distance function such as the Euclidean distance": the
  Euclidean distance between L2-normalised embeddings for models whose
  metric is cosine (so nearest-neighbour identification under DIST equals
  identification by the model's own cosine), the raw Euclidean distance for
  the Euclidean model (faceapi-resnet).
* **Optimiser.**  Not stated.  Adam (β = 0.9, 0.999) on the pixels, step
  ``lr`` = 0.01 on the [0,1] scale, clipped to [0,1], written out per
  element so a converged photo's pixels stay exactly fixed (a library
  optimiser would keep moving them on momentum).  The start is the photo plus
  seeded uniform noise of amplitude ``init_noise`` ("randomly adds a small
  amount of noise", §4.1); step 0 is that start.
* **SSIM.**  kornia's differentiable SSIM (Gaussian window 11, σ 1.5, the
  window of Wang et al. and of Fawkes' ``tf.image.ssim``), averaged over
  pixels and channels; "rescaled to [0,1]" is ½(1 − SSIM) = DSSIM.
* **κ schedule** (Eq. 8: "doubled or halved when the amount of perturbation
  is too low or high [Fawkes]").  Fawkes v1.0.2 (``differentiator.py``,
  ``compute_batch``) keeps a per-image factor ``const_diff`` = 1 and after
  every iteration: if DSSIM ≤ 0.9·th and the factor ≤ 129 it doubles it
  (resetting it to 1 instead if the image was above the band the iteration
  before); elif DSSIM ≥ 1.1·th and the factor ≥ 1/129 it halves it (resetting
  to 1 if the image was below the band before); otherwise (inside the band)
  it sets it to 1.  There the factor multiplies the *feature* term, so
  "too little perturbation" pushes the feature term harder.  In Eq. 8 κ
  multiplies the *imperceptibility* term, so the same rule applied literally
  would relax the image-quality penalty exactly when the image is too
  distorted; facelab applies Fawkes' rule to the ratio of the two terms:
  κ is **halved** when DSSIM ≤ 0.9·ω and **doubled** when DSSIM ≥ 1.1·ω,
  with Fawkes' reset-to-1 on crossing the band and inside it, and Fawkes'
  bounds (no doubling above 129, no halving below 1/129, so κ stays within
  [1/256, 256]).  As in Fawkes the factor computed from the DSSIM of
  x_i is used from the update of x_{i+1} on (κ_0 = ``kappa`` = 1.0).
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.zoo import check_images
from ..ops import as_models
from ..steps import Step

Models = nn.Module | Sequence[nn.Module]

KAPPA_MAX = 129.0  # Fawkes v1.0.2: no doubling once the factor exceeds 129 …
KAPPA_MIN = 1 / 129  # … and no halving once it is below 1/129
BAND = (0.9, 1.1)  # Fawkes: "too low" at ≤ 0.9·th, "too high" at ≥ 1.1·th


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """F(x) in the space DIST is taken in: L2-normalised for cosine models, raw for Euclidean ones."""
    e = model(x)
    return e if getattr(model, "metric", "cosine") == "euclidean" else F.normalize(e, dim=-1)


def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """DIST between every row of ``a`` (N, d) and of ``b`` (M, d): the squared Euclidean
    distance, (N, M) — the distance of the triplet loss of Eq. 3 (FaceNet [32])."""
    return (a[:, None] - b[None]).pow(2).sum(-1)


def dssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM, ½(1 − SSIM)) per image with kornia's differentiable SSIM (Eq. 6–7)."""
    from kornia.metrics import ssim as kssim

    s = kssim(x, y, window_size, max_val=1.0).flatten(1).mean(1)
    return s, (1 - s) / 2


def next_kappa(kappa: torch.Tensor, side: torch.Tensor, d: torch.Tensor, omega: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the κ schedule (see the module doc): Fawkes v1.0.2's ×2 / ÷2
    rule around 0.9·ω / 1.1·ω, applied to the weight of the image-quality term.

    ``side`` is where each image was the step before: −1 below the band, +1
    above it, 0 inside.  Returns the new κ and side."""
    low, high = d <= BAND[0] * omega, d >= BAND[1] * omega
    k = kappa.clone()
    s = side.clone()
    halve = low & (kappa >= KAPPA_MIN)
    k = torch.where(halve, torch.where(side == 1, torch.ones_like(k), k / 2), k)
    s = torch.where(low, torch.full_like(s, -1), s)
    double = high & (kappa <= KAPPA_MAX)
    k = torch.where(double, torch.where(side == -1, torch.ones_like(k), k * 2), k)
    s = torch.where(high, torch.ones_like(s), s)
    inside = ~low & ~high
    k = torch.where(inside, torch.ones_like(k), k)
    s = torch.where(inside, torch.zeros_like(s), s)
    return k, s


def _check(x, others, team, reference, delta, omega, kappa, max_steps, lr, init_noise):
    for name, value in (("x", x), ("others", others), ("reference", reference)):
        if value is not None and not isinstance(value, torch.Tensor):  # a wrong kind of object: TypeError, as everywhere
            check_images(value, name)
    if x is None or x.ndim != 4 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else x
        raise ValueError(f"x: the protected person ℓ needs at least one gallery photo (N, 3, H, W) to mask; got {shape}")
    check_images(x, "x")
    if others is None or others.ndim != 4 or others.shape[0] == 0:
        raise ValueError("others: the gallery has no photo of another person, so 𝒩(x^G) (Eq. 4–5) does not exist; "
                         "pass at least one gallery photo of a different person")
    check_images(others, "others")
    if reference is not None:
        if reference.ndim != 4 or reference.shape[0] == 0:
            raise ValueError("reference: 𝒟_ℓ^G must hold at least one original photo of ℓ (or pass None to use x)")
        check_images(reference, "reference")
    if team is None or (not isinstance(team, nn.Module) and len(team) == 0):
        raise ValueError("team: the protection team 𝒯 is empty; pass at least one face model "
                         "(e.g. facelab.models.load('mobileface'))")
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta: δ (Eq. 5) must be a finite number >= 0 (the paper uses 0.2 … 10, default 1.0); got {delta!r}")
    if not (isinstance(omega, (int, float)) and 0 < omega < 1):
        raise ValueError(f"omega: ω (Eq. 7) must lie in (0, 1) (DSSIM is in [0, 1]; Fawkes' budget is 0.017); got {omega!r}")
    if not (isinstance(kappa, (int, float)) and math.isfinite(kappa) and kappa > 0):
        raise ValueError(f"kappa: the initial κ (Eq. 8) must be a positive number (the paper starts at 1.0); got {kappa!r}")
    if not (isinstance(max_steps, int) and max_steps >= 0):
        raise ValueError(f"max_steps must be an integer >= 0; got {max_steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0 (a step on the [0,1] pixel scale, e.g. 0.01); got {lr!r}")
    if not 0 <= init_noise < 1:
        raise ValueError(f"init_noise must be in [0, 1) (amplitude on the [0,1] scale); got {init_noise!r}")


def pmask(
    x: torch.Tensor,
    others: torch.Tensor,
    team: Models,
    *,
    reference: torch.Tensor | None = None,
    delta: float = 1.0,
    omega: float = 0.017,
    kappa: float = 1.0,
    max_steps: int = 200,
    lr: float = 0.005,
    init_noise: float = 1 / 255,
    monitor: Sequence[nn.Module] = (),
    others_embeddings: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """Mask the gallery photos ``x`` (N, 3, H, W) of one person ℓ (Eq. 2–8).

    ``others``: the gallery photos of *other* people (M, 3, H', W'), where each
    photo's nearest other person 𝒩(x^G) is found per team model (Eq. 4).
    ``team``: the protection team 𝒯 (one model or a list; Eq. 4 sums over it).
    ``reference``: 𝒟_ℓ^G, ℓ's original gallery photos the masked photo must
    move away from (the min in Eq. 4); default ``x`` itself.
    ``delta`` δ: the margin m = δ·DIST(F(x^G), F(𝒩(x^G))) (Eq. 5), default 1.0.
    ``omega`` ω: the DSSIM budget (Eq. 7), default 0.017 (Fawkes' "high").
    ``kappa``: κ's starting value (Eq. 8; then the schedule of the module doc).
    ``max_steps``: stop here if some photo has not converged; ``lr`` the Adam
    step, ``init_noise`` the amplitude of the random start, ``seed`` its seed.
    ``monitor``: black-box models only watched (no gradient).
    ``others_embeddings``: {model name: raw embeddings (M, d) of ``others``},
    to skip re-embedding a gallery shared by many runs (models missing from it
    are embedded here).

    Yields Step 0 (the noisy start) and one Step per update, stopping as soon
    as every photo has converged (or after ``max_steps`` updates).
    ``losses``: ``"rev_triplet"`` (N,) Eq. 4 summed over 𝒯, ``"impercept"``
    (N,) Eq. 7, ``"total"`` (N,) Eq. 8 with the current κ.
    ``state``: ``"converged"`` (N,) bool, ``"converged_at"`` (N,) the step at
    which each photo converged (−1: not yet), ``"kappa"`` (N,) the κ used for
    the next update, ``"ssim"`` (N,), ``"dssim"`` (N,); per model (team and
    monitored): ``"distance"`` {model: (N,)} min over 𝒟_ℓ^G of DIST(F(x), F(x̃)),
    ``"required"`` {model: (N,)} DIST(F(x^G), F(𝒩(x^G))) + m, ``"margin"``
    {model: (N,)} m, ``"rev_triplet"`` {model: (N,)} the model's term of Eq. 4,
    ``"nearest_other"`` {model: (N,)} index of 𝒩(x^G) in ``others``,
    ``"similarity"`` {model: (N,)} the model's own similarity of the current
    photo to its original; ``"team"`` the team's model names.
    """
    _check(x, others, team, reference, delta, omega, kappa, max_steps, lr, init_noise)
    attacked = as_models(team)
    watched = as_models(monitor) if len(monitor) else []
    everyone = [*attacked, *watched]
    x0 = x.detach()
    ref = x0 if reference is None else reference.detach()
    n, dev = x0.shape[0], x0.device

    with torch.no_grad():
        raw0 = {m.name: m(x0) for m in everyone}
        f_ref = {m.name: features(m, ref) for m in everyone}
        need, margin, nearest = {}, {}, {}
        for m in everyone:
            f0 = F.normalize(raw0[m.name], dim=-1) if m.metric != "euclidean" else raw0[m.name]
            pre = (others_embeddings or {}).get(m.name)
            if pre is not None and pre.shape[0] != others.shape[0]:
                raise ValueError(f"others_embeddings[{m.name!r}] has {pre.shape[0]} rows for {others.shape[0]} photos in others")
            f_oth = features(m, others) if pre is None else (pre if m.metric == "euclidean" else F.normalize(pre, dim=-1))
            d_other, idx = dist(f0, f_oth).min(1)  # DIST(F(x^G), F(𝒩(x^G))) and 𝒩 per model
            margin[m.name] = delta * d_other  # Eq. 5
            need[m.name] = d_other + margin[m.name]
            nearest[m.name] = idx

    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = (torch.rand(x0.shape, generator=gen) * 2 - 1).to(dev, x0.dtype) * init_noise
    x_adv = (x0 + noise).clamp(0, 1)
    m1, m2 = torch.zeros_like(x0), torch.zeros_like(x0)
    b1, b2, eps = 0.9, 0.999, 1e-8
    k = torch.full((n,), float(kappa), device=dev)
    side = torch.zeros(n, dtype=torch.long, device=dev)
    converged = torch.zeros(n, dtype=torch.bool, device=dev)
    converged_at = torch.full((n,), -1, dtype=torch.long, device=dev)
    names = tuple(m.name for m in attacked)

    for i in range(max_steps + 1):
        xa = x_adv.clone().requires_grad_(True)
        rev = torch.zeros(n, device=dev)
        per_model, distance, sims = {}, {}, {}
        for m in attacked:
            raw = m(xa)
            f = F.normalize(raw, dim=-1) if m.metric != "euclidean" else raw
            d_own = dist(f, f_ref[m.name]).amin(1)  # min over 𝒟_ℓ^G
            term = F.relu(need[m.name] - d_own)  # the model's summand of Eq. 4
            rev = rev + term
            per_model[m.name], distance[m.name] = term.detach(), d_own.detach()
            sims[m.name] = m.similarity(raw.detach(), raw0[m.name])
        s, d = dssim(xa, x0)
        imp = F.relu(d - omega)  # Eq. 7
        total = rev + k * imp  # Eq. 8
        with torch.no_grad():
            for m in watched:
                raw = m(x_adv)
                f = F.normalize(raw, dim=-1) if m.metric != "euclidean" else raw
                d_own = dist(f, f_ref[m.name]).amin(1)
                per_model[m.name], distance[m.name] = F.relu(need[m.name] - d_own), d_own
                sims[m.name] = m.similarity(raw, raw0[m.name])
            done_now = (rev.detach() == 0) & (s.detach() >= 1 - 2 * omega)
            converged_at = torch.where(done_now & ~converged, torch.full_like(converged_at, i), converged_at)
            converged = converged | done_now
            all_done = bool(converged.all()) if i < max_steps else True
        yield Step(
            i, x_adv,
            {"rev_triplet": rev.detach(), "impercept": imp.detach(), "total": total.detach()},
            {"converged": converged.clone(), "converged_at": converged_at.clone(), "kappa": k.clone(),
             "ssim": s.detach(), "dssim": d.detach(), "distance": distance, "required": dict(need),
             "margin": dict(margin), "rev_triplet": per_model, "nearest_other": dict(nearest),
             "similarity": sims, "team": names},
        )
        if all_done:
            return
        (grad,) = torch.autograd.grad(total.sum(), xa)
        with torch.no_grad():
            active = (~converged).view(n, 1, 1, 1)
            t = i + 1
            m1 = torch.where(active, b1 * m1 + (1 - b1) * grad, m1)
            m2 = torch.where(active, b2 * m2 + (1 - b2) * grad * grad, m2)
            step = lr * (m1 / (1 - b1**t)) / ((m2 / (1 - b2**t)).sqrt() + eps)
            x_adv = torch.where(active, (x_adv - step).clamp(0, 1), x_adv)
            k, side = next_kappa(k, side, d.detach(), omega)
