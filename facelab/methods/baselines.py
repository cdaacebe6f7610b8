"""Baseline gradient attacks on face embeddings, as stepwise generators.

FGSM (Goodfellow et al., 2015), I-FGSM (Kurakin et al., 2017), PGD (Madry et
al., 2018) in L∞ and L2, MI-FGSM (Dong et al., 2018), with input diversity
(DI, Xie et al., 2019) and translation-invariant smoothing (TI, Dong et al.,
2019) as options of the one loop.  Two objectives on embeddings:

* ``"dodging"``: push f(x') away from the source identity f(x)
  (minimise the mean similarity over the models);
* ``"impersonation"``: pull f(x') toward a target identity
  (maximise the mean similarity to the target's embedding).

Similarity is each model's own (:meth:`FaceModel.similarity`: cosine, or
−L2 for the dlib model).  Budgets are on the [0,1] scale.
"""
from __future__ import annotations

from typing import Iterator, Literal, Sequence

import torch
from torch import nn

from .. import validate as V
from ..ops import as_models, gaussian_kernel, input_diversity, random_in_ball, translation_invariant
from ..ops.budget import Norm
from ..steps import Step
from . import kit
from .kit import NORMS, Models

Objective = Literal["dodging", "impersonation"]
OBJECTIVES: tuple[str, ...] = ("dodging", "impersonation")


def _check_target(x: torch.Tensor, objective: str, target: torch.Tensor | None) -> None:
    if objective == "dodging":
        if target is not None:
            raise ValueError("dodging pushes away from the source itself: do not pass target "
                             "(or pass objective=\"impersonation\")")
        return
    if target is None:
        raise ValueError("impersonation needs target images (float [0,1] NCHW): pass target=...")
    if target.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"target must hold 1 or N={x.shape[0]} images, got {target.shape[0]}")


def _references(models, x, objective: Objective, target: torch.Tensor | None) -> list[torch.Tensor]:
    """Reference embedding per model: the source's own, or the target's
    (one target image for every source image, or one per source image)."""
    with torch.no_grad():
        if objective == "dodging":
            return [m(x) for m in models]
        return [m(target).expand(x.shape[0], -1) for m in models]


def pgd(
    x: torch.Tensor,
    models: Models,
    *,
    objective: Objective = "dodging",
    target: torch.Tensor | None = None,
    eps: float = 8 / 255,
    alpha: float | None = None,
    steps: int = 10,
    norm: Norm = "linf",
    random_start: bool = True,
    mu: float = 0.0,
    diversity_prob: float = 0.0,
    resize_rate: float = 0.9,
    ti_kernel: torch.Tensor | int | None = None,
    monitor: Sequence[nn.Module] = (),
    seed: int = 0,
) -> Iterator[Step]:
    """Iterative gradient attack; every other baseline is a setting of it.

    x' ← Π_ε(x' − α·s(g)),  g = μ·g + ∇ℓ/‖∇ℓ‖₁ (μ = 0: plain gradient),
    where ℓ is the objective's loss, s is sign(·) for L∞ and ·/‖·‖₂ for L2,
    ∇ℓ is taken through T(x'; p) when ``diversity_prob`` = p > 0 and smoothed
    by a Gaussian kernel when ``ti_kernel`` is given (an odd size, or a kernel).

    ``alpha`` defaults to 1.5·ε/steps (the face robustness benchmark's
    choice: a little overshoot lets sign steps reach the ε-ball's corners).
    ``monitor`` models are only watched (no gradient): their similarity to
    the same reference appears in each Step, e.g. to watch transfer.

    Dodging without a random start (FGSM, I-FGSM, MI-FGSM): at x the
    similarity to x's own embedding is at its maximum, so its gradient there
    is exactly zero and a sign step would follow floating-point round-off
    (with one thread it does not move at all).  The first gradient is
    therefore taken at x plus seeded uniform noise of at most 0.5/255; the
    iterate x_0 itself stays x, and every later step is the method's own.

    Yields ``steps + 1`` Steps: i = 0 is the unperturbed start.  ``losses``:
    ``"loss"`` (per image) and ``"sim/<model>"``; ``state``: ``"norm"``
    (per-image ‖δ‖), ``"similarity"`` {model: per-image similarity} for the
    attacked and the monitored models.
    """
    x = V.images(x, "x")
    objective = V.choice(objective, "objective", OBJECTIVES)
    steps = V.integer(steps, "steps", hint="the number of updates")
    budget = kit.Budget.checked(x, eps=eps, alpha=alpha, norm=norm, default_alpha=lambda e: 1.5 * e / steps)
    mu = V.non_negative(mu, "mu", hint="the momentum decay, 1.0 in Dong et al.; 0 = no momentum")
    diversity_prob = V.probability(diversity_prob, "diversity_prob")
    resize_rate = V.number(resize_rate, "resize_rate", low=0.0, high=1.0, low_open=True)
    random_start = V.flag(random_start, "random_start")
    seed = V.seed(seed)
    if target is not None:
        target = V.images(target, "target")
    attacked = as_models(models)
    watched = kit.watched_models(monitor)
    if isinstance(ti_kernel, torch.Tensor):
        if ti_kernel.ndim != 2 or ti_kernel.shape[0] != ti_kernel.shape[1] or ti_kernel.shape[0] % 2 == 0:
            raise ValueError(f"ti_kernel must be a square (K, K) tensor with K odd, or an odd int; got shape {tuple(ti_kernel.shape)}")
        if not bool(torch.isfinite(ti_kernel).all()):
            raise ValueError("ti_kernel contains NaN or infinite values")
    elif ti_kernel is not None:
        size = V.odd_size(ti_kernel, "ti_kernel")
        ti_kernel = gaussian_kernel(size)  # TI reference: nsig = 3, σ = (size − 1)/6
    _check_target(x, objective, target)
    return _pgd_steps(x, attacked, watched, objective=objective, target=target, budget=budget, steps=steps,
                      random_start=random_start, mu=mu, diversity_prob=diversity_prob, resize_rate=resize_rate,
                      ti_kernel=ti_kernel, seed=seed)


def _pgd_steps(x, attacked, watched, *, objective, target, budget, steps, random_start, mu, diversity_prob,
               resize_rate, ti_kernel, seed) -> Iterator[Step]:
    """The loss of :func:`pgd` on the kit's loop, on arguments it has checked (a generator: nothing
    runs before the first ``next``)."""
    gen = kit.generator(seed)
    x = x.detach()
    refs = _references(attacked, x, objective, target)
    watch = kit.Watch(watched, _references(watched, x, objective, target) if watched else [])
    sign = 1.0 if objective == "dodging" else -1.0
    start = budget.project(x + random_in_ball(x, budget.eps, budget.norm, gen), x) if random_start else None
    nudge_first = objective == "dodging" and not random_start  # the gradient is exactly zero at x itself

    def loss_at(x_in: torch.Tensor):
        sims = {m.name: m.similarity(m(x_in), r) for m, r in zip(attacked, refs)}
        return sign * torch.stack(list(sims.values())).mean(0), sims

    def evaluate(x_i: torch.Tensor, i: int, update: bool) -> kit.Evaluation:
        grad = None
        at = x_i  # where this step's gradient is taken: x_i, or just beside the clean start (see the docstring)
        if i == 0 and nudge_first and update:
            at = (x_i + (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device, x.dtype) * (0.5 / 255)).clamp(0, 1)
        if update and diversity_prob == 0 and at is x_i:
            # the gradient pass at x_i also gives the loss reported for x_i
            xg = x_i.detach().requires_grad_(True)
            loss, sims = loss_at(xg)
            (grad,) = torch.autograd.grad(loss.sum(), xg)
        else:
            with torch.no_grad():
                loss, sims = loss_at(x_i)
            if update:
                at = at.detach().requires_grad_(True)
                loss_t, _ = loss_at(input_diversity(at, diversity_prob, resize_rate, gen) if diversity_prob > 0 else at)
                (grad,) = torch.autograd.grad(loss_t.sum(), at)
        if grad is not None and ti_kernel is not None:
            grad = translation_invariant(grad, ti_kernel)
        return kit.Evaluation({"loss": loss.detach()} | {f"sim/{k}": v.detach() for k, v in sims.items()},
                              {"similarity": {k: v.detach() for k, v in sims.items()}}, grad=grad)

    yield from kit.iterate(x, evaluate, steps=steps, update=kit.MomentumStep(budget, mu), start=start, watch=watch)


def _default_alpha(eps, steps, kw: dict) -> float:
    """ε/steps, from checked values (``steps=0`` is a clear error, not a ZeroDivisionError)."""
    norm = V.choice(kw.get("norm", "linf"), "norm", NORMS)
    return V.budget(eps, norm) / V.integer(steps, "steps", hint="the number of updates")


def fgsm(x: torch.Tensor, models: Models, *, eps: float = 8 / 255, **kw) -> Iterator[Step]:
    """FGSM: one step of size ε from x (no random start)."""
    return pgd(x, models, eps=eps, alpha=eps, steps=1, random_start=False, **kw)


def ifgsm(x: torch.Tensor, models: Models, *, eps: float = 8 / 255, steps: int = 10, alpha: float | None = None, **kw) -> Iterator[Step]:
    """I-FGSM / BIM: PGD started at x, step ε/steps unless given."""
    return pgd(x, models, eps=eps, steps=steps, alpha=_default_alpha(eps, steps, kw) if alpha is None else alpha,
               random_start=False, **kw)


def mifgsm(x: torch.Tensor, models: Models, *, eps: float = 8 / 255, steps: int = 10, mu: float = 1.0,
           alpha: float | None = None, **kw) -> Iterator[Step]:
    """MI-FGSM: momentum μ (1.0 in Dong et al.), step ε/steps, started at x.
    Add ``diversity_prob`` for DI-MI-FGSM and ``ti_kernel`` for TI."""
    return pgd(x, models, eps=eps, steps=steps, mu=mu, alpha=_default_alpha(eps, steps, kw) if alpha is None else alpha,
               random_start=False, **kw)
