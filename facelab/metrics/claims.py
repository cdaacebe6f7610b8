"""Statistics behind a paper claim, and the one place its verdict is worded.

A claim compares two settings on the same units (probes, trials, probe-model
pairs): paired outcomes.  Its verdict comes from the effect, a confidence
interval and a test — never from the sign of a difference alone:

>>> v = verdict(effect=0.04, ci=(-0.02, 0.10), p=0.45)
>>> v
'direction holds, not significant'
>>> verdict(effect=0.20, ci=(0.08, 0.31), p=0.002)
'holds (significant)'
>>> verdict(effect=-0.20, ci=(-0.31, -0.08), p=0.002)
'reversed (significant)'
>>> verdict(effect=0.0, ci=(-0.05, 0.05), p=1.0)
'no difference'
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Mapping, Sequence

import numpy as np

VERDICTS = (
    "holds (significant)",
    "direction holds, not significant",
    "no difference",
    "reversed, not significant",
    "reversed (significant)",
)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test on paired binary outcomes: ``wins`` pairs
    favour the claim, ``losses`` oppose it (ties are dropped, as the test
    prescribes).  Returns the p-value (1.0 when no pair differs)."""
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be counts >= 0, got {wins}, {losses}")
    n = wins + losses
    if n == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats costs ~1 s to import; only the tests need it

    return float(binomtest(wins, n, 0.5).pvalue)


def discordant(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """Paired binary outcomes of two settings on the same units: ``(only_a, only_b, p)``, the units
    where only A succeeded, where only B did, and the exact sign (McNemar) test's p on them."""
    a_, b_ = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a_.shape != b_.shape:
        raise ValueError(f"a and b must be paired (same shape), got {a_.shape} and {b_.shape}")
    only_a, only_b = int((a_ & ~b_).sum()), int((b_ & ~a_).sum())
    return only_a, only_b, sign_test(only_a, only_b)


def paired_signs(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, float]:
    """Paired numbers of two settings on the same units: ``(higher, lower, p)``, how many units have
    a > b and a < b, and the exact sign test's p (ties dropped)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    higher, lower = int((d > 0).sum()), int((d < 0).sum())
    return higher, lower, sign_test(higher, lower)


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], *, level: float = 0.95,
                        n_boot: int = 10_000, seed: int = 0,
                        clusters: Sequence[object] | None = None) -> tuple[float, float, float]:
    """Mean of ``a − b`` over paired units and its percentile bootstrap CI.

    ``clusters`` (one label per unit, e.g. the probe a probe-model pair comes
    from) resamples whole clusters, so correlated units are not counted as
    independent evidence.  Returns ``(effect, lo, hi)``.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("a and b must be non-empty 1-D sequences of the same length")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    if clusters is None:
        idx = rng.integers(0, d.size, size=(n_boot, d.size))
        means = d[idx].mean(axis=1)
    else:
        labels = np.asarray(clusters, dtype=object)
        if labels.shape != d.shape:
            raise ValueError("clusters must give one label per paired unit")
        groups = [d[labels == g] for g in dict.fromkeys(labels.tolist())]
        sums = np.array([g.sum() for g in groups])
        sizes = np.array([g.size for g in groups])
        pick = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        means = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(d.mean()), float(lo), float(hi)


def verdict(effect: float, ci: tuple[float, float] | None = None, p: float | None = None, *,
            alpha: float = 0.05) -> str:
    """Word a claim whose predicted direction is ``effect > 0``.

    Significant means the test rejects at ``alpha`` *and* the CI excludes 0
    (when only one of the two is available, that one decides).  An effect of
    exactly 0 with a CI around it is "no difference".
    """
    if ci is None and p is None:
        raise ValueError("verdict needs a confidence interval, a p-value, or both")
    ci_excludes_zero = True
    if ci is not None:
        lo, hi = ci
        if lo > hi:
            raise ValueError(f"ci must be (low, high), got {ci}")
        ci_excludes_zero = lo > 0 or hi < 0
    significant = ci_excludes_zero and (p is None or p < alpha)
    if effect > 0:
        return VERDICTS[0] if significant else VERDICTS[1]
    if effect < 0:
        return VERDICTS[4] if significant else VERDICTS[3]
    return VERDICTS[2]


@dataclass(frozen=True)
class PairedComparison:
    """A claim "A beats B" measured on paired binary outcomes (1 = success)."""

    rate_a: float
    rate_b: float
    wins: int        # units where A succeeded and B did not
    losses: int      # units where B succeeded and A did not
    n: int           # paired units
    p: float
    ci: tuple[float, float]
    verdict: str

    def summary(self) -> str:
        return (f"{self.rate_a:.3f} vs {self.rate_b:.3f} (n = {self.n}; discordant {self.wins}:{self.losses}; "
                f"Δ 95% CI [{self.ci[0]:+.3f}, {self.ci[1]:+.3f}]; sign test p = {self.p:.2g})")


def compare_paired(a: Sequence[bool], b: Sequence[bool], *, clusters: Sequence[object] | None = None,
                   seed: int = 0) -> PairedComparison:
    """Exact sign test + bootstrap CI + verdict for "A's success rate beats B's"."""
    a_ = np.asarray(a, dtype=bool)
    b_ = np.asarray(b, dtype=bool)
    if a_.shape != b_.shape or a_.ndim != 1 or a_.size == 0:
        raise ValueError("a and b must be non-empty 1-D boolean sequences of the same length")
    wins, losses = int((a_ & ~b_).sum()), int((b_ & ~a_).sum())
    p = sign_test(wins, losses)
    effect, lo, hi = paired_bootstrap_ci(a_, b_, clusters=clusters, seed=seed)
    return PairedComparison(float(a_.mean()), float(b_.mean()), wins, losses, int(a_.size), p, (lo, hi),
                            verdict(effect, (lo, hi), p))


def chance_top_n(gallery_size: int, relevant: int, n: int) -> float:
    """Probability that a uniformly random ranking of ``gallery_size`` images
    puts at least one of ``relevant`` images in its top ``n``: the chance
    level of a rank-N identification rate.

    >>> round(chance_top_n(55, 12, 5), 3)
    0.723
    """
    if not (0 <= relevant <= gallery_size and 1 <= n):
        raise ValueError(f"need 0 <= relevant <= gallery_size and n >= 1; got {relevant}, {gallery_size}, {n}")
    n = min(n, gallery_size)
    return 1.0 - comb(gallery_size - relevant, n) / comb(gallery_size, n)


@dataclass(frozen=True)
class SeedSpread:
    """One claim measured once per seed: the per-seed effects, their spread, and each seed's verdict.

    Seeds are reruns of one protocol, not independent samples (the same faces and models come
    back in every seed), so nothing here pools them into one test: each seed keeps its own
    verdict, and :meth:`verdicts_summary` counts the seeds in which each verdict holds.
    """

    seeds: tuple
    effects: tuple[float, ...]
    verdicts: tuple[str, ...]

    @property
    def low(self) -> float:
        return min(self.effects)

    @property
    def high(self) -> float:
        return max(self.effects)

    @property
    def mean(self) -> float:
        return float(np.mean(self.effects))

    @property
    def sd(self) -> float:
        """Sample standard deviation over seeds (0 for a single seed)."""
        return float(np.std(self.effects, ddof=1)) if len(self.effects) > 1 else 0.0

    @property
    def stable(self) -> bool:
        """Every seed gives the same verdict."""
        return len(set(self.verdicts)) == 1

    def counts(self) -> dict[str, int]:
        """Seeds per verdict, in :data:`VERDICTS` order, verdicts no seed gave left out."""
        return {v: self.verdicts.count(v) for v in VERDICTS if v in self.verdicts}

    def verdicts_summary(self) -> str:
        """E.g. ``"holds (significant) in 2 of 3 seeds; direction holds, not significant in 1"``."""
        n = len(self.verdicts)
        parts = [f"{v} in {c}" for v, c in self.counts().items()]
        parts[0] += f" of {n} seed{'s' if n != 1 else ''}"
        return "; ".join(parts)

    def spread(self, fmt: str = "+.3f", *, scale: float = 1.0) -> str:
        """``"min … max; mean ± sd"`` of the effects, each multiplied by ``scale`` first (100 words a
        difference of rates in percentage points), the sd without a sign.

        >>> SeedSpread((0, 1), (0.02, 0.04), ("", "")).spread("+.1f", scale=100)
        '+2.0 … +4.0; mean +3.0 ± 1.4 (sd)'
        """
        f = lambda v, spec=fmt: format(scale * v, spec)  # noqa: E731
        return f"{f(self.low)} … {f(self.high)}; mean {f(self.mean)} ± {f(self.sd, fmt.lstrip('+'))} (sd)"

    @classmethod
    def from_record(cls, record: Mapping) -> SeedSpread:
        """The spread of a claim record that lists its ``"seeds"``, ``"effects"`` and ``"verdicts"``
        (the over-seeds records the paper claim modules write to their results JSON)."""
        return cls(tuple(record["seeds"]), tuple(record["effects"]), tuple(record["verdicts"]))


def in_every_seed(kept: int, total: int, things: str, one: str, many: str) -> str:
    """How much of a set every seed keeps, e.g. ``"5 of the 16 probes are probes in every seed"``,
    ``"1 of the 8 probes is a probe in every seed"`` (``one``/``many``: the role, singular and plural).

    >>> in_every_seed(1, 8, "probes", "a probe", "probes")
    '1 of the 8 probes is a probe in every seed'
    """
    return f"{kept} of the {total} {things} {'is ' + one if kept == 1 else 'are ' + many} in every seed"


def over_seeds(per_seed, *, alpha: float = 0.05) -> SeedSpread:
    """Summarise a claim measured once per seed.

    ``per_seed`` maps each seed to ``(effect, ci, p)`` (``ci`` or ``p`` may be None, as in
    :func:`verdict`), or to a :class:`PairedComparison`.  Each seed is worded by :func:`verdict` on
    its own statistics; the seeds are not pooled.

    >>> s = over_seeds({0: (0.2, (0.1, 0.3), 0.01), 1: (0.1, (-0.1, 0.3), 0.3), 2: (0.3, (0.2, 0.4), 0.001)})
    >>> s.verdicts_summary()
    'holds (significant) in 2 of 3 seeds; direction holds, not significant in 1'
    >>> s.spread()
    '+0.100 … +0.300; mean +0.200 ± 0.100 (sd)'
    """
    items = list(per_seed.items())
    if not items:
        raise ValueError("over_seeds needs at least one seed")
    seeds, effects, verdicts = [], [], []
    for seed, m in items:
        if isinstance(m, PairedComparison):
            effect, ci, p = m.rate_a - m.rate_b, m.ci, m.p
        else:
            effect, ci, p = m
        seeds.append(seed)
        effects.append(float(effect))
        verdicts.append(verdict(float(effect), ci, p, alpha=alpha))
    return SeedSpread(tuple(seeds), tuple(effects), tuple(verdicts))
