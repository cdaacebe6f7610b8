"""The PMask benchmark's report, from its results dict alone.

:func:`render` words ``benchmarks/results/pmask.md`` from the JSON that
``python -m benchmarks pmask`` writes beside it (schema:
:data:`facelab.experiments.pmask.SCHEMA`), so the benchmark, a re-render
(``python -m benchmarks.pmask render``) and notebook 05 show the same tables.
A run cut short leaves a partial results dict: each section appears once the
runs it needs are there.  The claims are computed in
:mod:`facelab.experiments.pmask_claims`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..evaluation import Table
from . import pmask_claims as C


def _pct(v) -> str:
    return f"{100 * v:.0f}%"


def _md(header, rows) -> str:
    return Table.from_rows(header, rows).to_markdown()


def head(R: Mapping) -> list[str]:
    S = R["settings"]
    d = R["diversity"]
    top = R["team"]
    return [
        "# PMask: the paper's claims on facelab's pool", "",
        f"Command: `{R['command']}`" + (" (FACELAB_FAST=1: smoke run, not a result)" if R["fast"] else ""),
        f"Machine: {R['machine']}; load average at start {R['load_start']}, now {R['load_end']}"
        + (" (the machine was shared: times are upper bounds)" if R["busy"] else "") + "  ",
        f"Data: {R['data']} — {R['split']}. Each masked photo is protected on its own (a face per run).  ",
        f"Pool (intruders): {', '.join(R['models'])}. Default team (highest focal diversity, size 2; {d['tied']} teams tie "
        f"at {d['best']:.3f}, the one with the cheapest forward + backward is taken): {' + '.join(top)}.  ",
        f"Settings: ω = {S['omega']:g} for PMask and Fawkes, PMask δ = {S['deltas'][1]}, max {S['steps']} steps, lr "
        f"{S['lr']:g}; Fawkes-style targeted cloak {S['fawkes_steps']} iterations (its 'high' mode); TIP-IM ε = 12/255, "
        f"{S['tip_steps']} steps, {S['n_targets']} targets, surrogate {top[0]}.  ",
        "Chance level: the clean gallery's PSR (below) is how often the intruder already fails. "
        "Outcomes of the probes of one identity are correlated, and so are one probe's outcomes across models.",
        f"Elapsed: {R['elapsed']:.0f} s.", ""]


def diversity_section(R: Mapping) -> str:
    d = R["diversity"]
    lines = ["## Focal diversity of every two-model team (§5, Eq. 9–10 as cited: mean generalized diversity)", "",
             f"Validation: {d['n_pairs']} genuine pairs of the {R['data']} set (≤ 12 per identity), a failure = similarity "
             "below the model's calibrated threshold at FAR 1e-3; failures per model: "
             + ", ".join(f"{int(c)}" for c in d["failures"]) + " (pool order). Few failures make many ties; ties keep "
             "enumeration order. The validation faces are the evaluation faces (no separate validation set"
             + (" offline)." if R["data"] == "offline" else ")."), "",
             _md(["rank", "team", "focal diversity"],
                 [[k + 1, " + ".join(t), f"{v:.3f}"] for k, (t, v) in enumerate(d["ranking"])])]
    return "\n".join(lines) + "\n"


def psr_section(R: Mapping) -> str:
    runs = R["runs"]
    cols = ["clean", *runs]
    rows = []
    for n in R["models"]:
        vals = [np.mean(R["clean"][n])] + [np.mean(r["outcomes"][n]) for r in runs.values()]
        rows.append([n, "white" if n in R["team"] else "black", *(_pct(v) for v in vals)])
    quality = []
    for k, r in runs.items():
        conv = f"{sum(r['converged'])}/{len(r['converged'])}" if r["converged"] else "— (fixed iterations)"
        quality.append([k, f"{np.mean(r['ssim']):.4f}", f"{np.mean(r['psnr']):.2f}", f"{np.median(r['iterations']):.0f}",
                        f"{np.median(r['seconds']):.1f}", conv])
    lines = ["## PSR per intruder model (fraction of probes not identified as their person)", "",
             _md(["model", "box", *cols], rows), "",
             _md(["method", "mean SSIM", "mean PSNR (dB)", "median iterations", "median s/face", "converged"], quality)]
    return "\n".join(lines) + "\n"


def speed_section(R: Mapping) -> str:
    s = C.speed(R)
    target = (f"≤ {C.SECONDS_TARGET:g} s median on {s['threads']} torch threads: "
              f"{'met' if s['met'] else 'NOT met'}")
    return "\n".join([
        "## Seconds per face (PMask, one 112 px face, default team " + " + ".join(R["team"]) + ")", "",
        _md(["faces", "median s", "min s", "max s", "median iterations", "target"],
            [[s["faces"], f"{s['median']:.1f}", f"{s['min']:.1f}", f"{s['max']:.1f}", f"{s['iterations']:.0f}", target]]),
        ""])


def claim_a_section(R: Mapping) -> str:
    a = C.claim_a(R)
    return "\n".join([
        "## (a) PMask protects better than the Fawkes-style cloak on black-box models", "",
        f"Black-box PSR: PMask {_pct(a['psr_pmask'])} vs Fawkes {_pct(a['psr_fawkes'])} over {a['n']} probe × model "
        f"pairs ({len(a['black'])} models: {', '.join(a['black'])}); PMask-only successes {a['pmask_only']}, Fawkes-only "
        f"{a['fawkes_only']}, exact sign test p = {a['p']:.3g}. SSIM: PMask {a['ssim_pmask']:.4f}, Fawkes "
        f"{a['ssim_fawkes']:.4f} (same ω = {R['settings']['omega']:g} budget; "
        f"{'matched within 0.01' if a['ssim_matched'] else 'not matched: compare with care'}).  ",
        f"Verdict: {a['verdict']}.", ""])


def claim_b_section(R: Mapping) -> str:
    S = R["settings"]
    rows = [[f"{r['what']} vs {r['other']}", f"{r['pmask']:.4g}", f"{r['value_other']:.4g}",
             f"{r['better']} / {r['worse']}", f"{r['p']:.3g}", r["verdict"]] for r in C.claim_b(R)]
    lines = ["## (b) PMask: higher SSIM, fewer iterations and seconds than Fawkes and TIP-IM (Fig. 9–10)", "",
             _md(["comparison", "PMask", "other", "PMask better / worse (faces)", "sign test p", "verdict"], rows),
             f"\n{len(R['runs'][C.MAIN]['ssim'])} faces, paired per face. Fawkes and TIP-IM run a fixed "
             f"{S['fawkes_steps']} and {S['tip_steps']} iterations; PMask stops when the face has converged (or at its "
             "step cap).\n"]
    return "\n".join(lines)


def claim_c_section(R: Mapping) -> str:
    c = C.claim_c(R)
    return "\n".join([
        "## (c) The most focal-diverse team protects better than the median team (Fig. 5, 11, Table 4–5)", "",
        f"Top team {' + '.join(c['top'])} (d_focal {c['d_top']:.3f}) vs median-ranked team {' + '.join(c['median'])} "
        f"(d_focal {c['d_median']:.3f}), PMask δ = 1, on the {len(c['common'])} models in neither team "
        f"({', '.join(c['common'])}): PSR {_pct(c['psr_top']) if c['n'] else '–'} vs "
        f"{_pct(c['psr_median']) if c['n'] else '–'} over {c['n']} probe × model pairs; top-only {c['top_only']}, "
        f"median-only {c['median_only']}, exact sign test p = {c['p']:.3g}.  ",
        f"Verdict: {c['verdict']}. One pair of teams on one small set: this says nothing about the ranking as a whole.",
        ""])


def claim_d_section(R: Mapping) -> str:
    d = C.claim_d(R)
    lo, hi = R["settings"]["deltas"]
    rows = [[f"{r['delta']:g}", _pct(r["psr_all"]), _pct(r["psr_black"]), f"{r['ssim']:.4f}", f"{r['iterations']:.0f}",
             f"{r['seconds']:.1f}", f"{r['converged']}/{r['faces']}"] for r in d["rows"]]
    pr, ss, tt = d["protection"], d["ssim_lower"], d["time_longer"]
    lines = ["## (d) Larger δ: stronger protection, lower SSIM, more time (Fig. 12)", "",
             _md(["δ", "PSR (all models)", "black-box PSR", "mean SSIM", "median iterations", "median s/face",
                  "converged"], rows), "",
             f"δ = {hi:g} vs {lo:g}: protection {pr['larger_only']} probe × model pairs only protected at the larger δ, "
             f"{pr['smaller_only']} only at the smaller (p = {pr['p']:.3g}): {pr['verdict']}; SSIM lower at the larger δ "
             f"on {ss['lower']} faces, higher on {ss['higher']} (p = {ss['p']:.3g}): {ss['verdict']}; time longer on "
             f"{tt['longer']} faces, shorter on {tt['shorter']} (p = {tt['p']:.3g}): {tt['verdict']}.", ""]
    return "\n".join(lines)


def _claim_sections(R: Mapping) -> list[str]:
    runs = R["runs"]
    out = []
    if C.MAIN in runs and C.FAWKES in runs:
        out.append(claim_a_section(R))
    if all(k in runs for k in (C.MAIN, C.FAWKES, C.TIP_IM)):
        out.append(claim_b_section(R))
    if C.MAIN in runs and C.small_delta_key(R) in runs:
        out.append(claim_d_section(R))
    if C.MAIN in runs and C.MEDIAN in runs:
        out.append(claim_c_section(R))
    else:
        out.append("\n".join(["## (c) Top team vs median team", "", "Not measured yet: the run stopped before this "
                              "stage (the file is rewritten after every stage).", ""]))
    return out


def render(R: Mapping) -> str:
    """The whole page (``pmask.md``) of a results dict, complete or cut short."""
    parts = [diversity_section(R)]
    if R["runs"]:
        parts.append(psr_section(R))
    if C.MAIN in R["runs"]:
        parts.append(speed_section(R))
    return "\n".join(head(R) + parts + _claim_sections(R)) + "\n"


def claims_markdown(R: Mapping) -> str:
    """The claim sections (a)–(d) of the report, for a notebook cell."""
    return "\n".join(_claim_sections(R))


__all__ = ["render", "claims_markdown", "head", "diversity_section", "psr_section", "speed_section",
           "claim_a_section", "claim_b_section", "claim_c_section", "claim_d_section"]
