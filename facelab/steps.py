"""The stepwise protocol every facelab method follows.

A method is a generator: calling it does nothing, each ``next()`` runs one
optimisation (or training) step and yields a :class:`Step`.  The final result
is the last step.  Yielding is cheap: tensors stay where the loop made them
(no copy to the CPU, no ``.item()`` sync); what to keep is the consumer's
choice (:func:`run`, :func:`history`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import torch

from . import validate as V


def _freeze(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Step:
    """One iteration of a method.

    ``i``       iteration number (0 = the starting point, before any update)
    ``x``       the current images, float [0,1] NCHW, detached
    ``losses``  named loss terms (0-d or per-image tensors, detached)
    ``state``   the algorithm's own state (boundary flag, chosen target, κ …)
    """

    i: int
    x: torch.Tensor
    losses: Mapping[str, torch.Tensor] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "losses", _freeze(self.losses))
        object.__setattr__(self, "state", _freeze(self.state))

    def scalars(self) -> dict[str, float]:
        """Every loss term as a float (per-image terms are averaged). Syncs."""
        return {k: float(torch.as_tensor(v, dtype=torch.float64).mean()) for k, v in self.losses.items()}

    def to(self, device: torch.device | str) -> "Step":
        """A copy with every tensor (images, losses, tensors in state) on ``device``."""
        return Step(self.i, self.x.to(device), {k: _to(v, device) for k, v in self.losses.items()},
                    {k: _to(v, device) for k, v in self.state.items()})


def _to(v: Any, device: torch.device | str) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().to(device)
    if isinstance(v, Mapping):
        return {k: _to(w, device) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_to(w, device) for w in v)
    return v


def _progress(steps: Iterable[Step], progress: bool | str, total: int | None, desc: str | None) -> Iterable[Step]:
    """``steps`` behind a tqdm bar (a widget in notebooks, text in a terminal) when asked."""
    if not progress:
        return steps
    from tqdm.auto import tqdm

    if total is None and hasattr(steps, "__len__"):
        total = len(steps)
    return tqdm(steps, total=total, desc=progress if isinstance(progress, str) else desc, unit="step", leave=False)


def run(steps: Iterable[Step], progress: bool | str = False, total: int | None = None, desc: str | None = None) -> Step:
    """Drain a method and return its last step.

    ``progress``: show a tqdm bar (a string is its label); ``total``: the number
    of Steps to expect (a method yields ``steps + 1``), for a bar with an end.
    """
    last = None
    for last in _progress(steps, progress, total, desc):
        pass
    if last is None:
        raise ValueError("the method yielded no step")
    return last


@dataclass
class History:
    """What :func:`history` kept: ``steps`` (every k-th, on the CPU, always
    including the first and last), ``curves`` — every loss term of *every*
    step as floats, so loss plots are complete even when images are thinned —
    and ``state_curves``: numeric state of every step (a tensor as its mean,
    a dict of tensors as ``"key/name"``, e.g. ``"similarity/mobileface"``)."""

    steps: list[Step]
    curves: dict[str, list[float]]
    iterations: list[int]
    keep_every: int
    state_curves: dict[str, list[float]] = field(default_factory=dict)

    @property
    def last(self) -> Step:
        return self.steps[-1]

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int) -> Step:
        return self.steps[k]


def history(steps: Iterable[Step], keep_every: int = 1, max_kept: int | None = 200, device: str = "cpu",
            progress: bool | str = False, total: int | None = None, first: Step | None = None) -> History:
    """Drain a method, keeping a memory-bounded record of it.

    Keeps every ``keep_every``-th step (moved to ``device``); whenever more
    than ``max_kept`` would be kept, ``keep_every`` doubles and the kept list
    is thinned to match, so memory stays bounded however long the run is.
    ``keep_every`` and ``max_kept`` are ints ≥ 1 (``max_kept=None``: no bound);
    the first step is always among the kept ones and the last is added to
    them, so up to ``max_kept + 1`` steps come back.
    """
    keep_every = V.integer(keep_every, "keep_every", hint="keep every k-th step; 1 keeps all")
    max_kept = V.optional_integer(max_kept, "max_kept", hint="the most steps to keep, or None for no bound")
    kept: list[tuple[int, Step]] = []
    curves: dict[str, list[float]] = {}
    iterations: list[int] = []
    last: tuple[int, Step] | None = None
    state_curves: dict[str, list[float]] = {}
    if first is not None:
        steps = itertools.chain([first], steps)
    for n, step in enumerate(_progress(steps, progress, total, None)):
        iterations.append(step.i)
        for target, values in ((curves, step.scalars()), (state_curves, state_scalars(step.state))):
            for k, v in values.items():
                target.setdefault(k, [float("nan")] * n).append(v)
            for series in target.values():
                if len(series) < len(iterations):
                    series.append(float("nan"))
        last = (n, step)
        if n % keep_every == 0:
            kept.append((n, step.to(device)))
            while max_kept is not None and len(kept) > max_kept:
                keep_every *= 2
                kept = [(m, s) for m, s in kept if m % keep_every == 0]
    if last is None:
        raise ValueError("the method yielded no step")
    if kept[-1][0] != last[0]:
        kept.append((last[0], last[1].to(device)))
    return History([s for _, s in kept], curves, iterations, keep_every, state_curves)


def _scalar(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        return float(v.detach().double().mean()) if (v.is_floating_point() or v.numel() == 1) else None
    if isinstance(v, (int, float)):  # bools too: a boundary flag plots as 0/1
        return float(v)
    return None


def state_scalars(state: Mapping[str, Any]) -> dict[str, float]:
    """Numeric entries of a Step's state as floats (per-image tensors averaged;
    one level of dicts flattened to ``"key/name"``).  Syncs."""
    out: dict[str, float] = {}
    for k, v in state.items():
        items = v.items() if isinstance(v, Mapping) else [(None, v)]
        for sub, w in items:
            f = _scalar(w)
            if f is not None:
                out[k if sub is None else f"{k}/{sub}"] = f
    return out
