"""PMT's claims (a)–(e), measured on the benchmark's results dict, once per seed.

Every function here is a pure function of the dict ``benchmarks/pmt.py``
writes (:data:`facelab.experiments.pmt.SCHEMA`).  That dict holds one record
per seed (``"per seed"``); :func:`seed_results` is one seed's view of it (the
run's shared entries with that seed's record): per setting and model the
Eq.-10 decision of every pair (``"decisions"``, and ``"noisy_decisions"``
under server noise), the clean images' decisions (``"clean"``), per-image
reconstruction, attribute and UP values.  The claim functions below take such
a view and return claim rows

    {"claim": str, "comparison": str, "numbers": [[label, stats], ...],
     "digits": int, "verdict": str, "effect": float, "p": float,
     "ci": [lo, hi] | None}

in the order the results page lists them.  ``effect`` is the difference in
the claim's direction (positive: as claimed; see each function), ``p`` the
sign test's, ``ci`` its 95 % bootstrap CI where there is one (per-image values).  ``stats`` is
:func:`~facelab.experiments.pmt.paired_decisions` (rates a vs b, discordant
counts, exact sign test) for paired decisions, or
:func:`~facelab.experiments.pmt.paired_summary` (means, mean difference with
a 95 % bootstrap CI, sign test) for per-image values; ``label`` names what
was compared ("" when the claim says it), ``digits`` how many decimals the
page gives.  The verdict is :func:`facelab.metrics.claims.verdict` with the
claimed direction as a positive effect and the sign test's p — "holds" needs
p < 0.05 in that direction — plus the two claim-specific rules below.

* :func:`ablations` — (a) Table 3, (b) Tables 4–5: default PMT's unauthorized
  acc (every pair × unauthorized model, pooled) against each alternative; a
  win bought with a significantly lower *authorized* acc gets
  :data:`NOT_COMPARABLE` appended.
* :func:`server_noise` — (b) noise augmentation keeps the authorized acc
  under server noise.
* :func:`authorized_and_unauthorized` — (d), single model and MR-PMT: each
  authorized model's acc against clean images (a significant drop reverses
  the claim; no drop holds only at acc ≥ :data:`AUTHORIZED_HIGH`), the
  unauthorized models' pooled acc against clean.
* :func:`reconstructions` — (c) Table 6, white and black box.
* :func:`attributes` — (e) Table 8, against x + N(0, 0.3²); lower CosSim is
  the claim, and for age (absolute difference in years) higher.
* :func:`utility_privacy` — UP (Eq. 9), PMT(x) against the original.

Over seeds (:func:`over_seeds`, :func:`claims_over_seeds`): each claim row is
measured once per seed with its own test and verdict, and the seeds are not
pooled (they re-draw the split of the same photos, PMT's randomness and the
evaluation's noise, on the same identities and models); a record per claim
holds every seed's effect, p and verdict, the spread of the effects
(:class:`facelab.metrics.claims.SeedSpread`) and :func:`verdicts_summary`, in
how many seeds each verdict holds (PMT's own verdicts included: the
:data:`NOT_COMPARABLE` caveat and claim (d)'s rule).

What the tests do not cover: the pairs of one probe share its x̃ and the
unauthorized models judge the same images (faceres and faceres-deep share one
graph), so pooled decisions are correlated and the p-values optimistic;
nothing is corrected for the number of comparisons.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..metrics.claims import VERDICTS, SeedSpread, verdict
from .pmt import paired_decisions, paired_summary

ABLATIONS = (
    ("(a) init: noise lowest unauthorized acc", ("init=shuffle", "init=blur")),
    ("(b) augment=noise lowers unauthorized acc", ("augment=none", "augment=affine", "augment=mix")),
    ("(b) layer aggregation lowers unauthorized acc", ("aggregate=False",)),
    ("(b) Gaussian kernel lowers unauthorized acc", ("kernel=linear", "kernel=none")),
)
"""Claims (a) and (b): each compares the default setting with these alternatives."""

AUGMENTS = ("augment=none", "augment=affine", "augment=mix")
"""Alternatives to noise augmentation compared under server noise."""

NOT_COMPARABLE = "; but authorized acc is significantly lower too, so not at comparable authorized acc"
"""Appended to an ablation's verdict when the default's authorized acc is significantly lower than the
alternative's: a lower unauthorized acc then says nothing about PMT's trade-off."""

AUTHORIZED_HIGH = 0.8
"""Claim (d): "authorized acc stays high" holds only with no significant drop *and* acc at least this."""

AUTHORIZED_VERDICTS = (f"holds (no significant drop, acc ≥ {AUTHORIZED_HIGH:g})",
                       f"no significant drop, but acc < {AUTHORIZED_HIGH:g}", "reversed: significant drop")
"""Claim (d)'s verdicts for an authorized model (:func:`authorized_verdict`), best first."""

ALPHA = 0.05

_DEFAULT = "default"


def unauthorized(R: Mapping, setting: str) -> list[str]:
    """The pool models not authorized in ``setting``, in the pool's order."""
    auth = R["settings"][setting]["authorized"]
    return [m for m in R["models"] if m not in auth]


def _pool(decisions: Mapping, names: Sequence[str]) -> np.ndarray:
    """Decisions of several models, one after the other (pair × model units)."""
    return np.concatenate([np.asarray(decisions[n], dtype=bool) for n in names])


def _row(claim: str, comparison: str, numbers: list, verdict_: str, effect: float, p: float, ci=None,
         digits: int = 3) -> dict:
    return {"claim": claim, "comparison": comparison, "numbers": numbers, "digits": digits, "verdict": verdict_,
            "effect": float(effect), "p": float(p), "ci": None if ci is None else [float(ci[0]), float(ci[1])]}


def ablations(R: Mapping) -> list[dict]:
    """(a) and (b): default vs each alternative in :data:`ABLATIONS` that was run.  Effect: the
    alternative's unauthorized acc minus the default's."""
    S, a = R["settings"], R["authorized"]
    rows = []
    if _DEFAULT not in S:
        return rows
    names = unauthorized(R, _DEFAULT)
    for claim, others in ABLATIONS:
        for other in (o for o in others if o in S):
            dec = paired_decisions(_pool(S[_DEFAULT]["decisions"], names), _pool(S[other]["decisions"], names))
            auth = paired_decisions(S[_DEFAULT]["decisions"][a], S[other]["decisions"][a])
            effect = dec["b"] - dec["a"]  # claimed: the default's unauthorized acc is lower
            v = verdict(effect, p=dec["p"])
            if auth["a"] < auth["b"] and auth["p"] < ALPHA:
                v += NOT_COMPARABLE
            rows.append(_row(claim, f"default vs {other}", [["unauthorized acc", dec], ["authorized acc", auth]], v,
                             effect, dec["p"]))
    return rows


def server_noise(R: Mapping) -> list[dict]:
    """(b): the authorized acc under server noise σ, noise augmentation (default) vs each other augmentation.
    Effect: the default's authorized acc minus the alternative's."""
    S, a = R["settings"], R["authorized"]
    rows = []
    if _DEFAULT not in S:
        return rows
    for other in (o for o in AUGMENTS if o in S):
        dec = paired_decisions(S[_DEFAULT]["noisy_decisions"][a], S[other]["noisy_decisions"][a])
        rows.append(_row(f"(b) augment=noise keeps authorized acc under server noise σ={R['server_noise']:g}",
                         f"default vs {other}", [["authorized acc", dec]], verdict(dec["a"] - dec["b"], p=dec["p"]),
                         dec["a"] - dec["b"], dec["p"]))
    return rows


def authorized_verdict(dec: Mapping) -> str:
    """Claim (d) for one authorized model, from :func:`paired_decisions` of PMT vs clean."""
    if dec["a"] < dec["b"] and dec["p"] < ALPHA:
        return AUTHORIZED_VERDICTS[2]
    if dec["a"] >= AUTHORIZED_HIGH:
        return AUTHORIZED_VERDICTS[0]
    return AUTHORIZED_VERDICTS[1]


def authorized_and_unauthorized(R: Mapping) -> list[dict]:
    """(d): for the default and every MR-PMT setting, each authorized model's acc and the
    unauthorized models' pooled acc, PMT images vs clean ones.  Effect: authorized, PMT's acc minus
    clean (the verdict is :func:`authorized_verdict`'s); unauthorized, clean minus PMT's."""
    S, clean = R["settings"], R["clean"]
    rows = []
    for name in (n for n in (_DEFAULT, *R["mr"]) if n in S):
        for a in S[name]["authorized"]:
            dec = paired_decisions(S[name]["decisions"][a], clean[a])
            rows.append(_row("(d) authorized acc stays high", f"{name}: {a} PMT vs clean", [["acc", dec]],
                             authorized_verdict(dec), dec["a"] - dec["b"], dec["p"]))
        names = unauthorized(R, name)
        dec = paired_decisions(_pool(S[name]["decisions"], names), _pool(clean, names))
        rows.append(_row("(d) unauthorized acc falls", f"{name}: {', '.join(names)} PMT vs clean", [["acc", dec]],
                         verdict(dec["b"] - dec["a"], p=dec["p"]), dec["b"] - dec["a"], dec["p"]))
    return rows


def reconstructions(R: Mapping) -> list[dict]:
    """(c) Table 6: per attack (white, black box), SSIM and PSNR of the reconstruction to the
    original, clean features vs PMT's (claimed: lower from PMT's), and the authorized model's
    COS, PMT's features vs random noise of PMT's amplitude (claimed: PMT's stays higher).  Effect:
    SSIM / PSNR from clean features minus from PMT's; COS from PMT's minus from the random ones."""
    rec = R["reconstruction"]
    rows = []
    for box in ("white", "black"):
        if f"{box}/pmt" not in rec:
            continue
        for metric in ("ssim", "psnr"):
            s = paired_summary(rec[f"{box}/clean"][metric], rec[f"{box}/pmt"][metric])
            rows.append(_row(f"(c) {box}-box: {metric.upper()} to the original lower from PMT features",
                             "clean features vs PMT features", [["", s]], verdict(s["diff"], p=s["p"]),
                             s["diff"], s["p"], s["ci"], 2 if metric == "psnr" else 3))
        s = paired_summary(rec[f"{box}/pmt"]["cos"], rec[f"{box}/random"]["cos"])
        rows.append(_row(f"(c) {box}-box: COS stays high (PMT above the random-noise features)",
                         "PMT features vs random noise of PMT's amplitude", [["", s]], verdict(s["diff"], p=s["p"]),
                         s["diff"], s["p"], s["ci"]))
    return rows


def attributes(R: Mapping) -> list[dict]:
    """(e) Table 8: per attribute, PMT(x) vs x + N(0, 0.3²) (CosSim: lower is the claim; age, the
    absolute difference in years: higher is the claim).  Effect: CosSim of the noise baseline minus
    PMT(x)'s; age difference of PMT(x) minus the baseline's."""
    pmt_, noise = R["attributes"]["pmt"], R["attributes"]["noise"]
    rows = []
    for attr in pmt_:
        s = paired_summary(pmt_[attr], noise[attr])
        lower_better = attr != "age"
        lo, hi = s["ci"]
        effect, ci = (-s["diff"], (-hi, -lo)) if lower_better else (s["diff"], (lo, hi))
        rows.append(_row(f"(e) attribute {'CosSim lower' if lower_better else 'age difference (years) higher'} for PMT(x)",
                         f"{attr}: PMT(x) vs x + N(0, 0.3²)", [["", s]], verdict(effect, p=s["p"]), effect, s["p"], ci,
                         2 if attr == "age" else 3))
    return rows


def utility_privacy(R: Mapping) -> dict:
    """UP (Eq. 9) per image, PMT(x) vs the original x: :func:`paired_summary` (no verdict: the paper
    reports UP, it claims no direction against the original)."""
    return paired_summary(R["up"]["pmt"], R["up"]["original"])


def claims(R: Mapping) -> list[dict]:
    """Every claim row of one seed's :func:`seed_results`, in the page's order: (a)/(b) ablations,
    (b) server noise, (d), (c), (e)."""
    if "per seed" in R:
        raise TypeError("claims() measures one seed: pass seed_results(R, seed), or use claims_over_seeds(R)")
    return ablations(R) + server_noise(R) + authorized_and_unauthorized(R) + reconstructions(R) + attributes(R)


# -- over seeds ------------------------------------------------------------------------------


#: the run's entries that are not one seed's measurements (left out of :func:`seed_results`)
_NOT_SHARED = ("per seed", "claims over seeds")


def seeds(R: Mapping) -> list[int]:
    """The run's seeds, in the order they ran (the first is the one the page details)."""
    return [int(s) for s in R["seeds"]]


def seed_results(R: Mapping, seed: int) -> dict:
    """One seed's view of a results dict: the run's shared entries (settings of the run, models,
    thresholds, timings) with that seed's record (split, decisions, reconstructions, attributes,
    UP, RecFace, minutes) and ``"seed"``: what every claim function above takes."""
    if int(seed) not in seeds(R):
        raise KeyError(f"seed {seed} is not one of the run's seeds {seeds(R)}")
    shared = {k: v for k, v in R.items() if k not in _NOT_SHARED}
    return {**shared, **R["per seed"][str(int(seed))], "seed": int(seed)}


SHORT_CAVEAT = " but not at comparable authorized acc"
"""How :func:`verdicts_summary` words :data:`NOT_COMPARABLE` (the per-seed table and the details say it in full)."""

VERDICT_ORDER = (*(w for v in VERDICTS for w in (v, v + NOT_COMPARABLE)), *AUTHORIZED_VERDICTS)
"""The order :func:`verdicts_summary` lists verdicts in: the shared :data:`~facelab.metrics.claims.VERDICTS`
(each followed by itself with the :data:`NOT_COMPARABLE` caveat), then claim (d)'s."""


def short_verdict(v: str) -> str:
    """A verdict with :data:`NOT_COMPARABLE` shortened to :data:`SHORT_CAVEAT`."""
    return v.replace(NOT_COMPARABLE, SHORT_CAVEAT)


def verdicts_summary(verdicts: Sequence[str]) -> str:
    """In how many seeds each verdict holds, in :data:`VERDICT_ORDER` (any other verdict after them,
    as first seen), e.g. ``"holds (significant) in 2 of 3 seeds; direction holds, not significant in 1"``.
    (:meth:`facelab.metrics.claims.SeedSpread.verdicts_summary` words the same for the shared verdicts
    only; PMT's caveat and claim (d)'s rule are verdicts of their own here.)"""
    if not verdicts:
        raise ValueError("verdicts_summary needs at least one seed's verdict")
    verdicts = list(verdicts)
    order = [v for v in VERDICT_ORDER if v in verdicts] + [v for v in dict.fromkeys(verdicts) if v not in VERDICT_ORDER]
    n = len(verdicts)
    parts = [f"{short_verdict(v)} in {verdicts.count(v)}" for v in order]
    parts[0] += f" of {n} seed{'s' if n != 1 else ''}"
    return "; ".join(parts)


def over_seeds(per_seed: Mapping[int, Sequence[Mapping]]) -> list[dict]:
    """The claims over seeds from each seed's :func:`claims` rows: per claim row (matched by claim and
    comparison, in the first seed's order) each seed's effect, CI, p and verdict, the spread of the
    effects (min, max, mean, sd), ``stable`` when every seed gives the same verdict, and ``summary``
    (:func:`verdicts_summary`).  Seeds are not pooled."""
    order = list(per_seed)
    if not order:
        raise ValueError("over_seeds needs at least one seed")
    keys = [(r["claim"], r["comparison"]) for r in per_seed[order[0]]]
    for s in order[1:]:
        if [(r["claim"], r["comparison"]) for r in per_seed[s]] != keys:
            raise ValueError(f"seed {s} measured other claims than seed {order[0]} (were other settings run?)")
    records = []
    for i, (claim, comparison) in enumerate(keys):
        rows = [per_seed[s][i] for s in order]
        sp = SeedSpread(tuple(order), tuple(r["effect"] for r in rows), tuple(r["verdict"] for r in rows))
        records.append({"claim": claim, "comparison": comparison, "digits": rows[0]["digits"], "seeds": order,
                        "effects": list(sp.effects), "ci": [r["ci"] for r in rows], "p": [r["p"] for r in rows],
                        "verdicts": list(sp.verdicts), "min": sp.low, "max": sp.high, "mean": sp.mean, "sd": sp.sd,
                        "stable": sp.stable, "summary": verdicts_summary(sp.verdicts)})
    return records


def claims_over_seeds(R: Mapping) -> dict:
    """Every seed's :func:`claims` and the claims :func:`over_seeds` of a results dict:
    ``{"per seed": {seed: [row, ...]}, "over seeds": [record, ...]}``."""
    per_seed = {s: claims(seed_results(R, s)) for s in seeds(R)}
    return {"per seed": per_seed, "over seeds": over_seeds(per_seed)}


def probes_in_every_seed(R: Mapping) -> int:
    """How many probes are probes in every seed (the seeds re-draw the split of the same photos)."""
    sets = [set(R["per seed"][str(s)]["protocol"]["probes"]) for s in seeds(R)]
    return len(set.intersection(*sets))


__all__ = ["ABLATIONS", "AUGMENTS", "NOT_COMPARABLE", "AUTHORIZED_HIGH", "ALPHA", "unauthorized", "ablations",
           "server_noise", "authorized_verdict", "authorized_and_unauthorized", "reconstructions", "attributes",
           "utility_privacy", "claims", "seeds", "seed_results", "SHORT_CAVEAT", "AUTHORIZED_VERDICTS",
           "VERDICT_ORDER", "short_verdict", "verdicts_summary", "over_seeds", "claims_over_seeds",
           "probes_in_every_seed"]
