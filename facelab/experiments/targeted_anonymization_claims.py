"""The Targeted Anonymization claims, measured on a results section.

Every function here reads one authorized model's section of the results dict
(:func:`facelab.experiments.targeted_anonymization.evaluate_authorized`:
``"clean"``, ``"ours"`` (one row per c), ``"ori"``, ``"baseline"`` (one row
per d), each with per-unit decisions) and words its verdict with
:func:`facelab.metrics.claims.verdict` — the exact sign test on the
discordant units plus a bootstrap CI of the paired difference, resampling
whole trials where a trial contributes several units.

What is correlated, and therefore what the p-values and CIs do not cover:
trials of one identity (on the offline set two video subjects supply most
trials, so their frames are much alike), the four target decisions of one
trial, and one trial across settings and across authorized models (the same
photos are protected every time).  Nothing is corrected for the number of
levels and models tested.

* :func:`matched_levels` — claim (a), Table 1: ours vs the baseline where
  both first reach an authorized TAR level;
* :func:`monotonicity` — claim (b), across the whole c sweep;
* :func:`fig1_contrast` — Fig. 1: Eq. 4 with th_new(c) vs (ori)/Formula 2
  with th_old;
* :func:`far_check` — claim (c), the authorized FAR per c against the clean
  photos';
* :func:`next_baseline_d` — where the baseline's d grid needs another point;
* :func:`claims_over_seeds` — every claim above, once per seed of a
  multi-seed results dict, with the spread of its effect and the verdicts
  (:func:`facelab.metrics.claims.over_seeds`; seeds are not pooled).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..metrics.claims import compare_paired, over_seeds, paired_bootstrap_ci, sign_test, verdict

LEVELS = (0.6, 0.7, 0.8, 0.9, 1.0)
"""Authorized TAR levels at which ours and the baseline are compared."""

_TOL = 1e-9


def reaches(row: Mapping, level: float) -> bool:
    return row["tar"] >= level - _TOL


def first_reaching(rows: Sequence[Mapping], key: str, level: float) -> Mapping | None:
    """The row with the smallest ``key`` (c or d) whose TAR reaches ``level``."""
    return next((r for r in sorted(rows, key=lambda r: r[key]) if reaches(r, level)), None)


def next_baseline_d(ours: Sequence[Mapping], baseline: Sequence[Mapping], levels: Sequence[float] = LEVELS, *,
                    factor: float = 2.0, floor: float = 1 / 16, extend: float = 4.0, d_max: float = 256.0) -> float | None:
    """The next baseline weight d to run, or None when the grid is fine enough.

    For each TAR level ours reaches (highest first): if no d reaches it, the
    next d is ``extend`` × the largest (up to ``d_max``); if the smallest d
    reaching it is more than ``factor`` × the largest d below it, their
    geometric mean (below the first non-zero d: half of it, down to
    ``floor``).  So every matched d ends bracketed within a factor of
    ``factor`` (or within (0, floor]) when the budget of runs allows.
    """
    rows = sorted(baseline, key=lambda r: r["d"])
    done = {r["d"] for r in rows}
    top = max(r["tar"] for r in ours)
    for level in sorted(levels, reverse=True):
        if top < level - _TOL:
            continue
        hi = first_reaching(rows, "d", level)
        if hi is None:
            new = rows[-1]["d"] * extend if rows[-1]["d"] > 0 else floor
            if new <= d_max and new not in done:
                return float(new)
            continue
        below = [r["d"] for r in rows if r["d"] < hi["d"]]
        if not below:
            continue  # the smallest d already reaches it: a grid edge, said in the table
        lo = below[-1]
        if lo == 0:
            new = hi["d"] / factor
            if new >= floor * (1 - _TOL) and new not in done:
                return float(new)
        elif hi["d"] / lo > factor * (1 + _TOL):
            new = math.sqrt(hi["d"] * lo)
            if new not in done:
                return float(new)
    return None


def _stats(cmp) -> dict:
    return {"n": cmp.n, "wins": cmp.wins, "losses": cmp.losses, "effect": cmp.rate_a - cmp.rate_b,
            "ci": [cmp.ci[0], cmp.ci[1]], "p": cmp.p, "verdict": cmp.verdict}


def _target_units(row: Mapping, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every (target, trial) decision of a row, and its trial as the cluster."""
    acc = np.array([row["target_accepts"][t] for t in targets], dtype=bool)  # (targets, trials)
    return acc.ravel(), np.tile(np.arange(acc.shape[1]), acc.shape[0])


def _k(row: Mapping) -> int:
    return int(sum(row["tar_accepts"]))


def matched_levels(section: Mapping, levels: Sequence[float] = LEVELS) -> list[dict]:
    """Claim (a) at every TAR level ours reaches: ours' smallest c reaching it
    against the baseline's smallest d reaching it, on the targets' paired
    decisions (units: trial × target; bootstrap over trials).  The claim's
    direction (effect > 0): the targets recognise fewer protected photos
    under ours.  Each entry says which d below the match failed the level
    (the bracket), and when a match sits at a grid edge."""
    targets = section["targets"]
    ours, base = section["ours"], section["baseline"]
    c_min, d_min, d_max = min(r["c"] for r in ours), min(r["d"] for r in base), max(r["d"] for r in base)
    out, seen = [], {}
    for level in levels:
        o = first_reaching(ours, "c", level)
        if o is None:
            continue
        b = first_reaching(base, "d", level)
        e: dict = {"level": level, "ours": {"c": o["c"], "tar": o["tar"], "k": _k(o), "n": o["n"]}, "notes": []}
        if o["c"] == c_min and o["tar"] > level + _TOL:
            e["notes"].append(f"ours at the c grid's edge (c = {o['c']:g} already gives TAR {o['tar']:.0%})")
        if b is None:
            e["baseline"] = None
            e["notes"].append(f"the baseline never reaches {level:.0%} at d ≤ {d_max:g}")
            out.append(e)
            continue
        below = [r for r in sorted(base, key=lambda r: r["d"]) if r["d"] < b["d"]]
        e["baseline"] = {"d": b["d"], "tar": b["tar"], "k": _k(b), "n": b["n"], "refined": b.get("refined", False)}
        e["bracket"] = {"d": below[-1]["d"], "tar": below[-1]["tar"], "k": _k(below[-1])} if below else None
        if b["d"] == d_min:
            e["notes"].append(f"baseline at the d grid's edge (d = {b['d']:g} already gives TAR {b['tar']:.0%})")
        if _k(o) != _k(b):
            e["notes"].append(f"TAR not equal: {_k(o)} vs {_k(b)} of {o['n']} trials")
        key = (o["c"], b["d"])
        e["same_as"] = seen.get(key)  # the lower level with the very same pair of settings: one comparison, not two
        if e["same_as"] is not None:
            e["notes"].append(f"same settings as at {e['same_as']:.0%}")
        seen.setdefault(key, level)
        rec_o, clusters = _target_units(o, targets)
        rec_b, _ = _target_units(b, targets)
        cmp = compare_paired(~rec_o, ~rec_b, clusters=clusters)
        e["targets"] = {"ours": float(rec_o.mean()), "baseline": float(rec_b.mean()), "ours_k": int(rec_o.sum()),
                        "baseline_k": int(rec_b.sum()), "n": int(rec_o.size), "clean": section["clean"]["target_mean"],
                        "per_target": {t: [o["targets"][t], b["targets"][t]] for t in targets}}
        # wins: recognised only under the baseline; losses: only under ours
        e["test"] = _stats(cmp)
        out.append(e)
    return out


def _adjacent(outcomes: np.ndarray, clusters: np.ndarray | None) -> dict:
    """Rises and falls between adjacent c values, unit by unit: the sign test
    on all of them and a bootstrap CI of (rises − falls) per unit."""
    up = (outcomes[:, 1:] & ~outcomes[:, :-1]).sum(1)
    down = (~outcomes[:, 1:] & outcomes[:, :-1]).sum(1)
    p = sign_test(int(up.sum()), int(down.sum()))
    effect, lo, hi = paired_bootstrap_ci(up, down, clusters=clusters)
    rates = outcomes.mean(0)
    steps = np.sign(np.diff(outcomes.sum(0)))
    return {"rates": rates.tolist(), "k": outcomes.sum(0).astype(int).tolist(), "n": int(outcomes.shape[0]),
            "rises": int(up.sum()), "falls": int(down.sum()), "units_changing": int(((up + down) > 0).sum()),
            "curve_steps": {"up": int((steps > 0).sum()), "down": int((steps < 0).sum()), "flat": int((steps == 0).sum())},
            "first_to_last_k": int(outcomes[:, -1].sum() - outcomes[:, 0].sum()),
            "effect": effect, "ci": [lo, hi], "p": p, "verdict": verdict(effect, (lo, hi), p)}


def monotonicity(section: Mapping) -> dict:
    """Claim (b) across the whole c sweep: does raising c raise the
    authorized TAR (units: trials) and the targets' recognition (units:
    trial × target, bootstrap over trials)?  Each counts, over every unit
    and every pair of adjacent c values, the rises and falls."""
    ours = sorted(section["ours"], key=lambda r: r["c"])
    tar = np.array([r["tar_accepts"] for r in ours], dtype=bool).T
    units = [_target_units(r, section["targets"]) for r in ours]
    tg = np.stack([u[0] for u in units], axis=1)
    return {"cs": [r["c"] for r in ours], "tar": _adjacent(tar, None), "targets": _adjacent(tg, units[0][1])}


def fig1_contrast(section: Mapping) -> list[dict]:
    """Fig. 1: at each c, the authorized TAR with Eq. 4's th_new(c) around
    f̄_A against (ori) — Formula 2's reference x0 with th_old — paired by
    trial.  The paper: (ori) below 10 %, Eq. 4 reaching ≥ 98 % at a suitable c."""
    ori, clean = section["ori"], section["clean"]
    out = []
    for r in sorted(section["ours"], key=lambda r: r["c"]):
        cmp = compare_paired(r["tar_accepts"], ori["tar_accepts"])
        out.append({"c": r["c"], "ours": r["tar"], "ours_k": _k(r), "ori": ori["tar"], "ori_k": _k(ori),
                    "clean": clean["tar"], "clean_k": _k(clean), "n": r["n"], "test": _stats(cmp)})
    return out


def _far_units(row: Mapping) -> np.ndarray:
    a = np.zeros(row["far_n"], dtype=bool)
    a[list(row["far_units"])] = True
    return a


def far_check(section: Mapping) -> list[dict]:
    """Claim (c): per c, the authorized FAR of the protected photos (units:
    every comparison of a trial's protected photo with a photo of another
    identity; bootstrap over trials) against the clean photos'.  The verdict
    is for "protection raises the FAR": the paper claims it does not."""
    clean = section["clean"]
    b = _far_units(clean)
    clusters = np.repeat(np.arange(len(clean["far_n_per_trial"])), clean["far_n_per_trial"])
    out = []
    for r in sorted(section["ours"], key=lambda r: r["c"]):
        cmp = compare_paired(_far_units(r), b, clusters=clusters)
        out.append({"c": r["c"], "far": r["far"], "accepted": r["far_accepted"], "clean_far": clean["far"],
                    "clean_accepted": clean["far_accepted"], "n": r["far_n"], "test": _stats(cmp)})
    return out


def table1(matched: Sequence[Mapping]) -> dict | None:
    """Table 1's row for this authorized model: the highest TAR level at
    which both methods were matched."""
    both = [m for m in matched if m.get("baseline") is not None]
    return max(both, key=lambda m: m["level"]) if both else None


def section_claims(section: Mapping, levels: Sequence[float] = LEVELS) -> dict:
    matched = matched_levels(section, levels)
    return {"matched": matched, "table1": table1(matched), "monotonicity": monotonicity(section),
            "fig1_contrast": fig1_contrast(section), "far": far_check(section)}


def seed_results(R: Mapping) -> dict[int, Mapping]:
    """Every seed's results of a results dict, by seed: ``R`` itself is its first seed's run (``params.seed``);
    ``R["other seeds"]`` (absent in a one-seed run) holds the others, each a results dict of the same shape."""
    out = {int(R["params"]["seed"]): R}
    for s, r in (R.get("other seeds") or {}).items():
        out[int(s)] = r
    return out


def _spread(claim: str, authorized: str, setting: str, tests: Mapping[int, Mapping | None], *, unit: str,
            settings: Mapping[int, str] | None = None, digits: int = 1) -> dict:
    """One claim row over seeds; a seed where the claim could not be measured (``None``) is listed as missing."""
    measured = {s: t for s, t in tests.items() if t is not None}
    row = {"claim": claim, "authorized": authorized, "setting": setting, "unit": unit,
           "missing": sorted(s for s, t in tests.items() if t is None), "seeds": sorted(measured),
           "effects": [], "verdicts": [], "summary": None, "spread": None}
    if settings:
        row["settings"] = {str(s): v for s, v in settings.items()}
    if measured:
        sp = over_seeds({s: (t["effect"], tuple(t["ci"]), t["p"]) for s, t in sorted(measured.items())})
        row.update(effects=list(sp.effects), verdicts=list(sp.verdicts), summary=sp.verdicts_summary(),
                   spread=sp.spread(f"+.{digits}f", scale=100) if unit == "points" else sp.spread())
    return row


def claims_over_seeds(R: Mapping) -> list[dict]:
    """Every claim of :func:`section_claims`, measured once per seed of ``R`` (:func:`seed_results`): one row per
    (claim, authorized model, setting) with each seed's effect and verdict (worded by
    :func:`facelab.metrics.claims.verdict` from that seed's own test), their spread, and the seeds where it could
    not be measured (a TAR level that ours or the baseline never reached in that seed).  Claim (a) compares each
    seed's own matched settings (they may differ between seeds; ``settings`` names them).  Seeds redraw the trials'
    photos and the attacks' randomness, not the identities: they are reruns, not independent samples, so nothing
    pools them."""
    by_seed = seed_results(R)
    first = by_seed[int(R["params"]["seed"])]
    rows: list[dict] = []
    for a in first["authorized"]:
        secs = {s: r["authorized"].get(a) for s, r in by_seed.items()}
        cl = {s: (sec["claims"] if sec else None) for s, sec in secs.items()}
        for i, e in enumerate(first["authorized"][a]["claims"]["fig1_contrast"]):
            tests = {s: next((f["test"] for f in c["fig1_contrast"] if f["c"] == e["c"]), None) if c else None
                     for s, c in cl.items()}
            rows.append(_spread("fig1", a, f"c={e['c']:g}", tests, unit="points"))
        for level in first["levels"]:
            tests, settings = {}, {}
            for s, c in cl.items():
                m = next((m for m in (c["matched"] if c else []) if m["level"] == level and m.get("baseline")), None)
                tests[s] = m["test"] if m else None
                settings[s] = f"c={m['ours']['c']:g}/d={m['baseline']['d']:g}" if m else "not matched"
            rows.append(_spread("a", a, f"TAR {level:.0%}", tests, unit="points", settings=settings))
        for what in ("tar", "targets"):
            tests = {s: (c["monotonicity"][what] if c else None) for s, c in cl.items()}
            rows.append(_spread("b", a, "TAR" if what == "tar" else "targets", tests, unit="per unit"))
        for e in first["authorized"][a]["claims"]["far"]:
            tests = {s: next((f["test"] for f in c["far"] if f["c"] == e["c"]), None) if c else None
                     for s, c in cl.items()}
            rows.append(_spread("c", a, f"c={e['c']:g}", tests, unit="points", digits=2))
    return rows


__all__ = ["LEVELS", "reaches", "first_reaching", "next_baseline_d", "matched_levels", "monotonicity",
           "fig1_contrast", "far_check", "table1", "section_claims", "seed_results", "claims_over_seeds"]
