"""Focal diversity of a team of models (PMask §5, Eq. 9–10).

Each model F of a pool has *negative samples* NS(F): validation samples it
fails on (for face recognition: the probe's nearest gallery image has the
wrong identity).  Samples every pool model fails on are removed first.  For a
team 𝒯 of S models and a *focal* member, Y is the fraction of the team that
fails on a random x ∈ NS(F_focal); p_i = P(Y = i/S).

The measure comes from Partridge & Krzanowski (1997, "Software diversity:
practical statistics for its measurement and exploitation"): with

    p(1) = Σ_{i=1}^S (i/S) p_i                  (one random member fails)
    p(2) = Σ_{i=1}^S i(i−1)/(S(S−1)) p_i        (two distinct random members both fail)

the *generalized diversity* is GD = 1 − p(2)/p(1) ∈ [0, 1]: 0 when every
failure is shared by the whole team, 1 when a failure of one member is
always accompanied by success of the other.  Focal diversity (Wu & Liu 2021;
Wu, Liu, Xie, Chow, Wei, CVPR 2021) evaluates it on each member's negative
samples and averages over the members.

**The printed Eq. 9 is inverted.**  PMask prints λ = p(1)/p(2), which is ≥ 1
whenever it is defined (i(i−1)/(S(S−1)) ≤ i/S), so it cannot lie in [0, 1]
as the text says, and 1 − λ in Eq. 10 would be ≤ 0.  The cited definition
(and the authors' EnsembleBench code, where GD = 1 − p(2)/p(1)) gives the
focal negative correlation λ = p(2)/p(1) ∈ [0, 1], 0 when failures never
coincide; then Eq. 10, d_focal = (1/S) Σ_focal (1 − λ), is the mean GD over
focal members.  That is what is implemented here.

Choices where the papers are silent: a focal member with no negative sample
left (it fails nowhere except where all pool models fail) has no λ and is
left out of the mean; a team where no member has one gets NaN.  Teams need
S ≥ 2 (p(2) needs two distinct members).
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np


def _failures(failures) -> np.ndarray:
    f = np.asarray(failures)
    if f.ndim != 2:
        raise ValueError(f"failures must be a boolean (n_models, n_samples) matrix; got shape {f.shape}")
    if f.dtype != bool:
        if not np.isin(f, (0, 1)).all():
            raise ValueError("failures must hold booleans (True = the model fails on the sample)")
        f = f.astype(bool)
    return f


def _team(team: Sequence[int], n_models: int) -> list[int]:
    t = [int(i) for i in team]
    if len(t) < 2:
        raise ValueError(f"team needs at least 2 models (p(2) of Eq. 9 pairs two distinct members); got {t}")
    if len(set(t)) != len(t):
        raise ValueError(f"team has a repeated model: {t}")
    bad = [i for i in t if not 0 <= i < n_models]
    if bad:
        raise ValueError(f"team indices {bad} are not rows of failures (0 … {n_models - 1})")
    return t


def generalized_diversity(failures) -> float:
    """GD = 1 − p(2)/p(1) of Partridge & Krzanowski for the (S, n) failure matrix
    of one team on n samples; NaN when no member fails on any sample."""
    f = _failures(failures)
    s, n = f.shape
    if s < 2:
        raise ValueError("generalized diversity needs at least 2 models")
    if n == 0:
        return float("nan")
    counts = f.sum(0)  # how many members fail on each sample
    p = np.bincount(counts, minlength=s + 1) / n  # p_i, i = 0 … S
    i = np.arange(s + 1)
    p1 = float((i / s * p).sum())
    p2 = float((i * (i - 1) / (s * (s - 1)) * p).sum())
    return float("nan") if p1 == 0 else 1 - p2 / p1


def negative_samples(failures) -> np.ndarray:
    """NS(F) for every pool model as a boolean (n_models, n_samples) mask: the
    model's failures, minus the samples every pool model fails on (§5)."""
    f = _failures(failures)
    return f & ~f.all(0, keepdims=True)


def focal_negative_correlation(failures, team: Sequence[int], focal: int) -> float:
    """λ^focal(𝒯; F_focal) = p(2)/p(1) of the team on NS(F_focal) (Eq. 9 as cited,
    see the module doc); NaN if the focal model has no negative sample."""
    f = _failures(failures)
    t = _team(team, f.shape[0])
    if int(focal) not in t:
        raise ValueError(f"focal model {focal} is not in the team {t}")
    ns = negative_samples(f)[int(focal)]
    if not ns.any():
        return float("nan")
    return 1 - generalized_diversity(f[t][:, ns])


def focal_diversity(failures, team: Sequence[int]) -> float:
    """d_focal(𝒯) = (1/S) Σ_{F_focal ∈ 𝒯} (1 − λ^focal(𝒯; F_focal))  (Eq. 10).

    ``failures``: boolean (n_models, n_samples), True where a pool model fails
    to recognise a validation sample; ``team``: row indices of the members.
    In [0, 1]; higher = the members' mistakes coincide less."""
    f = _failures(failures)
    t = _team(team, f.shape[0])
    lams = [focal_negative_correlation(f, t, m) for m in t]
    vals = [1 - lam for lam in lams if not np.isnan(lam)]
    return float(np.mean(vals)) if vals else float("nan")


def rank_teams(failures, size: int, names: Sequence[str] | None = None) -> list[tuple[tuple, float]]:
    """Every team of ``size`` models from the pool (the rows of ``failures``),
    with its focal diversity, most diverse first (ties, and NaN last, in
    enumeration order).  Teams are tuples of ``names`` if given, else of row indices."""
    f = _failures(failures)
    if names is not None and len(names) != f.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {f.shape[0]} models")
    if not 2 <= size <= f.shape[0]:
        raise ValueError(f"size must be between 2 and the pool size {f.shape[0]}; got {size}")
    scored = [(t, focal_diversity(f, t)) for t in combinations(range(f.shape[0]), size)]
    order = sorted(range(len(scored)), key=lambda k: (np.isnan(scored[k][1]), -np.nan_to_num(scored[k][1]), k))
    out = []
    for k in order:
        t, d = scored[k]
        out.append((tuple(names[i] for i in t) if names is not None else t, d))
    return out
