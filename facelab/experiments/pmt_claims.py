"""PMT's claims (a)–(e), measured on the benchmark's results dict.

Every function here is a pure function of the dict ``benchmarks/pmt.py``
writes (:data:`facelab.experiments.pmt.SCHEMA`): per setting and model the
Eq.-10 decision of every pair (``"decisions"``, and ``"noisy_decisions"``
under server noise), the clean images' decisions (``"clean"``), per-image
reconstruction, attribute and UP values.  Each returns claim rows

    {"claim": str, "comparison": str, "numbers": [[label, stats], ...],
     "digits": int, "verdict": str}

in the order the results page lists them.  ``stats`` is
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

What the tests do not cover: the pairs of one probe share its x̃ and the
unauthorized models judge the same images (faceres and faceres-deep share one
graph), so pooled decisions are correlated and the p-values optimistic;
nothing is corrected for the number of comparisons.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..metrics.claims import verdict
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

ALPHA = 0.05

_DEFAULT = "default"


def unauthorized(R: Mapping, setting: str) -> list[str]:
    """The pool models not authorized in ``setting``, in the pool's order."""
    auth = R["settings"][setting]["authorized"]
    return [m for m in R["models"] if m not in auth]


def _pool(decisions: Mapping, names: Sequence[str]) -> np.ndarray:
    """Decisions of several models, one after the other (pair × model units)."""
    return np.concatenate([np.asarray(decisions[n], dtype=bool) for n in names])


def _row(claim: str, comparison: str, numbers: list, verdict_: str, digits: int = 3) -> dict:
    return {"claim": claim, "comparison": comparison, "numbers": numbers, "digits": digits, "verdict": verdict_}


def ablations(R: Mapping) -> list[dict]:
    """(a) and (b): default vs each alternative in :data:`ABLATIONS` that was run."""
    S, a = R["settings"], R["authorized"]
    rows = []
    if _DEFAULT not in S:
        return rows
    names = unauthorized(R, _DEFAULT)
    for claim, others in ABLATIONS:
        for other in (o for o in others if o in S):
            dec = paired_decisions(_pool(S[_DEFAULT]["decisions"], names), _pool(S[other]["decisions"], names))
            auth = paired_decisions(S[_DEFAULT]["decisions"][a], S[other]["decisions"][a])
            v = verdict(dec["b"] - dec["a"], p=dec["p"])  # claimed: the default's unauthorized acc is lower
            if auth["a"] < auth["b"] and auth["p"] < ALPHA:
                v += NOT_COMPARABLE
            rows.append(_row(claim, f"default vs {other}", [["unauthorized acc", dec], ["authorized acc", auth]], v))
    return rows


def server_noise(R: Mapping) -> list[dict]:
    """(b): the authorized acc under server noise σ, noise augmentation (default) vs each other augmentation."""
    S, a = R["settings"], R["authorized"]
    rows = []
    if _DEFAULT not in S:
        return rows
    for other in (o for o in AUGMENTS if o in S):
        dec = paired_decisions(S[_DEFAULT]["noisy_decisions"][a], S[other]["noisy_decisions"][a])
        rows.append(_row(f"(b) augment=noise keeps authorized acc under server noise σ={R['server_noise']:g}",
                         f"default vs {other}", [["authorized acc", dec]], verdict(dec["a"] - dec["b"], p=dec["p"])))
    return rows


def authorized_verdict(dec: Mapping) -> str:
    """Claim (d) for one authorized model, from :func:`paired_decisions` of PMT vs clean."""
    if dec["a"] < dec["b"] and dec["p"] < ALPHA:
        return "reversed: significant drop"
    if dec["a"] >= AUTHORIZED_HIGH:
        return f"holds (no significant drop, acc ≥ {AUTHORIZED_HIGH:g})"
    return f"no significant drop, but acc < {AUTHORIZED_HIGH:g}"


def authorized_and_unauthorized(R: Mapping) -> list[dict]:
    """(d): for the default and every MR-PMT setting, each authorized model's acc and the
    unauthorized models' pooled acc, PMT images vs clean ones."""
    S, clean = R["settings"], R["clean"]
    rows = []
    for name in (n for n in (_DEFAULT, *R["mr"]) if n in S):
        for a in S[name]["authorized"]:
            dec = paired_decisions(S[name]["decisions"][a], clean[a])
            rows.append(_row("(d) authorized acc stays high", f"{name}: {a} PMT vs clean", [["acc", dec]],
                             authorized_verdict(dec)))
        names = unauthorized(R, name)
        dec = paired_decisions(_pool(S[name]["decisions"], names), _pool(clean, names))
        rows.append(_row("(d) unauthorized acc falls", f"{name}: {', '.join(names)} PMT vs clean", [["acc", dec]],
                         verdict(dec["b"] - dec["a"], p=dec["p"])))
    return rows


def reconstructions(R: Mapping) -> list[dict]:
    """(c) Table 6: per attack (white, black box), SSIM and PSNR of the reconstruction to the
    original, clean features vs PMT's (claimed: lower from PMT's), and the authorized model's
    COS, PMT's features vs random noise of PMT's amplitude (claimed: PMT's stays higher)."""
    rec = R["reconstruction"]
    rows = []
    for box in ("white", "black"):
        if f"{box}/pmt" not in rec:
            continue
        for metric in ("ssim", "psnr"):
            s = paired_summary(rec[f"{box}/clean"][metric], rec[f"{box}/pmt"][metric])
            rows.append(_row(f"(c) {box}-box: {metric.upper()} to the original lower from PMT features",
                             "clean features vs PMT features", [["", s]], verdict(s["diff"], p=s["p"]),
                             2 if metric == "psnr" else 3))
        s = paired_summary(rec[f"{box}/pmt"]["cos"], rec[f"{box}/random"]["cos"])
        rows.append(_row(f"(c) {box}-box: COS stays high (PMT above the random-noise features)",
                         "PMT features vs random noise of PMT's amplitude", [["", s]], verdict(s["diff"], p=s["p"])))
    return rows


def attributes(R: Mapping) -> list[dict]:
    """(e) Table 8: per attribute, PMT(x) vs x + N(0, 0.3²) (CosSim: lower is the claim; age, the
    absolute difference in years: higher is the claim)."""
    pmt_, noise = R["attributes"]["pmt"], R["attributes"]["noise"]
    rows = []
    for attr in pmt_:
        s = paired_summary(pmt_[attr], noise[attr])
        lower_better = attr != "age"
        rows.append(_row(f"(e) attribute {'CosSim lower' if lower_better else 'age difference (years) higher'} for PMT(x)",
                         f"{attr}: PMT(x) vs x + N(0, 0.3²)", [["", s]],
                         verdict(-s["diff"] if lower_better else s["diff"], p=s["p"]), 2 if attr == "age" else 3))
    return rows


def utility_privacy(R: Mapping) -> dict:
    """UP (Eq. 9) per image, PMT(x) vs the original x: :func:`paired_summary` (no verdict: the paper
    reports UP, it claims no direction against the original)."""
    return paired_summary(R["up"]["pmt"], R["up"]["original"])


def claims(R: Mapping) -> list[dict]:
    """Every claim row, in the page's order: (a)/(b) ablations, (b) server noise, (d), (c), (e)."""
    return ablations(R) + server_noise(R) + authorized_and_unauthorized(R) + reconstructions(R) + attributes(R)


__all__ = ["ABLATIONS", "AUGMENTS", "NOT_COMPARABLE", "AUTHORIZED_HIGH", "ALPHA", "unauthorized", "ablations",
           "server_noise", "authorized_verdict", "authorized_and_unauthorized", "reconstructions", "attributes",
           "utility_privacy", "claims"]
