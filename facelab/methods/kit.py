"""The method kit: what every iterative method shares, written once.

A paper's module keeps only its paper: its loss, its state, its update when it
has its own.  The kit owns the rest:

* :class:`Budget`: ε, α and the norm, checked once at the door, with the
  projection onto the ε-ball and the [0,1] box;
* :class:`MomentumStep`: the MI-FGSM / PGD update
  g ← μ·g + ∇/‖∇‖₁ (or ∇ alone when μ = 0), x ← Π_ε(x − α·s(g));
* :class:`Watch`: models that are only watched (no gradient), one forward each
  per Step, reported beside the attacked models' similarities;
* :func:`iterate`: the loop.  Step 0 is the start, Steps 1…T follow each
  update, and the last Step makes no update.  Every Step's state carries
  ``"norm"`` (per-image ‖x_i − x‖) and ``"similarity"`` {model: per image}.

A method supplies ``evaluate(x_i, i, update)``.  It computes the losses and
state of x_i and, when ``update`` is true, the gradient of the loss to
*minimise*, from the same forward where it can.  The report of x_i then costs no
extra pass, and the last Step costs one forward.  See ``docs/architecture.md``
("The method kit", "Adding a paper").

A dodging attack in a dozen lines (on a seeded synthetic model, so nothing is fetched):

>>> import torch
>>> from facelab.methods import kit
>>> from facelab.models.synthetic import synthetic_model
>>> model = synthetic_model(seed=1)
>>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))   # (N, 3, H, W) in [0,1]
>>> budget = kit.Budget.checked(x, eps=8 / 255, alpha=None, default_alpha=lambda eps: eps / 4)
>>> reference = model(x)
>>> def evaluate(x_i, i, update):          # the loss to descend: similarity to the clean face
...     x_i = x_i.detach().requires_grad_(update)
...     with torch.set_grad_enabled(update):
...         sim = model.similarity(model(x_i), reference)
...         grad = torch.autograd.grad(sim.sum(), x_i)[0] if update else None
...     return kit.Evaluation({"sim": sim.detach()}, {"similarity": {model.name: sim.detach()}}, grad=grad)
>>> start = budget.project(x + (torch.rand(x.shape, generator=kit.generator(0)) - 0.5) * budget.eps, x)
>>> steps = list(kit.iterate(x, evaluate, steps=4, update=kit.MomentumStep(budget, mu=1.0), start=start))
>>> [s.i for s in steps], tuple(steps[-1].x.shape), sorted(steps[-1].state)
([0, 1, 2, 3, 4], (2, 3, 32, 32), ['norm', 'similarity'])
>>> bool((steps[-1].losses["sim"] < steps[0].losses["sim"]).all()), bool((steps[-1].state["norm"] <= budget.eps).all())
(True, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from .. import validate as V
from ..ops import accumulate_momentum, as_models, clip_to_budget, lp_norm, steepest_step
from ..ops.budget import Norm
from ..steps import Step

#: one face model, or several (an ensemble whose terms a method averages or sums)
Models = nn.Module | Sequence[nn.Module]
NORMS: tuple[str, ...] = ("linf", "l2")

__all__ = ["Models", "NORMS", "Budget", "MomentumStep", "Watch", "Evaluation", "iterate", "generator",
           "watched_models"]


@dataclass(frozen=True)
class Budget:
    """The perturbation budget of an iterative method, on the [0,1] pixel scale.

    ``eps`` is ε, the radius of the ball around the clean images; ``alpha`` is α,
    the length of one step; ``norm`` is ``"linf"`` or ``"l2"``."""

    eps: float
    alpha: float
    norm: Norm

    @classmethod
    def checked(cls, x: torch.Tensor, *, eps: Any, alpha: Any, norm: Any = "linf",
                default_alpha: Callable[[float], float], example: str = "8/255",
                l2_limit: bool = True) -> "Budget":
        """Check ε, α and the norm for images ``x``.  ``alpha`` None takes
        ``default_alpha(ε)``, the paper's choice.  ``l2_limit``: refuse an L2 ε
        larger than any distance between two images of ``x``'s size."""
        norm = V.choice(norm, "norm", NORMS)
        eps = V.budget(eps, norm, image_numel=x[0].numel() if l2_limit else None, example=example)
        alpha = default_alpha(eps) if alpha is None else V.step_size(alpha, norm)
        return cls(eps, alpha, norm)

    def project(self, x_adv: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``x_adv`` moved into the ε-ball around ``x0`` and the [0,1] box."""
        return clip_to_budget(x_adv, x0, self.eps, self.norm)

    def used(self, x_adv: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Per-image ‖x_adv − x0‖ in this budget's norm, shape (N,)."""
        return lp_norm(x_adv - x0, self.norm)


class MomentumStep:
    """The update of MI-FGSM (Dong et al., 2018), and of I-FGSM/PGD when μ = 0.

    g ← μ·g + ∇/‖∇‖₁ (per image), then x_{i+1} = Π_ε(x_i − α·s(g)), where s is
    sign(·) for L∞ and ·/‖·‖₂ for L2.  With μ = 0, g is the raw gradient (the
    same direction: only its scale differs).  ``g`` is the accumulated
    direction; a method that chooses its own next point hands it back through
    :meth:`jump`."""

    def __init__(self, budget: Budget, mu: float):
        self.budget = budget
        self.mu = mu
        self._g: torch.Tensor | None = None

    def momentum(self, like: torch.Tensor) -> torch.Tensor:
        """The accumulated direction g (zeros before the first update)."""
        return torch.zeros_like(like) if self._g is None else self._g

    def __call__(self, x_i: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        g = self.momentum(grad)
        self._g = accumulate_momentum(g, grad, self.mu) if self.mu > 0 else grad
        return self.budget.project(x_i - self.budget.alpha * steepest_step(self._g, self.budget.norm), x0).detach()

    def jump(self, x_next: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Take a point the method chose itself (with its own accumulated g)."""
        self._g = g
        return x_next.detach()


def watched_models(monitor: Sequence[nn.Module]) -> list[nn.Module]:
    """The checked list of watch-only models (empty when none are given)."""
    return as_models(monitor) if len(monitor) else []


class Watch:
    """Models only watched, never attacked: each Step embeds x_i once per model
    (no gradient) and reports its similarity to the model's reference
    (``references``, one (N, D) or (1, D) per model), and, when ``targets`` are
    given (one (k, D) per model), the best similarity to any of them."""

    def __init__(self, models: Sequence[nn.Module], references: Sequence[torch.Tensor],
                 targets: Sequence[torch.Tensor] | None = None):
        self.models, self.references, self.targets = list(models), list(references), targets

    def __bool__(self) -> bool:
        return bool(self.models)

    def __call__(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        sims: dict[str, torch.Tensor] = {}
        best: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for j, (m, ref) in enumerate(zip(self.models, self.references)):
                e = m(x)
                sims[m.name] = m.similarity(e, ref)
                if self.targets is not None:
                    best[m.name] = m.similarity(e[:, None], self.targets[j][None]).amax(1)
        return {"similarity": sims} | ({"target_similarity": best} if self.targets is not None else {})


@dataclass
class Evaluation:
    """What a method's ``evaluate`` reports about x_i.

    ``losses``: named loss terms of x_i; ``state``: the method's own state,
    where ``"similarity"`` {model: per image} holds the attacked models' view;
    ``grad``: ∇ of the loss to minimise (None at the last Step); ``jump``:
    instead of ``grad``, the next point and its accumulated direction, for a
    method that chooses its next point itself."""

    losses: Mapping[str, torch.Tensor]
    state: Mapping[str, Any] = field(default_factory=dict)
    grad: torch.Tensor | None = None
    jump: tuple[torch.Tensor, torch.Tensor] | None = None


def generator(seed: int) -> torch.Generator:
    """The run's random source: a CPU generator, so that the same seed gives the
    same draws on any device (draws are moved to the images' device)."""
    return torch.Generator(device="cpu").manual_seed(seed)


def iterate(
    x0: torch.Tensor,
    evaluate: Callable[[torch.Tensor, int, bool], Evaluation],
    *,
    steps: int,
    update: MomentumStep,
    start: torch.Tensor | None = None,
    watch: Watch | None = None,
) -> Iterator[Step]:
    """Run T = ``steps`` updates from ``start`` (default: the clean ``x0``) and
    yield T + 1 Steps.

    Step i holds x_i with ``evaluate(x_i, i, i < T)``'s losses and state, plus
    ``"norm"`` and the watched models' entries, which are merged into the state's
    per-model dicts (``"similarity"`` and, if watched, ``"target_similarity"``).
    Then x_{i+1} = ``update(x_i, grad, x0)``, or the evaluation's ``jump``."""
    x0 = x0.detach()
    x_i = (x0.clone() if start is None else start).detach()
    for i in range(steps + 1):
        more = i < steps
        ev = evaluate(x_i, i, more)
        state = dict(ev.state)
        if watch:
            for key, per_model in watch(x_i).items():
                state[key] = {**state.get(key, {}), **per_model}
        state["norm"] = update.budget.used(x_i, x0)
        yield Step(i, x_i, ev.losses, state)
        if more:
            if ev.jump is not None:
                x_i = update.jump(*ev.jump)
            elif ev.grad is None:
                raise RuntimeError(f"evaluate gave neither a gradient nor a next point at step {i} of {steps}")
            else:
                x_i = update(x_i, ev.grad, x0)
