"""A Fawkes-style cloak (Shan et al., "Fawkes: Protecting Privacy against
Unauthorized Deep Learning Models", USENIX Security 2020), re-implemented
from the published algorithm and the behaviour of its public code
(``Shawn-Shan/fawkes``, v1.0.2, ``fawkes/differentiator.py``); no code copied.

The *targeted* cloak of the paper (and of the code with ``maximize=False``):
pick a target identity T far from the user in feature space, then minimise

    sd · max(DSSIM(x, x') − th, 0)² + 1000 · Σ_F ‖F(x_T) − F(x')‖² / ‖F(x_T)‖

for a *fixed* number of iterations with Adadelta on a tanh-space variable
(x' = tanh(w)/c + ½, c = 2 − 10⁻⁶), the change per pixel clipped to ±15/255,
and return, per image, the iterate closest to the target among those with
DSSIM ≤ 1.1·th.  Settings of Fawkes' "high" mode: th = 0.017 (PMask's ω),
150 iterations, learning rate 15; sd = 10⁷ (``run_protection``'s default).
Target choice (``select_target_label``): for each candidate identity the
minimum over the user's photos of the feature distance, summed over the
team; a seeded random pick among the 20 largest.

What facelab does differently (see docs/pmask.md): F is L2-normalised for
cosine models (Fawkes' extractors are Euclidean-trained), DSSIM is kornia's
SSIM as in :mod:`facelab.methods.pmask`, the first-iteration sign kick of
v1.0 (``modifier − 0.01·sign(grad)``) is kept, and v1.0's untargeted
``maximize`` mode (push away from the photo's own features, with the ×2/÷2
``const_diff`` schedule) is not implemented: PMask compares against the
paper's targeted cloak.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.zoo import check_images
from ..ops import as_models
from ..steps import Step
from .pmask import dssim, features

Models = nn.Module | Sequence[nn.Module]
TANH_C = 2 - 1e-6


def select_target(x: torch.Tensor, candidates: Sequence[torch.Tensor], team: Models, top: int = 20, seed: int = 0,
                  embeddings: Sequence[dict] | None = None) -> int:
    """Index of the target identity among ``candidates`` (one (k, 3, H, W) tensor of
    photos per identity): the largest min-distance to the user's photos ``x``,
    summed over ``team``, with a seeded random pick among the ``top`` largest (Fawkes).
    ``embeddings``: per candidate {model name: raw embeddings}, precomputed (Fawkes
    ships its candidates' embeddings too)."""
    if len(candidates) == 0:
        raise ValueError("candidates: Fawkes needs at least one other identity to choose a target from")
    models = as_models(team)
    with torch.no_grad():
        score = torch.zeros(len(candidates))
        for m in models:
            fx = features(m, x)
            for j, c in enumerate(candidates):
                if embeddings is not None:
                    e = embeddings[j][m.name]
                    fc = e if m.metric == "euclidean" else F.normalize(e, dim=-1)
                else:
                    fc = features(m, c)
                score[j] += (fx[:, None] - fc[None]).pow(2).sum(-1).min().cpu()
    order = torch.argsort(score, descending=True)[:top]
    gen = torch.Generator().manual_seed(seed)
    return int(order[int(torch.randint(len(order), (1,), generator=gen))])


def fawkes(
    x: torch.Tensor,
    target: torch.Tensor,
    team: Models,
    *,
    th: float = 0.017,
    max_step: int = 150,
    lr: float = 15.0,
    sd: float = 1e7,
    clip: float = 15 / 255,
    monitor: Sequence[nn.Module] = (),
    seed: int = 0,
) -> Iterator[Step]:
    """Cloak ``x`` (N, 3, H, W) toward ``target`` (one photo (1, 3, H, W) for all, or
    one per image (N, 3, H, W)) for exactly ``max_step`` iterations.

    ``th``: the DSSIM budget; ``lr``: Adadelta's learning rate; ``sd``: the
    penalty on the squared DSSIM excess; ``clip``: the largest change per
    pixel.  Yields Step 0 (the photo plus the start's 10⁻⁴ tanh-space noise) … Step ``max_step``; the last Step's
    ``x`` is Fawkes' output (the best iterate within 1.1·th, or the last
    iterate for an image that never was).
    ``losses``: ``"feature"`` (N,) the feature term, ``"dssim_penalty"`` (N,),
    ``"total"`` (N,).  ``state``: ``"ssim"``, ``"dssim"`` (N,),
    ``"target_distance"`` {model: (N,)} squared distance to the target's
    features, ``"similarity"`` {model: (N,)} similarity to the photo's own
    original embedding (team and monitored models).
    """
    check_images(x, "x")
    check_images(target, "target")
    if target.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"target: need 1 or {x.shape[0]} photos, got {target.shape[0]}")
    if not 0 < th < 1:
        raise ValueError(f"th: the DSSIM budget must lie in (0, 1); got {th!r}")
    if not (isinstance(max_step, int) and max_step >= 1):
        raise ValueError(f"max_step must be an integer >= 1; got {max_step!r}")
    if team is None or (not isinstance(team, nn.Module) and len(team) == 0):
        raise ValueError("team: pass at least one face model")
    models = as_models(team)
    watched = as_models(monitor) if len(monitor) else []
    x0 = x.detach()
    n = x0.shape[0]
    with torch.no_grad():
        f_t = {m.name: features(m, target).expand(n, -1) for m in models}
        raw0 = {m.name: m(x0) for m in [*models, *watched]}
    gen = torch.Generator(device="cpu").manual_seed(seed)
    w0 = torch.atanh((x0 - 0.5) * TANH_C)
    modifier = ((torch.rand(x0.shape, generator=gen) * 2 - 1) * 1e-4).to(x0).requires_grad_(True)
    opt = torch.optim.Adadelta([modifier], lr=lr, rho=0.95, eps=1e-7)  # Keras' Adadelta defaults
    best = x0.clone()
    best_feat = torch.full((n,), float("inf"), device=x0.device)
    ever = torch.zeros(n, dtype=torch.bool, device=x0.device)

    def image(mod: torch.Tensor) -> torch.Tensor:
        xa = torch.tanh(w0 + mod) / TANH_C + 0.5
        return (x0 + (xa - x0).clamp(-clip, clip)).clamp(0, 1)

    for i in range(max_step + 1):
        xa = image(modifier)
        feat = torch.zeros(n, device=x0.device)
        tdist, sims = {}, {}
        for m in models:
            raw = m(xa)
            f = raw if m.metric == "euclidean" else F.normalize(raw, dim=-1)
            d = (f_t[m.name] - f).pow(2).sum(-1)
            feat = feat + d / f_t[m.name].norm(dim=-1)
            tdist[m.name] = d.detach()
            sims[m.name] = m.similarity(raw.detach(), raw0[m.name])
        s, d_ss = dssim(xa, x0)
        penalty = sd * (d_ss - th).clamp_min(0).pow(2)
        total = penalty + 1000 * feat
        with torch.no_grad():
            for m in watched:
                sims[m.name] = m.similarity(m(xa), raw0[m.name])
            ok = (d_ss.detach() <= 1.1 * th) & (feat.detach() < best_feat)
            best = torch.where(ok.view(n, 1, 1, 1), xa.detach(), best)
            best_feat = torch.where(ok, feat.detach(), best_feat)
            ever |= ok
        last = i == max_step
        out = torch.where(ever.view(n, 1, 1, 1), best, xa.detach()) if last else xa.detach()
        yield Step(i, out, {"feature": feat.detach(), "dssim_penalty": penalty.detach(), "total": total.detach()},
                   {"ssim": s.detach(), "dssim": d_ss.detach(), "target_distance": tdist, "similarity": sims})
        if last:
            return
        opt.zero_grad()
        total.sum().backward()
        if i == 0:  # Fawkes v1.0: after the first update, one extra signed step of 0.01 in tanh space
            opt.step()
            with torch.no_grad():
                modifier -= 0.01 * modifier.grad.sign()
        else:
            opt.step()
