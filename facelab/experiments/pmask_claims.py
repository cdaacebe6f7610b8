"""PMask's §6 claims, measured on a results dict.

Every function reads the results that ``python -m benchmarks pmask`` writes
(``benchmarks/results/pmask.json``, :data:`facelab.experiments.pmask.SCHEMA`):
``"models"`` (the intruder pool), ``"team"`` (the default, most focal-diverse
team), ``"median_team"``, ``"settings"`` and ``"runs"``, one entry per
protection run with per-probe ``"outcomes"`` {model: [0/1, …]} (1 = the probe
is *not* identified: protected) and per-face ``"ssim"``, ``"iterations"``,
``"seconds"``, ``"converged"``.  The run keys are :data:`RUNS`.

Each claim returns a dict of its numbers and its verdict, worded by
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
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..metrics.claims import discordant, paired_signs, verdict

#: the run keys of the results: main run, the two competitors, the small δ and the median team
MAIN, FAWKES, TIP_IM, MEDIAN = "pmask", "fawkes", "tip_im", "pmask median team"
SSIM_MATCH = 0.01
"""Two mean SSIMs closer than this count as the same imperceptibility budget spent."""
SECONDS_TARGET = 10.0
"""facelab's target for PMask: median seconds per 112 px face on the benchmark's CPU threads."""


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
            word = verdict(int(np.sign(better - worse)), p=p)
            if what != "SSIM" and n_capped:
                cap = (f"PMask hit its {int(max(pm['iterations']))}-step cap on {n_capped} of {len(pm['converged'])} "
                       "faces")
                if better > worse:
                    word = f"not established: {cap}, which can only make it look cheaper"
                else:
                    word = f"{word} ({cap}: its true cost there is higher still)"
            rows.append({"what": what, "other": name, "pmask": float(np.mean(a)), "value_other": float(np.mean(b)),
                         "better": better, "worse": worse, "p": p, "verdict": word})
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
    na, nb, p = discordant(_outcomes(hi, every), _outcomes(lo, every))
    s_up, s_down, ps = paired_signs(lo["ssim"], hi["ssim"])
    t_up, t_down, pt = paired_signs(hi["seconds"], lo["seconds"])
    rows = [{"delta": d, "psr_all": psr(r, every), "psr_black": psr(r, black), "ssim": float(np.mean(r["ssim"])),
             "iterations": float(np.median(r["iterations"])), "seconds": float(np.median(r["seconds"])),
             "converged": sum(bool(c) for c in r["converged"]), "faces": len(r["converged"])}
            for d, r in zip(results["settings"]["deltas"], (lo, hi))]
    return {"rows": rows,
            "protection": {"larger_only": na, "smaller_only": nb, "p": p, "verdict": verdict(int(np.sign(na - nb)), p=p)},
            "ssim_lower": {"lower": s_up, "higher": s_down, "p": ps, "verdict": verdict(int(np.sign(s_up - s_down)), p=ps)},
            "time_longer": {"longer": t_up, "shorter": t_down, "p": pt,
                            "verdict": verdict(int(np.sign(t_up - t_down)), p=pt)}}


def speed(results: Mapping) -> dict:
    """PMask's seconds per face against facelab's target (:data:`SECONDS_TARGET`, median)."""
    s = np.asarray(results["runs"][MAIN]["seconds"], float)
    median = float(np.median(s))
    return {"faces": int(len(s)), "median": median, "min": float(s.min()), "max": float(s.max()),
            "iterations": float(np.median(results["runs"][MAIN]["iterations"])), "threads": results["threads"],
            "met": median <= SECONDS_TARGET}


__all__ = ["MAIN", "FAWKES", "TIP_IM", "MEDIAN", "SSIM_MATCH", "SECONDS_TARGET", "small_delta_key", "black_box",
           "psr", "at_matched_ssim", "capped", "claim_a", "claim_b", "claim_c", "claim_d", "speed"]
