"""The TIP-IM claims, measured on the benchmark's rows.

Every function here is a pure function of :func:`facelab.experiments.tip_im.run_protocol`'s
rows (one list of dict rows per seed, as ``benchmarks/results/tip_im.json`` holds them) and
returns plain numbers, counts, p-values, CIs and verdicts; the wording is in
:mod:`facelab.experiments.tip_im_report`.

The claims (Yang et al. 2020), each measured once per seed:

* (a) multi-target TIP-IM (gain G) beats the single-target baseline on black-box Rank-1-T
  (Table 2), and (a′) the same after subtracting each method's chance level (G aims at k
  targets, so a random ranking of the gallery already hits one more often than a single
  target): :func:`paired`, :func:`beyond_chance`;
* (b) raising γ raises PSNR and SSIM (Table 3), per consecutive γ step: :func:`quality_steps`;
* (c) the max gain G is at least as good as G1, G2 and a random target (Table 2's ablation);
* (d) input diversity raises transfer; and the paper's Alg. 1 against the authors' released
  code (no predicted direction).

Statistics: (a), (c), (d) and the paper-vs-code row pair the per-probe Rank-1-T outcomes of
two settings over (black-box model, probe) pairs; the pairs of one probe are correlated, so
the CI of the rate difference resamples whole probes, and the exact sign test on the
discordant pairs is optimistic for the same reason
(:func:`facelab.metrics.claims.compare_paired`).  (a′) has no sign test (it cannot see the
chance levels): its CI is the rate difference's, shifted by the difference of chance levels.
(b) is a paired bootstrap over probes.  A verdict says "holds" only when the sign test (where
there is one) gives p < 0.05 and the CI excludes 0 (:func:`facelab.metrics.claims.verdict`).

The seeds are not pooled (:func:`over_seeds`): they re-draw the split of the same photos and
the attack's randomness on the same identities and models, so each keeps its own verdict.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..metrics.claims import compare_paired, over_seeds as _over_seeds, paired_bootstrap_ci, verdict
from .tip_im import summarize

#: the rates the claims compare
KEY = "R1-T per probe"
#: the settings (c) compares the max gain G with
ABLATION = ("G1", "G2", "random")


def pairs(rows: Sequence[Mapping], method: str, gamma: float = 0.0, key: str = KEY) -> tuple[list, list]:
    """Per (black-box model, probe) outcomes of one setting, and each pair's probe (the cluster:
    the same probe faces every model, so its pairs are correlated)."""
    sel = [r for r in rows if r["method"] == method and r["gamma"] == gamma and r["box"] == "black"]
    if not sel:
        raise KeyError(f"no black-box rows of method {method!r} at gamma {gamma:g}")
    values = [v for r in sel for v in r[key]]
    clusters = [p for r in sel for p in r["probe ids"]]
    return values, clusters


def paired(rows: Sequence[Mapping], a: str, b: str, gamma: float = 0.0) -> dict:
    """"A beats B" on black-box Rank-1-T (both at ``gamma``): rates, discordant counts, n, the
    exact sign test's p, the cluster-bootstrap CI of the rate difference and the verdict."""
    va, clusters = pairs(rows, a, gamma)
    vb, clusters_b = pairs(rows, b, gamma)
    if clusters != clusters_b:
        raise ValueError(f"{a!r} and {b!r} are not paired: their rows hold other probes or models")
    c = compare_paired(va, vb, clusters=clusters)
    return {"a": a, "b": b, "rate_a": c.rate_a, "rate_b": c.rate_b, "wins": c.wins, "losses": c.losses, "n": c.n,
            "effect": c.rate_a - c.rate_b, "ci": list(c.ci), "p": c.p, "verdict": c.verdict}


def beyond_chance(rows: Sequence[Mapping], a: str, b: str) -> dict:
    """"A beats B" on black-box Rank-1-T after subtracting each method's chance level (the rate a
    random ranking of the gallery would give, which differs between a single target and k
    targets): the rate difference and its CI shifted by the difference of chance levels; no
    sign test (p is None: it cannot see chance)."""
    c = paired(rows, a, b)
    summ = summarize(rows)
    chance_a, chance_b = summ.one(method=a, gamma=0.0)["chance R1-T"], summ.one(method=b, gamma=0.0)["chance R1-T"]
    shift = chance_a - chance_b
    effect, lo, hi = c["rate_a"] - c["rate_b"] - shift, c["ci"][0] - shift, c["ci"][1] - shift
    return {"a": a, "b": b, "rate_a": c["rate_a"], "rate_b": c["rate_b"], "chance_a": chance_a, "chance_b": chance_b,
            "above_a": c["rate_a"] - chance_a, "above_b": c["rate_b"] - chance_b, "n": c["n"], "effect": effect,
            "ci": [lo, hi], "p": None, "verdict": verdict(effect, (lo, hi))}


def gammas(rows: Sequence[Mapping], method: str = "G") -> list[float]:
    """The γ values ``method`` ran at, ascending."""
    return sorted({float(r["gamma"]) for r in rows if r["method"] == method and not math.isnan(float(r["gamma"]))})


def quality_steps(rows: Sequence[Mapping], method: str = "G") -> list[dict]:
    """(b) per quality measure (PSNR, then SSIM) and per consecutive γ step of ``method``: the
    paired change of the per-probe value (higher γ minus lower), its bootstrap CI over probes
    and the verdict (the claim: it rises)."""
    gs = gammas(rows, method)
    if len(gs) < 2:
        raise ValueError(f"(b) needs {method!r} at two or more γ, got {gs}")
    out = []
    for key in ("PSNR", "SSIM"):
        per = {g: next(r for r in rows if r["method"] == method and r["gamma"] == g)[f"{key} per probe"] for g in gs}
        for g0, g1 in zip(gs, gs[1:]):
            e, lo, hi = paired_bootstrap_ci(per[g1], per[g0])
            out.append({"measure": key, "method": method, "gamma_from": g0, "gamma_to": g1, "n": len(per[g1]),
                        "effect": e, "ci": [lo, hi], "p": None, "verdict": verdict(e, (lo, hi))})
    return out


def black_rate(rows: Sequence[Mapping], method: str, gamma: float = 0.0) -> dict:
    """A setting's black-box Rank-1-T (the mean over black-box models) and its chance level."""
    r = summarize(rows).one(method=method, gamma=gamma)
    return {"rate": r["black R1-T"], "chance": r["chance R1-T"]}


def measure(rows: Sequence[Mapping]) -> list[dict]:
    """One seed's claims, in the order of the claims table: each a dict with ``claim`` (its id:
    ``a``, ``a′``, ``b``, ``c``, ``d``, ``code``), ``label`` (its row over seeds), ``effect``, ``ci``,
    ``p`` (None where there is no sign test), ``verdict``, the numbers behind them, and
    ``rates``: the black-box Rank-1-T and chance level of each setting compared (at γ = 0)."""
    def rates(*methods):
        return {m: black_rate(rows, m) for m in methods}

    out = [{"claim": "a", "label": "(a) G − single, black-box R1-T", **paired(rows, "G", "single"),
            "rates": rates("G", "single")},
           {"claim": "a′", "label": "(a′) G − single, black-box R1-T above chance", **beyond_chance(rows, "G", "single"),
            "rates": rates("G", "single")}]
    for q in quality_steps(rows):
        out.append({"claim": "b", "label": f"(b) {q['measure']} rises, γ {q['gamma_from']:g}→{q['gamma_to']:g} "
                                           f"(G; change per probe)", **q})
    for m in ABLATION:
        out.append({"claim": "c", "label": f"(c) G − {m}, black-box R1-T", **paired(rows, "G", m), "rates": rates("G", m)})
    out.append({"claim": "d", "label": "(d) G with − without input diversity, black-box R1-T",
                **paired(rows, "G", "G, no diversity"), "rates": rates("G", "G, no diversity")})
    out.append({"claim": "code", "label": "released code − paper (G), black-box R1-T (no predicted direction)",
                **paired(rows, "G, released code", "G"), "rates": rates("G, released code", "G")})
    return out


def rows_by_seed(results: Mapping) -> dict[int, list]:
    """Each seed's rows of a results dict: ``rows`` is the first seed's, ``rows of other seeds``
    the rest (keyed by the seed as a string)."""
    seeds = [int(s) for s in results["seeds"]]
    other = results.get("rows of other seeds", {})
    return {s: list(results["rows"] if i == 0 else other[str(s)]) for i, s in enumerate(seeds)}


def over_seeds(per_seed: Mapping[int, Sequence[Mapping]]) -> list[dict]:
    """The claims over seeds from each seed's :func:`measure`: per claim (matched by label, in the
    first seed's order) each seed's effect, CI, p and verdict, the spread of the effects, and
    ``stable`` when every seed gives the same verdict.  Seeds are not pooled."""
    seeds = list(per_seed)
    labels = [c["label"] for c in per_seed[seeds[0]]]
    for s in seeds[1:]:
        if [c["label"] for c in per_seed[s]] != labels:
            raise ValueError(f"seed {s} measured other claims than seed {seeds[0]}")
    records = []
    for i, label in enumerate(labels):
        per = {s: (per_seed[s][i]["effect"], per_seed[s][i]["ci"], per_seed[s][i]["p"]) for s in seeds}
        sp = _over_seeds({s: (e, tuple(ci) if ci is not None else None, p) for s, (e, ci, p) in per.items()})
        records.append({"claim": label, "seeds": seeds, "effects": list(sp.effects),
                        "ci": [list(per[s][1]) if per[s][1] is not None else None for s in seeds],
                        "p": [per[s][2] for s in seeds], "verdicts": list(sp.verdicts),
                        "min": sp.low, "max": sp.high, "mean": sp.mean, "sd": sp.sd, "stable": sp.stable})
    return records


def claims(results: Mapping) -> dict:
    """Every seed's :func:`measure` and the claims :func:`over_seeds` of a results dict:
    ``{"per seed": {seed: [claim, ...]}, "over seeds": [record, ...]}``."""
    per_seed = {s: measure(rows) for s, rows in rows_by_seed(results).items()}
    return {"per seed": per_seed, "over seeds": over_seeds(per_seed)}


def rates_by_setting(results: Mapping) -> list[dict]:
    """Black-box Rank-1-T and its chance level of every setting (in the first seed's order), per
    seed: ``[{"method", "gamma", "per seed": {seed: {"rate", "chance"}}}, ...]``.  The clean
    row (γ NaN) matches the seed's first row of its method."""
    summs = {s: summarize(rows) for s, rows in rows_by_seed(results).items()}
    first = next(iter(summs.values()))
    out = []
    for method, gamma in [(r["method"], r["gamma"]) for r in first]:
        per = {}
        for s, summ in summs.items():
            r = next(x for x in summ if x["method"] == method and (x["gamma"] == gamma or gamma != gamma))
            per[s] = {"rate": r["black R1-T"], "chance": r["chance R1-T"]}
        out.append({"method": method, "gamma": gamma, "per seed": per})
    return out


def probes_in_every_seed(results: Mapping) -> int:
    """How many probes are probes in every seed (the seeds re-draw the split of the same photos)."""
    sets = [set(rows[0]["probe ids"]) for rows in rows_by_seed(results).values()]
    return len(set.intersection(*sets))


__all__ = ["KEY", "ABLATION", "pairs", "paired", "beyond_chance", "gammas", "quality_steps", "black_rate", "measure",
           "rows_by_seed", "over_seeds", "claims", "rates_by_setting", "probes_in_every_seed"]
