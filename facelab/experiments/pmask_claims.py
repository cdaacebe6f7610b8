"""PMask's §6 claims, measured once per seed on a results dict.

``python -m benchmarks pmask`` writes ``benchmarks/results/pmask.json``
(:data:`facelab.experiments.pmask.SCHEMA`): what every seed shares —
``"models"`` (the intruder pool), ``"team"`` (the default, most focal-diverse
team), ``"median_team"``, ``"settings"``, ``"diversity"``, ``"threads"`` —
``"seeds"`` (the seeds asked for, in order) and ``"per seed"`` {seed as a
string: the seed's ``"split"``, ``"probes"``, ``"faces"``, ``"clean"``,
``"elapsed"`` and ``"runs"``}, one run per protection with per-probe
``"outcomes"`` {model: [0/1, …]} (1 = the probe is *not* identified:
protected) and per-face ``"ssim"``, ``"iterations"``, ``"seconds"``,
``"converged"``.  The run keys are :data:`MAIN`, :data:`FAWKES`,
:data:`TIP_IM`, :data:`MEDIAN` and :func:`small_delta_key`.

:func:`for_seed` gives one seed's flat view (the shared fields with the
seed's own); the claim functions below read such a view.  Each claim returns
a dict of its numbers and its verdict, worded by
:func:`facelab.metrics.claims.verdict` on an exact sign test:

* :func:`claim_a` — PMask vs the Fawkes-style cloak on the black-box models
  (paired probe × model outcomes), *at matched SSIM*;
* :func:`claim_b` — SSIM, iterations and seconds per face vs Fawkes and
  TIP-IM (paired per face), with PMask's step cap as a caveat;
* :func:`claim_c` — the most focal-diverse team vs the median-ranked team on
  the models in neither team;
* :func:`claim_d` — δ: protection, SSIM and time at a small and a large δ.

What is correlated, and so what the p-values do not cover: a probe's outcomes
across models, the probes of one identity, and one face across runs (every
run protects the same photos).  Nothing is corrected for the number of claims.

Over seeds (:func:`measure`, :func:`over_seeds`, :func:`claims`): every claim
row gets one effect per seed, the *net share* (units for the claim − units
against it) / units, which for paired binary outcomes is the difference of
the two PSRs and always has the sign the verdict is worded on; its spread
over seeds; and in how many seeds each verdict holds (:func:`headline`).
A seed whose verdict a caveat overrides (PMask's SSIM not matched, its step
cap) is counted as such, with its plain verdict beside.  Seeds re-draw the
split of the same photos and the methods' random starts on the same
identities, models and teams, so they are never pooled into one test.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..metrics.claims import SeedSpread, discordant, over_seeds as _over_seeds, paired_signs, verdict

#: the run keys of the results: main run, the two competitors, the small δ and the median team
MAIN, FAWKES, TIP_IM, MEDIAN = "pmask", "fawkes", "tip_im", "pmask median team"
SSIM_MATCH = 0.01
"""Two mean SSIMs closer than this count as the same imperceptibility budget spent."""
SECONDS_TARGET = 10.0
"""facelab's target for PMask: median seconds per 112 px face on the benchmark's CPU threads."""
NOT_MATCHED = "not established at matched SSIM"
"""Claim (a)'s caveat: PMask's PSR gain came with a lower SSIM (:func:`at_matched_ssim`)."""
CAPPED = "not established: PMask hit its step cap"
"""Claim (b)'s caveat when PMask looks cheaper but stopped at its cap on some faces (a lower bound of its cost)."""
CAP_NOTE = "PMask hit its step cap (its true cost there is higher still)"
"""Claim (b)'s note when PMask is not cheaper and stopped at its cap: the verdict stands, the gap is larger."""


def small_delta_key(results: Mapping) -> str:
    """The run key of the smaller δ of claim (d)."""
    return f"pmask δ={results['settings']['deltas'][0]:g}"


def black_box(results: Mapping) -> list[str]:
    """The pool models outside the default team (the intruders PMask never saw)."""
    return [n for n in results["models"] if n not in results["team"]]


def _outcomes(run: Mapping, models: Sequence[str]) -> np.ndarray:
    if not models:
        return np.zeros(0, bool)
    return np.concatenate([np.asarray(run["outcomes"][n], bool) for n in models])


def psr(run: Mapping, models: Sequence[str]) -> float:
    """Mean over ``models`` of each model's PSR (fraction of probes protected)."""
    return float(np.mean([np.mean(run["outcomes"][n]) for n in models])) if models else float("nan")


def at_matched_ssim(psr_verdict: str, ssim_pmask: float, ssim_other: float) -> str:
    """The claim is "better protection *at matched SSIM*": a PSR gain bought with a lower SSIM does not show it."""
    if abs(ssim_pmask - ssim_other) < SSIM_MATCH or ssim_pmask > ssim_other:
        return psr_verdict
    return (f"not established at matched SSIM (PMask's SSIM is {ssim_other - ssim_pmask:.3f} lower, so it spent more "
            f"of the budget; on PSR alone: {psr_verdict.replace('**', '')})")


def claim_a(results: Mapping) -> dict:
    """(a) PMask protects more black-box probe × model pairs than the Fawkes-style cloak, at matched SSIM."""
    runs, black = results["runs"], black_box(results)
    a, b = _outcomes(runs[MAIN], black), _outcomes(runs[FAWKES], black)
    na, nb, p = discordant(a, b)
    s_pm, s_fk = float(np.mean(runs[MAIN]["ssim"])), float(np.mean(runs[FAWKES]["ssim"]))
    on_psr = verdict(int(np.sign(na - nb)), p=p)
    return {"black": black, "n": int(len(a)), "psr_pmask": float(a.mean()), "psr_fawkes": float(b.mean()),
            "pmask_only": na, "fawkes_only": nb, "p": p, "ssim_pmask": s_pm, "ssim_fawkes": s_fk,
            "ssim_matched": abs(s_pm - s_fk) < SSIM_MATCH, "psr_verdict": on_psr,
            "verdict": at_matched_ssim(on_psr, s_pm, s_fk)}


def capped(run: Mapping) -> int:
    """Faces on which PMask stopped at its step cap rather than by converging."""
    return len(run["converged"]) - sum(bool(c) for c in run["converged"])


def claim_b(results: Mapping) -> list[dict]:
    """(b) Fig. 9–10: PMask has a higher SSIM and needs fewer iterations and seconds than Fawkes and TIP-IM
    (paired per face).  A face where PMask hit its step cap counts and times a lower bound of what it needs,
    which can only flatter it: a "fewer" there is not established."""
    runs = results["runs"]
    pm = runs[MAIN]
    n_capped = capped(pm)
    rows = []
    for name, key in (("Fawkes", FAWKES), ("TIP-IM", TIP_IM)):
        other = runs[key]
        for what, higher_is_better in (("SSIM", True), ("iterations", False), ("seconds/face", False)):
            field = "seconds" if what == "seconds/face" else what.lower()
            a, b = pm[field], other[field]
            up, down, p = paired_signs(a, b)
            better, worse = (up, down) if higher_is_better else (down, up)
            base = word = verdict(int(np.sign(better - worse)), p=p)
            caveat = note = None
            if what != "SSIM" and n_capped:
                cap = (f"PMask hit its {int(max(pm['iterations']))}-step cap on {n_capped} of {len(pm['converged'])} "
                       "faces")
                if better > worse:
                    word, caveat = f"not established: {cap}, which can only make it look cheaper", CAPPED
                else:
                    word, note = f"{word} ({cap}: its true cost there is higher still)", CAP_NOTE
            rows.append({"what": what, "other": name, "pmask": float(np.mean(a)), "value_other": float(np.mean(b)),
                         "better": better, "worse": worse, "faces": len(a), "capped": n_capped, "p": p,
                         "base_verdict": base, "caveat": caveat, "note": note, "verdict": word})
    return rows


def claim_c(results: Mapping) -> dict:
    """(c) The most focal-diverse team protects better than the median-ranked team, on the models in neither."""
    top, median = list(results["team"]), list(results["median_team"])
    common = [n for n in results["models"] if n not in top and n not in median]
    a = _outcomes(results["runs"][MAIN], common)
    b = _outcomes(results["runs"][MEDIAN], common)
    na, nb, p = discordant(a, b)
    ranking = {tuple(t): d for t, d in results["diversity"]["ranking"]}
    return {"top": top, "median": median, "d_top": ranking[tuple(top)], "d_median": ranking[tuple(median)],
            "common": common, "n": int(len(a)), "psr_top": float(a.mean()) if len(a) else None,
            "psr_median": float(b.mean()) if len(b) else None, "top_only": na, "median_only": nb, "p": p,
            "verdict": verdict(int(np.sign(na - nb)), p=p)}


def claim_d(results: Mapping) -> dict:
    """(d) Fig. 12: a larger δ protects more probe × model pairs (all models), lowers SSIM and takes longer
    (paired per face)."""
    runs, black = results["runs"], black_box(results)
    lo, hi = runs[small_delta_key(results)], runs[MAIN]
    every = list(results["models"])
    hi_out = _outcomes(hi, every)
    na, nb, p = discordant(hi_out, _outcomes(lo, every))
    s_up, s_down, ps = paired_signs(lo["ssim"], hi["ssim"])
    t_up, t_down, pt = paired_signs(hi["seconds"], lo["seconds"])
    rows = [{"delta": d, "psr_all": psr(r, every), "psr_black": psr(r, black), "ssim": float(np.mean(r["ssim"])),
             "iterations": float(np.median(r["iterations"])), "seconds": float(np.median(r["seconds"])),
             "converged": sum(bool(c) for c in r["converged"]), "faces": len(r["converged"])}
            for d, r in zip(results["settings"]["deltas"], (lo, hi))]
    return {"rows": rows,
            "protection": {"larger_only": na, "smaller_only": nb, "n": int(len(hi_out)),
                           "p": p, "verdict": verdict(int(np.sign(na - nb)), p=p)},
            "ssim_lower": {"lower": s_up, "higher": s_down, "n": len(hi["ssim"]), "p": ps,
                           "verdict": verdict(int(np.sign(s_up - s_down)), p=ps)},
            "time_longer": {"longer": t_up, "shorter": t_down, "n": len(hi["seconds"]), "p": pt,
                            "verdict": verdict(int(np.sign(t_up - t_down)), p=pt)}}


def speed(results: Mapping) -> dict:
    """PMask's seconds per face against facelab's target (:data:`SECONDS_TARGET`, median)."""
    s = np.asarray(results["runs"][MAIN]["seconds"], float)
    median = float(np.median(s))
    return {"faces": int(len(s)), "median": median, "min": float(s.min()), "max": float(s.max()),
            "iterations": float(np.median(results["runs"][MAIN]["iterations"])), "threads": results["threads"],
            "met": median <= SECONDS_TARGET}


NEEDS = {"a": (MAIN, FAWKES), "b": (MAIN, FAWKES, TIP_IM), "c": (MAIN, MEDIAN), "d": (MAIN, None)}
"""The runs each claim reads (None: the small δ's, :func:`small_delta_key`)."""


def has_runs(results: Mapping, claim: str) -> bool:
    """Whether one seed's view holds every run ``claim`` ("a"–"d") reads (a run cut short may not)."""
    return all((small_delta_key(results) if k is None else k) in results["runs"] for k in NEEDS[claim])


def seed_list(R: Mapping) -> list[int]:
    """The seeds the run was asked for, in order."""
    return [int(s) for s in R["seeds"]]


def measured_seeds(R: Mapping) -> list[int]:
    """The seeds the run started, in order (a run cut short leaves the later ones out)."""
    return [s for s in seed_list(R) if str(s) in R["per seed"]]


def for_seed(R: Mapping, seed: int) -> dict:
    """One seed's flat view of a results dict: what every seed shares, overlaid with the seed's own
    ``split``, ``probes``, ``faces``, ``clean``, ``elapsed`` and ``runs``, and ``"seed"``."""
    shared = {k: v for k, v in R.items() if k not in ("per seed", "claims over seeds")}
    return {**shared, **R["per seed"][str(seed)], "seed": int(seed)}


def _row(claim: str, label: str, for_: int, against: int, n: int, unit: str, p: float, worded: str, *,
         base: str | None = None, caveat: str | None = None, note: str | None = None, scope: str = "",
         detail: str = "") -> dict:
    """One claim row of one seed: the net share ``(for − against) / n`` as the effect, the exact sign test's p,
    the plain verdict, the caveat that overrides it (or None), a note that qualifies it (or None), and the
    wording of the detailed section (``worded``)."""
    effect = (for_ - against) / n if n else 0.0
    return {"claim": claim, "label": label, "for": int(for_), "against": int(against), "n": int(n), "unit": unit,
            "effect": float(effect), "p": float(p), "verdict": base if base is not None else verdict(effect, p=p),
            "caveat": caveat, "note": note, "scope": scope, "detail": detail, "worded": worded}


def measure(results: Mapping) -> list[dict]:
    """One seed's claims (a flat view, :func:`for_seed`), one row per tested comparison in the order
    (a), (b) ×6, (c), (d) ×3; a claim whose runs are missing (a run cut short) is left out.  Each row:
    ``claim`` ("a"–"d"), ``label``, ``for``/``against``/``n`` (units for and against the claim, units),
    ``effect`` (net share), ``p``, ``verdict`` (plain, one of :data:`~facelab.metrics.claims.VERDICTS`),
    ``caveat``/``note`` (see :data:`NOT_MATCHED`, :data:`CAPPED`, :data:`CAP_NOTE`), ``detail`` and ``worded``
    (the verdict as the seed's detailed section words it)."""
    out = []
    if has_runs(results, "a"):
        a = claim_a(results)
        blocked = a["verdict"] != a["psr_verdict"]
        out.append(_row("a", "(a) PMask − Fawkes, black-box PSR, at matched SSIM", a["pmask_only"], a["fawkes_only"],
                        a["n"], "probe × model pairs", a["p"], a["verdict"], base=a["psr_verdict"],
                        caveat=NOT_MATCHED if blocked else None, scope="on PSR alone",
                        detail=f"PMask's SSIM {a['ssim_fawkes'] - a['ssim_pmask']:.3f} lower" if blocked else ""))
    if has_runs(results, "b"):
        for r in claim_b(results):
            direction = "higher" if r["what"] == "SSIM" else "fewer"
            out.append(_row("b", f"(b) {r['what']}: PMask {direction} than {r['other']}", r["better"], r["worse"],
                            r["faces"], "faces", r["p"], r["verdict"], base=r["base_verdict"], caveat=r["caveat"],
                            note=r["note"], scope="counting the capped faces as they are",
                            detail=f"capped on {r['capped']} of {r['faces']} faces" if r["caveat"] or r["note"]
                            else ""))
    if has_runs(results, "c"):
        c = claim_c(results)
        out.append(_row("c", "(c) top − median team, PSR on the models in neither", c["top_only"], c["median_only"],
                        c["n"], "probe × model pairs", c["p"], c["verdict"]))
    if has_runs(results, "d"):
        d = claim_d(results)
        lo, hi = results["settings"]["deltas"]
        pr, ss, tt = d["protection"], d["ssim_lower"], d["time_longer"]
        for label, x, f_, a_, unit in (("protects more (all models)", pr, "larger_only", "smaller_only",
                                        "probe × model pairs"),
                                       ("lower SSIM", ss, "lower", "higher", "faces"),
                                       ("more seconds", tt, "longer", "shorter", "faces")):
            out.append(_row("d", f"(d) δ {hi:g} vs {lo:g}: {label}", x[f_], x[a_], x["n"], unit, x["p"],
                            x["verdict"]))
    return out


def _seeds_phrase(k: int, n: int) -> str:
    return f"in {k} of {n} seed{'s' if n != 1 else ''}"


def headline(record: Mapping) -> str:
    """A claim's verdict over seeds: in how many seeds each plain verdict holds
    (:meth:`~facelab.metrics.claims.SeedSpread.verdicts_summary`), led by the caveat that
    overrides it in some seeds (and which ones, when not all), followed by a note that
    qualifies it.  E.g. ``"not established at matched SSIM in 2 of 3 seeds (seeds 0, 2); on PSR
    alone: direction holds, not significant in 3 of 3 seeds"``."""
    seeds, n = list(record["seeds"]), len(record["seeds"])
    text = SeedSpread.from_record(record).verdicts_summary()
    blocked = [s for s, c in zip(seeds, record["caveats"]) if c]
    if blocked:
        kinds = "; ".join(dict.fromkeys(c for c in record["caveats"] if c))
        which = "" if len(blocked) == n else f" (seed{'s' if len(blocked) > 1 else ''} {', '.join(map(str, blocked))})"
        text = f"{kinds} {_seeds_phrase(len(blocked), n)}{which}; {record['scope']}: {text}"
    noted = [s for s, t in zip(seeds, record["notes"]) if t]
    if noted:
        kinds = "; ".join(dict.fromkeys(t for t in record["notes"] if t))
        text += f"; {_seeds_phrase(len(noted), n)} {kinds}"
    return text


def over_seeds(per_seed: Mapping[int, Sequence[Mapping]]) -> list[dict]:
    """The claims over seeds from each seed's :func:`measure` (rows matched by label, in order of first
    appearance): per claim the seeds that measured it, each one's effect, counts, p, plain verdict, caveat,
    note and wording, the spread of the effects (min, max, mean, sd), ``stable`` (every seed gives the same
    verdict, caveat and note) and the :func:`headline`.  Seeds are not pooled: each keeps its own test."""
    labels: dict[str, None] = {}
    for rows in per_seed.values():
        labels.update(dict.fromkeys(r["label"] for r in rows))
    records = []
    for label in labels:
        got = {s: next(r for r in rows if r["label"] == label) for s, rows in per_seed.items()
               if any(r["label"] == label for r in rows)}
        sp = _over_seeds({s: (r["effect"], None, r["p"]) for s, r in got.items()})
        if list(sp.verdicts) != [r["verdict"] for r in got.values()]:  # the net share has the verdict's sign
            raise ValueError(f"{label}: a seed's verdict does not follow from its effect and p")
        first = next(iter(got.values()))
        rec = {"claim": first["claim"], "label": label, "seeds": list(got), "effects": list(sp.effects),
               "for": [r["for"] for r in got.values()], "against": [r["against"] for r in got.values()],
               "n": [r["n"] for r in got.values()], "unit": first["unit"], "p": [r["p"] for r in got.values()],
               "verdicts": list(sp.verdicts), "caveats": [r["caveat"] for r in got.values()],
               "notes": [r["note"] for r in got.values()], "details": [r["detail"] for r in got.values()],
               "worded": [r["worded"] for r in got.values()], "scope": first["scope"],
               "min": sp.low, "max": sp.high, "mean": sp.mean, "sd": sp.sd}
        rec["stable"] = len({(v, c, t) for v, c, t in zip(rec["verdicts"], rec["caveats"], rec["notes"])}) == 1
        rec["headline"] = headline(rec)
        records.append(rec)
    return records


def claims(R: Mapping) -> dict:
    """Every started seed's :func:`measure` and the claims :func:`over_seeds` of a results dict:
    ``{"per seed": {seed: [row, ...]}, "over seeds": [record, ...]}``."""
    per_seed = {s: measure(for_seed(R, s)) for s in measured_seeds(R)}
    return {"per seed": per_seed, "over seeds": over_seeds(per_seed)}


def kept_in_every_seed(R: Mapping, key: str) -> tuple[int, int]:
    """How many of the first seed's ``key`` ("probes" or "faces": photo indices) are ``key`` in every started
    seed, and how many the first seed has (the seeds re-draw the split of the same photos)."""
    sets = [set(R["per seed"][str(s)][key]) for s in measured_seeds(R)]
    return len(set.intersection(*sets)), len(sets[0])


__all__ = ["MAIN", "FAWKES", "TIP_IM", "MEDIAN", "SSIM_MATCH", "SECONDS_TARGET", "NOT_MATCHED", "CAPPED", "CAP_NOTE",
           "small_delta_key", "black_box", "psr", "at_matched_ssim", "capped", "claim_a", "claim_b", "claim_c",
           "claim_d", "speed", "NEEDS", "has_runs", "seed_list", "measured_seeds", "for_seed", "measure",
           "headline", "over_seeds", "claims", "kept_in_every_seed"]
