"""The PMask benchmark's report, from its results dict alone.

:func:`render` words ``benchmarks/results/pmask.md`` from the JSON that
``python -m benchmarks pmask`` writes beside it (schema:
:data:`facelab.experiments.pmask.SCHEMA`), so the benchmark, a re-render
(``python -m benchmarks.pmask render``) and notebook 05 show the same tables.
The page leads with every claim measured once per seed (:func:`seeds_table`:
each seed's effect, counts, p and verdict, the spread over seeds and the
verdict over seeds, the claim's headline), says what a seed changes and what
stays fixed (:func:`seeds_text`), then shows what is the same in every seed
(focal diversity), the seconds per face per seed, and the first seed in
detail (PSR per model, claims (a)–(d), each led by its verdict over seeds).
A run cut short leaves a partial results dict: each section appears once the
runs it needs are there.  The claims are computed in
:mod:`facelab.experiments.pmask_claims`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..evaluation import Table
from ..metrics.claims import SeedSpread, in_every_seed
from . import pmask_claims as C


def _pct(v) -> str:
    return f"{100 * v:.0f}%"


def _md(header, rows) -> str:
    return Table.from_rows(header, rows).to_markdown()


def _seeds(seeds) -> str:
    return ", ".join(map(str, seeds))


def _first(R: Mapping) -> int | None:
    started = C.measured_seeds(R)
    return started[0] if started else None


def _split_line(R: Mapping) -> str:
    started = C.measured_seeds(R)
    splits = {s: R["per seed"][str(s)]["split"] for s in started}
    if not splits:
        return "no seed started yet"
    if len(set(splits.values())) == 1:
        return f"{next(iter(splits.values()))} (the same counts in every seed; the seed draws which photos)"
    return "; ".join(f"seed {s}: {t}" for s, t in splits.items())


def head(R: Mapping) -> list[str]:
    S = R["settings"]
    d = R["diversity"]
    top = R["team"]
    return [
        f"# PMask: the paper's claims on facelab's pool, over seeds {_seeds(C.seed_list(R))}", "",
        f"Command: `{R['command']}`" + (" (FACELAB_FAST=1: smoke run, not a result)" if R["fast"] else "") + "  ",
        f"Machine: {R['machine']}; load average at start {R['load_start']}, now {R['load_end']}"
        + (" (the machine was shared: times are upper bounds)" if R["busy"] else "") + "  ",
        f"Data: {R['data']} — {_split_line(R)}. Each masked photo is protected on its own (a face per run).  ",
        f"Pool (intruders): {', '.join(R['models'])}. Default team (highest focal diversity, size 2; {d['tied']} teams tie "
        f"at {d['best']:.3f}, the one with the cheapest forward + backward is taken): {' + '.join(top)}.  ",
        f"Settings: ω = {S['omega']:g} for PMask and Fawkes, PMask δ = {S['deltas'][1]}, max {S['steps']} steps, lr "
        f"{S['lr']:g}, random start of amplitude {S['init_noise'] * 255:g}/255; Fawkes-style targeted cloak "
        f"{S['fawkes_steps']} iterations (its 'high' mode); TIP-IM ε = {S['eps'] * 255:g}/255, {S['tip_steps']} steps, "
        f"{S['n_targets']} targets, surrogate {top[0]}.  ",
        "Chance level: the clean gallery's PSR (below) is how often the intruder already fails. "
        "Outcomes of the probes of one identity are correlated, and so are one probe's outcomes across models.  ",
        f"Elapsed: {R['elapsed']:.0f} s in all.", ""]


def _seed_cell(rec: Mapping, i: int) -> str:
    p = rec["p"][i]
    cell = (f"{rec['effects'][i]:+.3f} ({rec['for'][i]}:{rec['against'][i]} of {rec['n'][i]}, p = {p:.2g}): "
            f"{rec['verdicts'][i]}")
    if rec["caveats"][i]:
        cell += f" — {rec['caveats'][i]} ({rec['details'][i]})"
    if rec["notes"][i]:
        cell += f" — {rec['details'][i]}: its true cost there is higher still"
    return cell


def seeds_table(R: Mapping, records: list[dict] | None = None) -> str:
    """Every claim row over seeds: each seed's effect (net share for − against), counts, p and verdict
    (with the caveat that overrides it or the note that qualifies it), the spread of the effects and the
    verdict over seeds (:func:`facelab.experiments.pmask_claims.headline`; in bold when every seed agrees)."""
    records = C.claims(R)["over seeds"] if records is None else records
    seeds = C.seed_list(R)
    header = ["claim (effect: net share for − against)", *(f"seed {s}" for s in seeds),
              "spread over seeds (min … max; mean ± sd)", "verdict over seeds"]
    rows = []
    for rec in records:
        at = {s: i for i, s in enumerate(rec["seeds"])}
        bold = "**" if rec["stable"] else ""
        rows.append([rec["label"], *(_seed_cell(rec, at[s]) if s in at else "not measured (run cut short)"
                                     for s in seeds),
                     SeedSpread.from_record(rec).spread(), bold + rec["headline"] + bold])
    return _md(header, rows)


def randomness_text(R: Mapping) -> str:
    """What a seed changes, and what it does not."""
    S = R["settings"]
    probes, n_probes = C.kept_in_every_seed(R, "probes")
    faces, n_faces = C.kept_in_every_seed(R, "faces")
    return (
        "What a seed changes: the benchmark hands its seed to every random draw of the protocol, the same seed to "
        "each. (1) The split, `make_split(seed=…)` (NumPy): the order of each protected identity's photos, and with "
        "it which of them are its probes (⌊n/2⌋, at most 2) and which one is masked into the intruder's gallery; its "
        "other photos are left out. The gallery's embeddings, the clean PSR and each method's inputs follow the "
        f"split. (2) PMask's random start, `pmask(seed=…)`: the uniform noise of amplitude "
        f"{S['init_noise'] * 255:g}/255 added before the first step (the same draw for every face of a seed). (3) The "
        "Fawkes-style cloak: `select_target(seed=…)`'s pick among the 20 candidate identities farthest from the "
        "masked photo, and `fawkes(seed=…)`'s 10⁻⁴ tanh-space start. (4) TIP-IM, `tip_im(seed=…)`: with this "
        "benchmark's settings (greedy gain G, γ = 0, no input diversity) its seeded draws only shape the reported "
        "MMD, so it changes with the seed only through the split (the photo it protects and the gallery photos of "
        f"its {S['n_targets']} targets). Fixed across seeds: the face set ({R['data']}), the protected identities "
        "and how many probes and masked photos each has, the single-photo distractors, the models, both teams (the "
        "focal-diversity ranking is computed once per run on genuine pairs of the whole set, which no seed touches, "
        "and so is its tie-break by the cost of a forward + backward) and every setting (ω, δ, the step cap, lr, the "
        "competitors' iterations, ε). So the seeds are not independent "
        f"replications: they re-draw the split of the same photos "
        f"({in_every_seed(probes, n_probes, 'probes', 'a probe', 'probes')}, "
        f"{in_every_seed(faces, n_faces, 'masked photos', 'masked', 'masked')}) and the methods' random "
        "starts, on the same identities, models and teams.")


def seeds_text(R: Mapping) -> str:
    """Why the seeds are not pooled, what a seed changes, and the minutes per seed."""
    started = C.measured_seeds(R)
    missing = [s for s in C.seed_list(R) if s not in started]
    minutes = {s: R["per seed"][str(s)]["elapsed"] / 60 for s in started}
    setup = (R["elapsed"] - sum(R["per seed"][str(s)]["elapsed"] for s in started)) / 60
    cut = (f" The run stopped before seed{'s' if len(missing) > 1 else ''} {_seeds(missing)}: the verdicts over "
           "seeds count the seeds that measured each claim." if missing else "")
    return (
        f"Each seed ({_seeds(C.seed_list(R))}) runs the whole protocol and gets its own exact sign test and verdict; "
        "the seeds are **not pooled** into one test, because they are not independent samples: the same faces, "
        "identities, models and teams come back in every seed, and the probes overlap between seeds. A claim's "
        "effect is its net share, (units for the claim − units against it) / units — for paired probe × model "
        "outcomes, the difference of the two PSRs — which has the sign the verdict is worded on; its spread is the "
        "min … max and mean ± sd over the seeds; 'verdict over seeds' counts the seeds in which each verdict holds "
        "(`facelab.metrics.claims.over_seeds`), led by the caveat that overrides it in some seeds (PMask's SSIM not "
        "matched; its step cap), in bold when every seed agrees." + cut + f" {randomness_text(R)}\n\n"
        "Minutes per seed: " + ", ".join(f"seed {s} {m:.1f}" for s, m in minutes.items())
        + f"; shared setup (models, focal diversity, step costs) {setup:.1f}; total {R['elapsed'] / 60:.1f} min.\n")


def over_seeds_section(R: Mapping, records: list[dict] | None = None) -> str:
    return "\n".join([f"## The claims over seeds {_seeds(C.seed_list(R))}", "", seeds_table(R, records), "",
                      seeds_text(R)])


def diversity_section(R: Mapping) -> str:
    d = R["diversity"]
    lines = ["## Focal diversity of every two-model team (§5, Eq. 9–10 as cited: mean generalized diversity; the "
             "same in every seed)", "",
             f"Validation: {d['n_pairs']} genuine pairs of the {R['data']} set (≤ 12 per identity), a failure = similarity "
             "below the model's calibrated threshold at FAR 1e-3; failures per model: "
             + ", ".join(f"{int(c)}" for c in d["failures"]) + " (pool order). Few failures make many ties; ties keep "
             "enumeration order. The validation faces are the evaluation faces (no separate validation set"
             + (" offline)." if R["data"] == "offline" else ")."), "",
             _md(["rank", "team", "focal diversity"],
                 [[k + 1, " + ".join(t), f"{v:.3f}"] for k, (t, v) in enumerate(d["ranking"])])]
    return "\n".join(lines) + "\n"


def psr_section(V: Mapping) -> str:
    """PSR per intruder model and the quality and cost of every run, for one seed's view."""
    runs = V["runs"]
    cols = ["clean", *runs]
    rows = []
    for n in V["models"]:
        vals = [np.mean(V["clean"][n])] + [np.mean(r["outcomes"][n]) for r in runs.values()]
        rows.append([n, "white" if n in V["team"] else "black", *(_pct(v) for v in vals)])
    quality = []
    for k, r in runs.items():
        conv = f"{sum(r['converged'])}/{len(r['converged'])}" if r["converged"] else "— (fixed iterations)"
        quality.append([k, f"{np.mean(r['ssim']):.4f}", f"{np.mean(r['psnr']):.2f}", f"{np.median(r['iterations']):.0f}",
                        f"{np.median(r['seconds']):.1f}", conv])
    lines = [f"## PSR per intruder model, seed {V['seed']} (fraction of probes not identified as their person)", "",
             _md(["model", "box", *cols], rows), "",
             _md(["method", "mean SSIM", "mean PSNR (dB)", "median iterations", "median s/face", "converged"], quality)]
    return "\n".join(lines) + "\n"


def speed_section(R: Mapping) -> str:
    """PMask's seconds per face against the target, one row per seed that has its main run."""
    rows, met = [], []
    for s in C.measured_seeds(R):
        V = C.for_seed(R, s)
        if C.MAIN not in V["runs"]:
            continue
        sp = C.speed(V)
        met.append(sp["met"])
        rows.append([s, sp["faces"], f"{sp['median']:.1f}", f"{sp['min']:.1f}", f"{sp['max']:.1f}",
                     f"{sp['iterations']:.0f}", "met" if sp["met"] else "NOT met"])
    return "\n".join([
        "## Seconds per face (PMask, one 112 px face, default team " + " + ".join(R["team"]) + "), per seed", "",
        _md(["seed", "faces", "median s", "min s", "max s", "median iterations",
             f"target ≤ {C.SECONDS_TARGET:g} s median on {R['threads']} torch threads"], rows), "",
        f"Target met in {sum(met)} of {len(met)} seed{'s' if len(met) != 1 else ''}. Wall time on the benchmark's "
        "machine: it changes between runs and with the load, unlike the outcomes.", ""])


def _over(R: Mapping, records: list[dict], label: str) -> str:
    rec = next((r for r in records if r["label"] == label), None)
    if rec is None:
        return ""
    return f"Verdict over seeds {_seeds(rec['seeds'])}: {rec['headline']} (effect {SeedSpread.from_record(rec).spread()}).  "


def _label(V: Mapping, claim: str, i: int = 0) -> str:
    return [r["label"] for r in C.measure(V) if r["claim"] == claim][i]


def claim_a_section(V: Mapping, records: list[dict]) -> str:
    a = C.claim_a(V)
    return "\n".join([
        f"## (a) PMask protects better than the Fawkes-style cloak on black-box models, seed {V['seed']}", "",
        _over(V, records, _label(V, "a")),
        f"Seed {V['seed']}: black-box PSR PMask {_pct(a['psr_pmask'])} vs Fawkes {_pct(a['psr_fawkes'])} over {a['n']} "
        f"probe × model pairs ({len(a['black'])} models: {', '.join(a['black'])}); PMask-only successes {a['pmask_only']}, "
        f"Fawkes-only {a['fawkes_only']}, exact sign test p = {a['p']:.3g}. SSIM: PMask {a['ssim_pmask']:.4f}, Fawkes "
        f"{a['ssim_fawkes']:.4f} (same ω = {V['settings']['omega']:g} budget; "
        f"{'matched within 0.01' if a['ssim_matched'] else 'not matched: compare with care'}).  ",
        f"Verdict, seed {V['seed']}: {a['verdict']}.", ""])


def claim_b_section(V: Mapping, records: list[dict]) -> str:
    S = V["settings"]
    over = {r["label"]: r for r in records}
    labels = [r["label"] for r in C.measure(V) if r["claim"] == "b"]
    rows = [[f"{r['what']} vs {r['other']}", f"{r['pmask']:.4g}", f"{r['value_other']:.4g}",
             f"{r['better']} / {r['worse']}", f"{r['p']:.3g}", r["verdict"], over[lab]["headline"]]
            for r, lab in zip(C.claim_b(V), labels)]
    lines = [f"## (b) PMask: higher SSIM, fewer iterations and seconds than Fawkes and TIP-IM (Fig. 9–10), seed "
             f"{V['seed']}", "",
             _md(["comparison", "PMask", "other", "PMask better / worse (faces)", "sign test p",
                  f"verdict, seed {V['seed']}", f"verdict over seeds {_seeds(over[labels[0]]['seeds'])}"], rows),
             f"\n{len(V['runs'][C.MAIN]['ssim'])} faces, paired per face. Fawkes and TIP-IM run a fixed "
             f"{S['fawkes_steps']} and {S['tip_steps']} iterations; PMask stops when the face has converged (or at its "
             "step cap).\n"]
    return "\n".join(lines)


def claim_c_section(V: Mapping, records: list[dict]) -> str:
    c = C.claim_c(V)
    return "\n".join([
        f"## (c) The most focal-diverse team protects better than the median team (Fig. 5, 11, Table 4–5), seed "
        f"{V['seed']}", "",
        _over(V, records, _label(V, "c")),
        f"Seed {V['seed']}: top team {' + '.join(c['top'])} (d_focal {c['d_top']:.3f}) vs median-ranked team "
        f"{' + '.join(c['median'])} (d_focal {c['d_median']:.3f}), PMask δ = 1, on the {len(c['common'])} models in "
        f"neither team ({', '.join(c['common'])}): PSR {_pct(c['psr_top']) if c['n'] else '–'} vs "
        f"{_pct(c['psr_median']) if c['n'] else '–'} over {c['n']} probe × model pairs; top-only {c['top_only']}, "
        f"median-only {c['median_only']}, exact sign test p = {c['p']:.3g}.  ",
        f"Verdict, seed {V['seed']}: {c['verdict']}. One pair of teams on one small set: this says nothing about the "
        "ranking as a whole.", ""])


def claim_d_section(V: Mapping, records: list[dict]) -> str:
    d = C.claim_d(V)
    lo, hi = V["settings"]["deltas"]
    rows = [[f"{r['delta']:g}", _pct(r["psr_all"]), _pct(r["psr_black"]), f"{r['ssim']:.4f}", f"{r['iterations']:.0f}",
             f"{r['seconds']:.1f}", f"{r['converged']}/{r['faces']}"] for r in d["rows"]]
    pr, ss, tt = d["protection"], d["ssim_lower"], d["time_longer"]
    over = {r["label"]: r for r in records}
    labels = [r["label"] for r in C.measure(V) if r["claim"] == "d"]
    lines = [f"## (d) Larger δ: stronger protection, lower SSIM, more time (Fig. 12), seed {V['seed']}", "",
             _md(["δ", "PSR (all models)", "black-box PSR", "mean SSIM", "median iterations", "median s/face",
                  "converged"], rows), "",
             f"Verdicts over seeds {_seeds(over[labels[0]]['seeds'])}: protection {over[labels[0]]['headline']}; SSIM "
             f"lower {over[labels[1]]['headline']}; time longer {over[labels[2]]['headline']}.  ",
             f"Seed {V['seed']}, δ = {hi:g} vs {lo:g}: protection {pr['larger_only']} probe × model pairs only protected "
             f"at the larger δ, {pr['smaller_only']} only at the smaller (p = {pr['p']:.3g}): {pr['verdict']}; SSIM lower "
             f"at the larger δ on {ss['lower']} faces, higher on {ss['higher']} (p = {ss['p']:.3g}): {ss['verdict']}; "
             f"time longer on {tt['longer']} faces, shorter on {tt['shorter']} (p = {tt['p']:.3g}): {tt['verdict']}.", ""]
    return "\n".join(lines)


def _claim_sections(R: Mapping, records: list[dict]) -> list[str]:
    """The first started seed's claim sections (a), (b), (d), (c), each led by its verdict over seeds."""
    first = _first(R)
    V = C.for_seed(R, first) if first is not None else None
    out = []
    if V is not None and C.has_runs(V, "a"):
        out.append(claim_a_section(V, records))
    if V is not None and C.has_runs(V, "b"):
        out.append(claim_b_section(V, records))
    if V is not None and C.has_runs(V, "d"):
        out.append(claim_d_section(V, records))
    if V is not None and C.has_runs(V, "c"):
        out.append(claim_c_section(V, records))
    else:
        out.append("\n".join(["## (c) Top team vs median team", "", "Not measured yet: the run stopped before this "
                              "stage (the file is rewritten after every stage).", ""]))
    return out


def render(R: Mapping) -> str:
    """The whole page (``pmask.md``) of a results dict, complete or cut short."""
    records = C.claims(R)["over seeds"]
    parts = [over_seeds_section(R, records)] if C.measured_seeds(R) else []
    parts.append(diversity_section(R))
    first = _first(R)
    if first is not None and R["per seed"][str(first)]["runs"]:
        parts.append(speed_section(R))
        parts.append(psr_section(C.for_seed(R, first)))
    return "\n".join(head(R) + parts + _claim_sections(R, records)) + "\n"


def claims_markdown(R: Mapping) -> str:
    """The claims over seeds and the first seed's claim sections (a)–(d), for a notebook cell."""
    records = C.claims(R)["over seeds"]
    return "\n".join([seeds_table(R, records), "", *_claim_sections(R, records)])


__all__ = ["render", "claims_markdown", "head", "seeds_table", "randomness_text", "seeds_text", "over_seeds_section",
           "diversity_section", "psr_section", "speed_section", "claim_a_section", "claim_b_section",
           "claim_c_section", "claim_d_section"]
