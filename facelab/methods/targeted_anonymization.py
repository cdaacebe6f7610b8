"""Targeted Anonymization with boundary walking (Ding et al., ICASSP 2023).

*Targeted Anonymization: a face image anonymization method for unauthorized
models.*  An organisation (the **authorized** model f_A) must keep recognising
its users' stored photos, while anyone who steals them (**target** models,
never seen) should not.  A transfer attack on **victim** model(s) f_V
anonymises the photo; the authorized model is kept on the right side of a
decision boundary around the user's *average* feature f̄_A.

Equations as facelab implements them (J = the model's own similarity,
:meth:`FaceModel.similarity`: cosine as in the paper, or −L2 for
faceapi-resnet, whose metric is Euclidean):

* Eq. (1)  min_δ J(f_V(x0+δ), f_V(x0)),  ‖δ‖∞ < ε                (transfer attack)
* Eq. (2)  min_δ J(f_V(x0+δ), f_V(x0)) − d·J(f_A(x0+δ), f_A(x0)),  ‖δ‖∞ < ε
  — *missing from the paper's text*; reconstructed from §3.1's prose ("add
  this condition to Formula (1)", "d denotes the weighting of the authorized
  model") and §3.2 ("Formula (2) only ensures that the generated sample is
  recognized as the same user as the original sample"), i.e. both references
  are the original sample.  This is the paper's **baseline**:
  :func:`targeted_anonymization_baseline`.
* Eq. (3)  f̄ = mean_i f(x_i) over the user's images (the paper writes
  1/l·Σ_{i=0}^{l}, an off-by-one; we take the mean of the l images given).
  For cosine models each embedding is L2-normalised first, so every photo
  weighs the same (cosine ignores the mean's length); for the Euclidean
  model the raw embeddings are averaged.  See :func:`average_features`.
* Eq. (4)  th_new = c·J(f̄_A, f_A(x0)) + (1−c)·th_old,  c ∈ [0,1]  (see below)
* Eq. (5)  bd = 0 if J(f_A(x+δ), f̄_A) ≥ th_new else 1
* Eq. (6)  min_δ J(f_V(T(x0+δ, p)), f̄_V) − bd·d·J(f_A(x0+δ), f̄_A),  ‖δ‖∞ < ε
  — *also missing from the text*; reconstructed from Algorithm 1, line 4
  (the loss) and the sentence after it (input diversity T is **not** used on
  the authorized term).

**Reading of Eq. (4).**  Printed literally, th_new = c·J(f̄_A, f_A(x0+δ)) +
(1−c)·th_old uses the *current* sample; then Eq. (5)'s test
J ≥ c·J + (1−c)·th_old  ⇔  (1−c)·J ≥ (1−c)·th_old  ⇔  J ≥ th_old  for every
c < 1 (and is always true for c = 1): c would have no effect at all, which
contradicts Fig. 1 (TAR changes with c).  §3.2 defines the reliable region as
J(f_A(x0+δ), f̄_A) > J(f_A(x0), f̄_A) — the *clean* sample's similarity to the
average — and introduces c to relax that high bar towards th_old.  The
default ``threshold_from="clean"`` therefore uses J(f̄_A, f_A(x0)): th_new is
fixed for the run and interpolates between th_old (c = 0) and the clean
similarity (c = 1).  ``threshold_from="current"`` keeps the literal formula
so students can see c cancel.

**Parameters not fixed by the text.**

* α: the paper prints "α = 0.01·ε/m" (garbled: m is not defined; taken
  literally, 20 steps of 0.01·ε could use at most a fifth of the budget).
  Algorithm 1 says "update x by MI-FGM [11]", whose step is α = ε/T for T
  iterations; we read m as n and drop the stray factor: α = ε/n.
* d: no value is given for boundary walking.  Only the sign of the momentum
  is used, so d only matters relative to the victim gradient: d must be large
  enough that, whenever bd = 1, the authorized term dominates and the sample
  walks back across the boundary in a step or two.  The authorized gradient
  of a cosine is typically ~1–3× the victim's here, so the default d = 5
  makes it dominate; larger d changes little (bd is already a switch), much
  smaller d lets the sample drift inside the wrong side.  For the baseline
  the paper picks "a larger value of d" to reach ~98 % authorized TAR: the
  evaluation sweeps it (:mod:`facelab.experiments.targeted_anonymization`).
* p (input-diversity probability) and the resize range: not stated; Xie et
  al.'s p = 0.5 and facelab's shrink-and-pad with rate 0.9.
* bd starts from Eq. (5) at x0 (Algorithm 1 starts from bd = 0; the two agree
  whenever the clean photo is on the right side, which th_new ≤ J(f̄_A, f_A(x0))
  guarantees for c ≤ 1 when the clean photo passes th_old).
* th_old: the authorized model's calibrated threshold at ``far`` (the paper
  uses FAR = 1e-3); pass ``th_old`` to override.

Each :class:`~facelab.steps.Step` ``i`` holds x_i; its state is computed at
x_i and the update from x_i to x_{i+1} uses exactly that ``bd``.
"""
from __future__ import annotations

from typing import Iterator, Literal, Sequence

import torch
from torch import nn

from .. import validate as V
from ..ops import as_models, input_diversity
from ..steps import Step
from . import kit
from .kit import Models

UserImages = torch.Tensor | Sequence[torch.Tensor]


def average_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Eq. (3): the user's average feature f̄ under ``model``, shape (1, D).

    ``images`` (L,3,H,W) float [0,1] are photos of one person (the paper uses
    four, including the one to protect).  Cosine models: mean of the
    L2-normalised embeddings; Euclidean models: mean of the raw embeddings.
    """
    return _average(model, V.images(images, "user_images"))


def _average(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        e = model(images)
        if getattr(model, "metric", "cosine") != "euclidean":
            e = torch.nn.functional.normalize(e, dim=-1)
        return e.mean(0, keepdim=True)


def _per_image_users(x: torch.Tensor, user_images: UserImages) -> list[torch.Tensor]:
    """One checked (L,3,H,W) batch for the whole batch, or one per image."""
    if isinstance(user_images, torch.Tensor):
        return [V.images(user_images, "user_images")]  # one person, shared by the whole batch
    if isinstance(user_images, (str, bytes)) or not hasattr(user_images, "__len__"):
        raise TypeError(f"user_images must be one (L,3,H,W) tensor or a list of them, one per image; "
                        f"got {type(user_images).__name__}")
    if len(user_images) != x.shape[0]:
        raise ValueError(f"user_images: pass one (L,3,H,W) tensor, or one per image ({x.shape[0]}), got {len(user_images)}")
    return V.image_list(list(user_images), "user_images")


def _averages(model: nn.Module, x: torch.Tensor, users: list[torch.Tensor]) -> torch.Tensor:
    f = torch.cat([_average(model, u.to(x.device)) for u in users])
    return f.expand(x.shape[0], -1) if f.shape[0] == 1 else f


def _walk(
    x: torch.Tensor, victims: list[nn.Module], authorized: nn.Module, ref_v: list[torch.Tensor], ref_a: torch.Tensor,
    *, th_new: torch.Tensor | None, c: float, th_old: float | None, threshold_from: str, d: float, budget: kit.Budget,
    n: int, mu: float, p: float, resize_rate: float, watch: kit.Watch, monitor_every: int, seed: int,
) -> Iterator[Step]:
    """The loss of Algorithm 1 (``th_new`` given: boundary walking) and of the baseline (``th_new``
    None: bd ≡ 1, a fixed weight d), on the kit's MI-FGSM loop."""
    gen = kit.generator(seed)
    walking = th_new is not None or threshold_from == "current"

    def evaluate(x_adv: torch.Tensor, i: int, update: bool) -> kit.Evaluation:
        xg = x_adv.detach().requires_grad_(update)
        with torch.set_grad_enabled(update):
            sim_a = authorized.similarity(authorized(xg), ref_a)
            if walking:
                th = th_new if threshold_from == "clean" else c * sim_a.detach() + (1 - c) * th_old
                bd = (sim_a.detach() < th).to(x.dtype)  # Eq. (5)
            else:
                th, bd = None, torch.ones_like(sim_a.detach())
            xd = input_diversity(xg, p, resize_rate, gen) if update and p > 0 else xg
            sims_d = {m.name: m.similarity(m(xd), r) for m, r in zip(victims, ref_v)}
            j_v = torch.stack(list(sims_d.values())).mean(0)
            loss = j_v - bd * d * sim_a if bool(bd.any()) else j_v  # Eq. (6) / Eq. (2)
            grad = torch.autograd.grad(loss.sum(), xg)[0] if update else None
        with torch.no_grad():
            if xd is xg:
                sims = {k: v.detach() for k, v in sims_d.items()}
            elif i % monitor_every == 0:  # what the victims see without the random transform: one more forward
                sims = {m.name: m.similarity(m(x_adv), r) for m, r in zip(victims, ref_v)}
            else:
                sims = {}
            sims[authorized.name] = sim_a.detach()
        state = {"bd": bd, "sim_authorized": sim_a.detach(), "d": d, "similarity": sims}
        if walking:
            state |= {"th_new": th if th.ndim else th.expand_as(sim_a), "th_old": th_old, "c": c}
        return kit.Evaluation({"loss": loss.detach(), "victim": j_v.detach(), "authorized": sim_a.detach()}, state,
                              grad=grad)

    return kit.iterate(x, evaluate, steps=n, update=kit.MomentumStep(budget, mu), watch=watch)


def _resolve_th_old(authorized: nn.Module, th_old: float | None, far: float) -> float:
    if th_old is not None:
        return float(th_old)
    return float(authorized.threshold(far))


def _check(x: torch.Tensor, kw: dict) -> dict:
    """The checked arguments shared by both methods (``kw`` holds them by name)."""
    out = {"x": V.images(x, "x"), "n": V.integer(kw["n"], "n", hint="the number of iterations")}
    out["budget"] = kit.Budget.checked(out["x"], eps=kw["eps"], alpha=kw["alpha"], norm="linf",
                                       default_alpha=lambda eps: eps / out["n"])
    out["d"] = V.non_negative(kw["d"], "d", hint="the weight of the authorized model's term")
    out["mu"] = V.non_negative(kw["mu"], "mu", hint="the momentum decay of MI-FGSM, 0.6 in the paper")
    out["p"] = V.probability(kw["p"], "p", hint="the input-diversity probability")
    out["resize_rate"] = V.number(kw["resize_rate"], "resize_rate", low=0.0, high=1.0, low_open=True)
    out["seed"] = V.seed(kw["seed"])
    return out


def targeted_anonymization(
    x: torch.Tensor,
    user_images: UserImages,
    *,
    victim: Models,
    authorized: nn.Module,
    c: float = 0.5,
    d: float = 5.0,
    eps: float = 8 / 255,
    n: int = 20,
    mu: float = 0.6,
    alpha: float | None = None,
    th_old: float | None = None,
    far: float = 1e-3,
    p: float = 0.5,
    resize_rate: float = 0.9,
    threshold_from: Literal["clean", "current"] = "clean",
    monitor: Sequence[nn.Module] = (),
    monitor_every: int | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """Algorithm 1: targeted anonymization with boundary walking.

    ``x`` (N,3,H,W) float [0,1]: the photos to protect (x0).  ``user_images``:
    the user's photos for the average features of Eq. (3) — one (L,3,H,W)
    tensor for the whole batch, or one per image; the paper uses four photos
    including x0.  ``victim``: one model or an ensemble (its similarities are
    averaged, as in the paper's online evaluation); ``authorized``: f_A.

    Per iteration t < n (MI-FGSM with input diversity, Eq. 6):
    x_d = T(x_t, p);  loss = J(f_V(x_d), f̄_V) − bd·d·J(f_A(x_t), f̄_A);
    g ← μ·g + ∇loss/‖∇loss‖₁;  x_{t+1} = Π_ε(x_t − α·sign(g));  bd by Eq. (5).

    Defaults are the paper's (ε = 8/255, n = 20, μ = 0.6, FAR = 1e-3) where it
    gives them; α = ε/n, d = 5, p = 0.5 and c = 0.5 are facelab's choices
    (module docstring: why).  ``threshold_from``: Eq. (4)'s reference sample,
    ``"clean"`` (x0, default, the consistent reading) or ``"current"`` (x0+δ,
    the literal print, where c cancels).  ``monitor``: models only watched,
    e.g. the target models; their similarity to their own f̄ is in the state.
    ``monitor_every``: with input diversity (p > 0) the victims' gradient pass
    sees a transformed image, so their similarity to f̄ on the image itself
    costs one more victim forward; it is reported at the first and last Step
    by default (None), every k-th Step with ``monitor_every=k`` (1: every
    Step, for a curve).  The authorized and the watched models are reported
    at every Step.

    Yields n + 1 Steps (i = 0 is x0).  ``losses`` (per image): ``"loss"``,
    ``"victim"`` (J_V on the transformed input), ``"authorized"``
    (J(f_A(x), f̄_A)).  ``state``: ``"bd"`` (per image, 0./1.),
    ``"th_new"`` (per image), ``"th_old"``, ``"sim_authorized"``
    (J(f_A(x+δ), f̄_A), per image), ``"c"``, ``"d"``, ``"norm"`` (‖δ‖∞) and
    ``"similarity"`` {model: per-image similarity to that model's f̄}.
    """
    a = _check(x, dict(n=n, eps=eps, alpha=alpha, d=d, mu=mu, p=p, resize_rate=resize_rate, seed=seed))
    x, n, budget, d, mu, p, resize_rate, seed = (a[k] for k in ("x", "n", "budget", "d", "mu", "p", "resize_rate",
                                                                "seed"))
    monitor_every = n if monitor_every is None else V.integer(monitor_every, "monitor_every",
                                                              hint="report the victims every k-th Step; 1 = every Step")
    c = V.probability(c, "c", hint="Eq. 4: 0 = th_old, 1 = the clean photo's similarity")
    threshold_from = V.choice(threshold_from, "threshold_from", ("clean", "current"))
    far = V.number(far, "far", low=0.0, high=1.0, low_open=True, high_open=True, hint="a false-accept rate, e.g. 1e-3")
    if th_old is not None:
        th_old = V.number(th_old, "th_old", hint="a similarity threshold of the authorized model")
    victims = as_models(victim)
    (auth,) = as_models(authorized)
    watched = kit.watched_models(monitor)
    users = _per_image_users(x, user_images)
    th_old = _resolve_th_old(auth, th_old, far)
    x = x.detach()

    def run() -> Iterator[Step]:  # the references are the run's first work: calling only checks the arguments
        ref_v = [_averages(m, x, users) for m in victims]
        ref_a = _averages(auth, x, users)
        watch = kit.Watch(watched, [_averages(m, x, users) for m in watched])
        th_new = None
        if threshold_from == "clean":
            with torch.no_grad():
                th_new = c * auth.similarity(auth(x), ref_a) + (1 - c) * th_old  # Eq. (4), consistent reading
        yield from _walk(x, victims, auth, ref_v, ref_a, th_new=th_new, c=c, th_old=th_old,
                         threshold_from=threshold_from, d=d, budget=budget, n=n, mu=mu, p=p, resize_rate=resize_rate,
                         watch=watch, monitor_every=monitor_every, seed=seed)

    return run()


def targeted_anonymization_baseline(
    x: torch.Tensor,
    *,
    victim: Models,
    authorized: nn.Module,
    d: float = 1.0,
    eps: float = 8 / 255,
    n: int = 20,
    mu: float = 0.6,
    alpha: float | None = None,
    p: float = 0.5,
    resize_rate: float = 0.9,
    user_images: UserImages | None = None,
    monitor: Sequence[nn.Module] = (),
    monitor_every: int | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """The paper's baseline, Eq. (2) with a fixed weight d and no constraint:

    loss = J(f_V(T(x, p)), f_V(x0)) − d·J(f_A(x), f_A(x0)),

    optimised by the same MI-FGSM with input diversity (no diversity on the
    authorized term) and the same defaults as :func:`targeted_anonymization`.
    The paper raises d until the authorized TAR reaches ~98 %; sweep it.

    Both references are the original photo x0 (Eq. 2).  ``user_images`` is
    only for watching: when given, the ``"similarity"`` state of the
    ``monitor`` models is to their average feature (as in the boundary
    walking run) instead of to f(x0).  Yields n + 1 Steps; ``state``:
    ``"bd"`` (≡ 1), ``"d"``, ``"sim_authorized"`` (J(f_A(x), f_A(x0))),
    ``"norm"``, ``"similarity"`` (the victims' at the Steps ``monitor_every``
    picks, as in :func:`targeted_anonymization`).
    """
    a = _check(x, dict(n=n, eps=eps, alpha=alpha, d=d, mu=mu, p=p, resize_rate=resize_rate, seed=seed))
    x, n, budget, d, mu, p, resize_rate, seed = (a[k] for k in ("x", "n", "budget", "d", "mu", "p", "resize_rate",
                                                                "seed"))
    monitor_every = n if monitor_every is None else V.integer(monitor_every, "monitor_every",
                                                              hint="report the victims every k-th Step; 1 = every Step")
    victims = as_models(victim)
    (auth,) = as_models(authorized)
    watched = kit.watched_models(monitor)
    users = _per_image_users(x, user_images) if user_images is not None else None
    x = x.detach()

    def run() -> Iterator[Step]:
        with torch.no_grad():
            ref_v = [m(x) for m in victims]
            ref_a = auth(x)
            if users is not None:
                watch_refs = [_averages(m, x, users) for m in watched]
            else:
                watch_refs = [m(x) for m in watched]
        yield from _walk(x, victims, auth, ref_v, ref_a, th_new=None, c=0.0, th_old=None, threshold_from="clean",
                         d=d, budget=budget, n=n, mu=mu, p=p, resize_rate=resize_rate,
                         watch=kit.Watch(watched, watch_refs), monitor_every=monitor_every, seed=seed)

    return run()


__all__ = ["targeted_anonymization", "targeted_anonymization_baseline", "average_features"]
