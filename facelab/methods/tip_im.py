"""TIP-IM: targeted identity-protection iterative method (Yang et al., ECCV 2020,
"Towards Privacy Protection by Generating Adversarial Identity Masks").

A photo x^real is protected by a small mask so that a face-identification
system ranks an image of one of k *target* identities Ĝ_I = {x'_1 … x'_k}
(authorised or virtual faces) above the owner's own gallery images (Eq. 1),
while staying natural.  The method minimises, over a batch X of N photos,

    J(X) = (1/N) Σ_i min_{x' ∈ Ĝ_I} J_iden(x', x_i) + γ · MMD(X^adv, X^real)      (Eq. 5–6)
    J_iden(x', x) = D_f(x, x') − D_f(x, x^real)                                    (Eq. 3)

with momentum sign (L∞) or L2-normalised steps projected onto the ε-ball (Eq. 7),
choosing the target of each image at each iteration by greedy insertion
(Alg. 1, Eq. 8–9): every candidate target x' proposes the one-step update
x̂(x') = Π(x − α·Normalize(∇J_iden(x', x))), and the candidate whose x̂ has the
largest gain G wins.

Choices facelab makes where the paper leaves room (see docs/tip_im.md):

* **D_f on L2-normalised features.** D_f(a, b) = ‖f̂(a) − f̂(b)‖², f̂ = f/‖f‖, so
  D_f = 2 − 2·cos ∈ [0, 4] for every model.  The pool's raw embeddings differ
  in scale by orders of magnitude (faceres: 1024-d post-ReLU6, norms in the
  tens; mobilefacenet/facenet: unit norm in-graph), which would make one γ
  mean different things per surrogate; after normalising, J_iden ∈ [−4, 4]
  whatever the model, and ranking by D_f equals ranking by cosine, the metric
  the cosine models are trained for.  ``normalize=False`` gives raw features.
* **MMD on pixels.**  Eq. (4) maps the *images* x_i^adv, x_j^real into the RKHS
  with "the same φ as [1]" (Borgwardt et al.: a Gaussian kernel on the data
  vectors), and the stated aim is to keep X^adv on the distribution of real
  images — so the kernel sees flattened pixels, not embeddings.  facelab uses a
  multi-bandwidth Gaussian on the mean squared pixel difference, bandwidths
  2/255 … 128/255 (:mod:`facelab.ops.mmd`).
* **Self-augmentation (Appendix C).**  When the batch is smaller than
  ``mmd_batch`` (a single photo, typically), each image is expanded into
  ⌈mmd_batch/N⌉ copies under fixed random rotation + projective + brightness
  transforms, the same transforms for x^adv and x^real
  (:mod:`facelab.ops.augment`); MMD compares the augmented sets.
* **Batched greedy insertion.**  Alg. 1 loops over the k targets with one
  forward/backward each; here x is replicated k times and all k candidate
  gradients come from one batched forward and one backward, all k candidate
  updates are formed at once and their gains come from one batched forward.
  The winner's gradient is reused for the update itself (plus γ·∇MMD).
"""
from __future__ import annotations

import math
from typing import Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import validate as V
from ..ops import (
    accumulate_momentum, affine_rotation_jitter, as_models, input_diversity, steepest_step,
)
from ..ops.augment import self_augmentation
from ..ops.budget import Norm
from ..ops.mmd import DEFAULT_BANDWIDTHS, gaussian_kernel_matrix, mmd
from ..steps import Step
from . import kit
from .kit import Models

Gain = Literal["G", "G1", "G2", "random", "single"]
GAINS: tuple[str, ...] = ("G", "G1", "G2", "random", "single")
Variant = Literal["paper", "released_code"]
VARIANTS: tuple[str, ...] = ("paper", "released_code")


def features(model: nn.Module, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """f(x), L2-normalised unless ``normalize`` is False."""
    e = model(x)
    return F.normalize(e, dim=-1) if normalize else e


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """D_f of Eq. (1) between feature rows, broadcasting over leading dims: ‖a − b‖²."""
    return (a - b).pow(2).sum(-1)


def gain_values(delta: torch.Tensor, gain: str) -> torch.Tensor:
    """Gain of each candidate from Δ[..., m] = D_f(x̂, x^real) − D_f(x̂, x'_m) over the targets m:

    G  = log(1 + max_m exp Δ_m)  (Eq. 9),   G1 = log(1 + Σ_m exp Δ_m),   G2 = log(1 + min_m exp Δ_m)  (§5.1),

    computed stably as softplus(max Δ), softplus(logsumexp Δ), softplus(min Δ).
    All are positive; larger is better.
    """
    if gain == "G":
        return F.softplus(delta.amax(-1))
    if gain == "G1":
        return F.softplus(torch.logsumexp(delta, -1))
    if gain == "G2":
        return F.softplus(delta.amin(-1))
    raise ValueError(f"no gain function {gain!r}; choose G, G1 or G2")


def _bandwidths(bandwidths) -> tuple[float, ...]:
    try:
        values = [] if isinstance(bandwidths, (str, bytes)) else list(bandwidths)
    except TypeError:
        values = []
    if not values:
        raise ValueError("bandwidths must be a non-empty sequence of kernel widths σ (pixel RMS on the [0,1] scale, "
                         f"e.g. the default {tuple(round(b, 4) for b in DEFAULT_BANDWIDTHS)}); got {bandwidths!r}")
    return tuple(V.positive(b, f"bandwidths[{j}]") for j, b in enumerate(values))


def tip_im(
    x: torch.Tensor,
    targets: torch.Tensor,
    surrogate: Models,
    *,
    eps: float = 12 / 255,
    alpha: float | None = None,
    steps: int = 50,
    mu: float = 1.0,
    gamma: float = 0.0,
    norm: Norm = "linf",
    gain: Gain = "G",
    target_index: int | torch.Tensor | None = None,
    normalize: bool | None = None,
    mmd_batch: int = 16,
    bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS,
    diversity_prob: float = 0.0,
    variant: Variant = "paper",
    monitor: Sequence[nn.Module] = (),
    mmd_every: int | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """Protect the photos ``x`` (N, 3, H, W) against identification, steering
    them toward the target set ``targets`` = Ĝ_I (k, 3, H', W'), one image per
    candidate target (Eq. 2–9, Alg. 1).

    ``surrogate``: the white-box model (or a list, whose D_f are averaged).
    ``eps`` ε and ``alpha`` α on the [0,1] scale: the paper's ε = 12, α = 1.5 on
    0–255 are the defaults for L∞ (α defaults to ε/8 for either norm; for
    ``norm="l2"`` pass an L2 ε, e.g. 2.0 for a 112² crop).  ``steps`` T = 50
    iterations (the paper's N), ``mu`` μ the momentum (Dong et al.) of the
    update (Eq. 7), ``gamma`` γ the weight of MMD (Eq. 5); γ = 0 skips the
    MMD gradient.

    ``gain`` picks the inner minimisation: ``"G"`` greedy insertion with Eq. (9),
    ``"G1"`` / ``"G2"`` with the sum / min variants of §5.1, ``"random"`` a
    random target per image per step (TIP-IM-Rand), ``"single"`` the
    single-target baseline: always ``targets[target_index]`` (an int, or one
    index per image; None draws one per image from the seed).

    ``mmd_batch``: below this batch size images are self-augmented for MMD
    (Appendix C); ``bandwidths``: the kernel's σ in pixel units.
    ``diversity_prob`` > 0 takes the identity gradients through input
    diversity (not in the paper; TIP-IM's public code does it).
    ``monitor``: black-box models only watched (no gradient).
    ``mmd_every``: with γ = 0 the MMD is no part of the objective and only
    reported; its self-augmented batch costs about one forward+backward of
    mobileface, so by default (None) it is computed at the first and the last
    Step only, and absent from ``losses`` in between; ``mmd_every=1`` reports it
    every Step.
    With γ > 0 it is computed (and reported) every Step for its gradient.

    ``variant``: ``"paper"`` is Alg. 1 as written (above).  ``"released_code"``
    follows the authors' released ``run.py`` where it differs from the paper:
    (1) each candidate's proposal step carries the momentum,
    x̂(x') = Π(x − α·s(μ·g + ∇J(x')/‖∇J(x')‖₁)), and the winner's
    accumulated gradient becomes g (the paper proposes plain gradient steps
    and applies momentum only to the winner's update); with γ > 0 the MMD
    gradient is part of every candidate's step; (2) input diversity every
    iteration: a random affine jitter plus a rotation
    (:func:`facelab.ops.affine_rotation_jitter`), shared by all candidates of
    an image, instead of ``diversity_prob``'s resize-and-pad; (3) the gains
    on plain (not squared) L2 distances of raw features, and raw features
    (``normalize`` defaults to False) for the identity loss.  Its own
    defaults are the L2 norm, 100 iterations and α = 1.5·ε/iters; facelab
    keeps its defaults and its norms (the released "l2" mode clips each pixel
    to ±ε; facelab's ``norm="l2"`` projects onto the L2 ball), so pass
    ``steps``/``alpha`` to match the code.

    Yields T + 1 Steps; i = 0 is the unprotected start.
    ``losses``: ``"iden"`` (N,) min over targets of J_iden (Eq. 3) at x_i (the
    inner minimum of Eq. 2), ``"mmd"`` MMD(X_i, X^real) (Eq. 4, on the
    augmented batch if any; see ``mmd_every``), ``"total"`` mean(iden) + γ·mmd
    (Eq. 5; mean(iden) when γ = 0).
    ``state``: ``"target"`` (N,) index of the target driving the update
    x_i → x_{i+1} (at the last step, which makes no update, the nearest target);
    ``"gains"`` (N, k) every candidate's gain (None for "random", "single"
    and the last step); ``"distance"`` (N, k) D_f(x_i, x'_j) on the surrogate;
    ``"norm"`` per-image ‖δ‖; ``"similarity"`` {model: (N,)} similarity
    (the model's own metric) to the photo's own embedding, and
    ``"target_similarity"`` {model: (N,)} best similarity to any target, for
    the surrogate(s) and the monitored models.
    """
    x = V.images(x, "x")
    targets = V.images(targets, "targets")
    gain = V.choice(gain, "gain", GAINS)
    steps = V.integer(steps, "steps", hint="T, the number of iterations")
    budget = kit.Budget.checked(x, eps=eps, alpha=alpha, norm=norm, default_alpha=lambda e: e / 8, example="12/255")
    mu = V.non_negative(mu, "mu", hint="the momentum decay of Eq. 7; 0 = no momentum")
    gamma = V.non_negative(gamma, "gamma", hint="the weight of MMD in Eq. 5; 0 = no MMD term")
    variant = V.choice(variant, "variant", VARIANTS)
    released = variant == "released_code"
    normalize = (not released) if normalize is None else V.flag(normalize, "normalize")
    if released and diversity_prob:
        raise ValueError('variant="released_code" brings its own input diversity (affine + rotation, every '
                         'iteration): leave diversity_prob at 0')
    mmd_batch = V.integer(mmd_batch, "mmd_batch")
    mmd_every = max(steps, 1) if mmd_every is None else V.integer(mmd_every, "mmd_every",
                                                                   hint="report the MMD every k-th Step; 1 = every Step")
    bandwidths = _bandwidths(bandwidths)
    diversity_prob = V.probability(diversity_prob, "diversity_prob")
    seed = V.seed(seed)
    attacked = as_models(surrogate)
    watched = kit.watched_models(monitor)
    n, k = x.shape[0], targets.shape[0]
    if gain == "single":
        if target_index is not None:
            index = torch.as_tensor(target_index)
            if index.is_floating_point() or index.dtype == torch.bool or index.ndim > 1 or index.numel() not in (1, n):
                raise ValueError(f"target_index must be an int, or one int per image ({n}); got {target_index!r}")
            if int(index.min()) < 0 or int(index.max()) >= k:
                raise ValueError(f"target_index must be in [0, {k}) (one of the {k} targets); got {target_index!r}")
    elif target_index is not None:
        raise ValueError('target_index is only used with gain="single"')
    return _tip_im_steps(x, targets, attacked, watched, budget=budget, steps=steps, mu=mu, gamma=gamma, gain=gain,
                         target_index=target_index, normalize=normalize, mmd_batch=mmd_batch, bandwidths=bandwidths,
                         diversity_prob=diversity_prob, released=released, mmd_every=mmd_every, seed=seed)


def _tip_im_steps(x, targets, attacked, watched, *, budget, steps, mu, gamma, gain, target_index, normalize,
                  mmd_batch, bandwidths, diversity_prob, released, mmd_every, seed) -> Iterator[Step]:
    """Alg. 1's loss and greedy insertion on the kit's loop, on arguments :func:`tip_im` has checked
    (a generator: nothing runs before the first ``next``)."""
    n, k = x.shape[0], targets.shape[0]
    alpha, norm = budget.alpha, budget.norm
    gen = kit.generator(seed)
    x = x.detach()
    dev = x.device
    arange = torch.arange(n, device=dev)

    if gain == "single":
        if target_index is None:
            fixed = torch.randint(0, k, (n,), generator=gen).to(dev)
        else:
            fixed = torch.as_tensor(target_index, dtype=torch.long, device=dev).expand(n).clone()

    with torch.no_grad():
        raw_real = [m(x) for m in attacked]
        f_real = [F.normalize(e, dim=-1) if normalize else e for e in raw_real]
        f_tgt = [features(m, targets, normalize) for m in attacked]
        raw_tgt = [m(targets) for m in attacked]
        watch = kit.Watch(watched, [m(x) for m in watched], [m(targets) for m in watched])

    # MMD's real batch (self-augmented when small), fixed for the whole run
    reps = max(1, math.ceil(mmd_batch / n)) if n < mmd_batch else 1
    augment = self_augmentation(reps, tuple(x.shape[-2:]), gen) if reps > 1 else None
    view = augment if augment is not None else (lambda t: t)
    with torch.no_grad():
        real_batch = view(x)
        k_real = gaussian_kernel_matrix(real_batch, real_batch, bandwidths).mean()

    def mmd_of(x_in: torch.Tensor) -> torch.Tensor:
        return mmd(view(x_in), real_batch, bandwidths, k_yy=k_real)

    def distances(x_in: torch.Tensor, pairs: torch.Tensor | None):
        """Per surrogate, features of x_in (N·r images) → D to own real (N, r) and to targets.

        ``pairs`` None: D to every target (N, r, k); else (N, r) target index per replica → (N, r).
        Returns D averaged over surrogates, plus the raw embeddings per model."""
        r = x_in.shape[0] // n
        d_real, d_tgt, raws = 0.0, 0.0, []
        for m, fr, ft in zip(attacked, f_real, f_tgt):
            raw = m(x_in)
            raws.append(raw)
            f = (F.normalize(raw, dim=-1) if normalize else raw).view(n, r, -1)
            d_real = d_real + sq_dist(f, fr[:, None])
            d_tgt = d_tgt + (sq_dist(f[:, :, None], ft[None, None]) if pairs is None else sq_dist(f, ft[pairs]))
        s = len(attacked)
        return d_real / s, d_tgt / s, raws

    def surrogate_state(raws: list[torch.Tensor]):
        """The surrogates' similarity to the photo's own embedding and best similarity to any target."""
        sims, tsims = {}, {}
        for m, raw, er, et in zip(attacked, raws, raw_real, raw_tgt):
            sims[m.name] = m.similarity(raw, er)
            tsims[m.name] = m.similarity(raw[:, None], et[None]).amax(1)
        return sims, tsims

    step_rule = kit.MomentumStep(budget, mu)

    def evaluate(x_adv: torch.Tensor, i: int, update: bool) -> kit.Evaluation:
        gains, grad_j, jump = None, None, None
        if not update:
            chosen = None
            r = 1
        elif gain in ("G", "G1", "G2"):
            r = k
            pairs = torch.arange(k, device=dev).expand(n, k)
        else:
            r = 1
            chosen = fixed if gain == "single" else torch.randint(0, k, (n,), generator=gen).to(dev)
            pairs = chosen[:, None]

        if update and gamma > 0:
            xm = x_adv.clone().requires_grad_(True)
            mmd_val = mmd_of(xm)
            (g_mmd,) = torch.autograd.grad(mmd_val, xm)
            mmd_val = mmd_val.detach()
        if update:
            # one forward/backward for all candidate targets: replica j of image i is paired with pairs[i, j]
            xr = x_adv.repeat_interleave(r, dim=0).requires_grad_(True)
            if released:
                x_in = affine_rotation_jitter(xr, gen, repeats=r)
            else:
                x_in = input_diversity(xr, diversity_prob, generator=gen) if diversity_prob > 0 else xr
            d_real_r, d_tgt_r, raws = distances(x_in, pairs)
            j_iden = d_tgt_r - d_real_r  # (N, r): J_iden(x'_pairs, x_i), Eq. 3
            (grad,) = torch.autograd.grad(j_iden.sum(), xr)
            grad = grad.view(n, r, *x.shape[1:])
            with torch.no_grad():
                if gain in ("G", "G1", "G2"):
                    if released:  # each candidate steps with the momentum (and the MMD gradient)
                        step_k = grad.flatten(0, 1) / n
                        if gamma > 0:
                            step_k = step_k + gamma * g_mmd.repeat_interleave(k, 0)
                        g = step_rule.momentum(x)
                        g_k = accumulate_momentum(g.repeat_interleave(k, 0), step_k, mu) if mu > 0 else step_k
                    else:  # Alg. 1 line 5: a plain gradient step per candidate
                        g_k = grad.flatten(0, 1)
                    # all candidates at once; then Alg. 1 line 6 in one forward
                    cand = budget.project(x_adv.repeat_interleave(k, 0) - alpha * steepest_step(g_k, norm),
                                          x.repeat_interleave(k, 0))
                    d_c_real, d_c_tgt, _ = distances(cand, None)  # (N, k), (N, k, k)
                    if released:  # plain L2 distances in the gains
                        d_c_real, d_c_tgt = d_c_real.clamp_min(0).sqrt(), d_c_tgt.clamp_min(0).sqrt()
                    gains = gain_values(d_c_real[..., None] - d_c_tgt, gain)
                    chosen = gains.argmax(1)  # Eq. 8: greedy insertion of the best candidate
                    g_iden = grad[arange, chosen]
                    if released:  # the winning candidate, with its momentum
                        jump = (cand.view(n, k, *x.shape[1:])[arange, chosen],
                                g_k.view(n, k, *x.shape[1:])[arange, chosen])
                else:
                    g_iden = grad[:, 0]
                if jump is None:
                    grad_j = g_iden / n  # ∇ of (1/N) Σ_i J_iden(x*_i, x_i), Eq. 6
                    if gamma > 0:
                        grad_j = grad_j + gamma * g_mmd
        with torch.no_grad():
            if not update or diversity_prob > 0 or released:
                d_real0, d_tgt0, raws0 = distances(x_adv, None)
            else:
                # replicas are identical: read the current point's features off replica 0
                raws0 = [e.detach().view(n, r, -1)[:, 0] for e in raws]
                f0 = [(F.normalize(e, dim=-1) if normalize else e)[:, None] for e in raws0]
                d_real0 = sum(sq_dist(f, fr[:, None]) for f, fr in zip(f0, f_real)) / len(attacked)
                d_tgt0 = sum(sq_dist(f[:, :, None], ft[None, None]) for f, ft in zip(f0, f_tgt)) / len(attacked)
            dist = d_tgt0[:, 0]  # (N, k)
            iden_all = dist - d_real0  # (N, k)
            iden = iden_all.amin(1)
            if chosen is None:
                chosen = iden_all.argmin(1)
            sims, tsims = surrogate_state(raws0)
        if not (update and gamma > 0):
            if gamma > 0 or i % mmd_every == 0 or not update:
                with torch.no_grad():
                    mmd_val = mmd_of(x_adv)
            else:
                mmd_val = None  # only watched at γ = 0, and not due at this Step
        losses = {"iden": iden} | ({} if mmd_val is None else {"mmd": mmd_val})
        return kit.Evaluation(
            losses | {"total": iden.mean() + gamma * mmd_val if gamma > 0 else iden.mean()},
            {"target": chosen, "gains": gains, "distance": dist, "similarity": sims, "target_similarity": tsims},
            grad=grad_j, jump=jump)

    yield from kit.iterate(x, evaluate, steps=steps, update=step_rule, watch=watch)
