"""The PMT benchmark's report, from its results dict alone.

:func:`render` words every section of ``benchmarks/results/pmt.md`` from the
JSON ``benchmarks/pmt.py`` writes (:data:`facelab.experiments.pmt.SCHEMA`:
settings, command, machine line, load, run time, and per seed every per-pair
decision and per-image value), so the benchmark, a re-render and notebook 02
show the same tables: ``render(json.loads(path.read_text())) == the .md file``.
The claims are measured once per seed: the page leads with each claim's
effect and verdict per seed, their spread and the verdict over seeds
(:func:`seeds_table`, :func:`seeds_text`: what a seed changes and what stays
fixed, minutes per seed); the detailed sections (claims with their numbers,
strict accuracy, reconstructions, attributes) are the first seed's.  The
claims' verdicts are computed in :mod:`facelab.experiments.pmt_claims`;
:func:`claims_markdown` is the claims sections alone, for a notebook cell.
"""
from __future__ import annotations

import statistics
from typing import Mapping

import numpy as np

from ..evaluation import Table
from ..metrics.claims import SeedSpread, in_every_seed
from . import pmt_claims as C
from .pmt import Protocol


def _fmt_dec(d: Mapping) -> str:
    return f"{d['a']:.3f} vs {d['b']:.3f} ({d['only_a']}:{d['only_b']} discordant of {d['n']}, p = {d['p']:.3g})"


def _fmt_sum(s: Mapping, digits: int = 3) -> str:
    lo, hi = s["ci"]
    return (f"{s['a']:.{digits}f} vs {s['b']:.{digits}f}, diff {s['diff']:+.{digits}f} "
            f"[{lo:+.{digits}f}, {hi:+.{digits}f}] (sign {s['a_higher']}:{s['b_higher']} of {s['n']}, p = {s['p']:.3g})")


def numbers(row: Mapping) -> str:
    """The "numbers (a vs b)" cell of a claim row of :mod:`~facelab.experiments.pmt_claims`."""
    parts = []
    for label, stats in row["numbers"]:
        text = _fmt_dec(stats) if "only_a" in stats else _fmt_sum(stats, row["digits"])
        parts.append(f"{label} {text}" if label else text)
    return "; ".join(parts)


def _table(header, rows) -> list[str]:
    return Table.from_rows(header, rows).to_markdown(columns=list(header)).split("\n")


def _mean(values) -> float:
    return float(np.mean(np.asarray(values, dtype=float)))


def _seed_list(R: Mapping) -> str:
    return ", ".join(map(str, C.seeds(R)))


def _seeds_phrase(R: Mapping) -> str:
    """``"seed 0"`` or ``"seeds 0, 1, 2"``."""
    return ("seed " if len(C.seeds(R)) == 1 else "seeds ") + _seed_list(R)


def _first(R: Mapping) -> dict:
    """The first seed's view (:func:`~facelab.experiments.pmt_claims.seed_results`): what the detailed sections show."""
    return C.seed_results(R, C.seeds(R)[0])


def _seed_cell(effect: float, ci, p: float, v: str, digits: int) -> str:
    ci_text = f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]" if ci is not None else ""
    return f"{effect:+.{digits}f}{ci_text}, p = {p:.3g}: {C.short_verdict(v)}"


def seeds_table(R: Mapping, records: list[dict] | None = None) -> str:
    """The claims over seeds: per claim row each seed's effect (in the claim's direction), CI, p and
    verdict, the spread of the effects and in how many seeds each verdict holds (in bold when every
    seed agrees): the claim's headline verdict."""
    records = C.claims_over_seeds(R)["over seeds"] if records is None else records
    header = ["claim", "comparison", *(f"seed {s}: effect, p, verdict" for s in C.seeds(R)),
              "spread over seeds (min … max; mean ± sd)", "verdict over seeds"]
    rows = []
    for rec in records:
        d, bold = rec["digits"], "**" if rec["stable"] else ""
        rows.append([rec["claim"], rec["comparison"],
                     *(_seed_cell(e, ci, p, v, d) for e, ci, p, v in
                       zip(rec["effects"], rec["ci"], rec["p"], rec["verdicts"])),
                     SeedSpread.from_record(rec).spread(f"+.{d}f"), bold + rec["summary"] + bold])
    return "\n".join(_table(header, rows))


EFFECT_TEXT = (
    "Effect: the difference in the claim's direction (positive: as claimed). (a), (b) ablations: the alternative's "
    "unauthorized acc minus the default's; (b) server noise: the default's authorized acc minus the alternative's; "
    "(d) authorized: PMT's acc minus clean (the claim is no significant drop *and* acc ≥ "
    f"{C.AUTHORIZED_HIGH:g}, which the verdict says), unauthorized: clean minus PMT's; (c) SSIM, PSNR (dB): from clean "
    "features minus from PMT's, COS: PMT's minus the random features'; (e) CosSim: x + N(0, 0.3²)'s minus PMT(x)'s, "
    "age (years): PMT(x)'s difference minus the noise's. p: that seed's exact sign test; [ ]: its 95 % bootstrap CI "
    "(per-image values only). \"but not at comparable authorized acc\": the default's authorized acc was "
    "significantly lower than the alternative's in that seed too, so a lower unauthorized acc says nothing about "
    "PMT's trade-off.")


def seeds_text(R: Mapping) -> str:
    """Why the seeds are not pooled, what a seed changes and what stays fixed, and the minutes per seed."""
    S, P = C.seeds(R), R["params"]
    n_probes = len(_first(R)["protocol"]["probes"])
    minutes = {s: R["per seed"][str(s)]["seed_minutes"] for s in S}
    return (
        f"Each seed ({_seed_list(R)}) runs the whole protocol and gets its own tests and verdicts; the seeds are **not "
        f"pooled** into one test, because they are not independent samples: the same faces, identities and models "
        f"come back in every seed, and the probes overlap "
        f"({in_every_seed(C.probes_in_every_seed(R), n_probes, 'probes', 'a probe', 'probes')}). A claim's spread is the min … max and mean ± sd of its effect over the {len(S)} "
        f"seed{'s' if len(S) != 1 else ''}; 'verdict over seeds' counts the seeds in which each verdict holds, in bold "
        f"when every seed agrees.\n\n"
        f"What a seed s changes: (1) the split, `make_protocol(seed=s)`: which identities give a probe, which of "
        f"their photos is the probe, its genuine and impostor partners, and with them the reconstruction test "
        f"identities and RecFace's training faces; (2) PMT's randomness, `pmt(seed=s)`: the noise start x̃₀ (shuffle's "
        f"permutation) and the augmentation drawn at every step, in every setting; (3) the evaluation's noise: the "
        f"server noise σ = {R['server_noise']:g}, the shuffle behind the 'random' features of (c) and the x + N(0, 0.3²) "
        f"baseline of (e) (one generator seeded s + 1, so seed 0 draws what the single-seed benchmark drew), and UP's "
        f"noise samples (seed s). Fixed across seeds: the face set, the models and their thresholds, every setting "
        f"and step count, the bootstrap's seed (0), and the attackers' own randomness: the white-box reconstruction's "
        f"start jitter (seed 0) and RecFace's training (seed 0: initial weights, batches, augmentations). An attack is "
        f"the instrument that measures (c), so a seed changes what is attacked, not the attacker. RecFace is still "
        f"retrained in every seed ({P['recface_iterations']} iterations), because its training faces follow the "
        f"split: it must never see that seed's test identities.\n\n"
        f"Minutes per seed: " + ", ".join(f"seed {s} {minutes[s]:.1f}" for s in S)
        + f"; total {sum(minutes.values()):.1f} min (the timings below are measured once, after the seeds).")


def claims_section(R: Mapping) -> list[str]:
    """The claims over seeds (the headline verdicts) and the first seed's claims in detail."""
    computed = C.claims_over_seeds(R)
    first = C.seeds(R)[0]
    rows = [[r["claim"], r["comparison"], numbers(r), r["verdict"]] for r in computed["per seed"][first]]
    return [f"## Claims over {_seeds_phrase(R)}", "", seeds_table(R, computed["over seeds"]), "", EFFECT_TEXT, "",
            seeds_text(R), "", f"## Claims, seed {first} in detail", "",
            *_table(["claim", "comparison", "numbers (a vs b)", "verdict"], rows)]


def claims_markdown(R: Mapping) -> str:
    """The claims sections of the report (claims (a)–(e) over seeds with their verdicts, and the
    first seed's in detail), for a notebook cell."""
    return "\n".join(claims_section(R)) + "\n"


def _header(R: Mapping) -> list[str]:
    load0, load1 = R["load"]["start"], R["load"]["end"]
    shared = max(load0, load1) > R["threads"] + 0.5
    resumed = {s: R["per seed"][str(s)]["resumed"] for s in C.seeds(R)}
    resumed_text = "; ".join(f"seed {s}: {', '.join(r)}" for s, r in resumed.items() if r)
    return [
        f"# PMT: the paper's claims on facelab's pool over {_seeds_phrase(R)}, and timings", "",
        f"Command: `{R['command']}`  ",
        f"Machine: {R['machine']}; load average (1 min) at the start {load0:.1f}, at the end {load1:.1f}"
        + (" (a shared machine: other jobs ran alongside; timings are upper bounds)" if shared else "") + "  ",
        f"Total run time: {R['minutes']:.1f} min" + (" (resumed from an interrupted run with the same sizes and "
                                                     "seed, so their seconds are from that run and their seed's "
                                                     f"minutes leave them out: {resumed_text})"
                                                     if resumed_text else ""), "",
    ]


def _data_name(R: Mapping) -> str:
    """The face set's name as the page shows it (results made before ``--data`` existed are the offline set's)."""
    name = R["data"].get("name", "offline")
    return "Offline set" if name.startswith("offline") else f"Face set {name}"


def _data_section(R: Mapping) -> list[str]:
    P, a, V = R["params"], R["authorized"], _first(R)
    S = C.seeds(R)

    def describe(seed: int) -> str:
        proto = Protocol(**R["per seed"][str(seed)]["protocol"])
        return proto.describe(dict(zip(proto.probes, R["per seed"][str(seed)]["labels"])))

    proto = Protocol(**V["protocol"])
    unauth = [m for m in R["models"] if m != a]
    return [
        "## Data and settings", "",
        f"- {_data_name(R)} ({R['data']['faces']} aligned 112-px faces, {R['data']['identities']} identities). "
        f"Seed {S[0]}'s split: {describe(S[0])}",
        *(f"- Seed {s}'s split: {describe(s)}" for s in S[1:]),
        "- Pairs of one probe share its x̃ and are correlated"
        + ("; the two video subjects' photos are near-duplicates." if _data_name(R) == "Offline set" else "."),
        f"- Authorized model **{a}** (shallow model = its first {P['shallow_layers']} layers); unauthorized: "
        f"{', '.join(unauth)} (faceres and faceres-deep share one graph: correlated). MR-PMT: "
        + "; ".join(f"{k} = {' + '.join(v)}" for k, v in R["mr"].items()) + ".",
        f"- κ = each model's calibrated threshold at FAR {R['far']:g} "
        f"({', '.join(f'{k} {v:+.3f}' for k, v in R['thresholds'].items())}); "
        "Eq. 10's strict acc. Chance level of acc is not 50 %: on clean images it is the verification accuracy of the pairs.",
        "- Settings run: " + ", ".join(V["settings"]) + ".",
        f"- PMT: {P['steps']} steps per setting, α 4/255 → 0.25/255, "
        "the run's seed; default = noise init, noise augmentation (σ 0.1), aggregation, Gaussian kernel k = 1.",
        f"- White-box reconstruction: {P['white_box_steps']} sign steps, λ_TV = 5, β = 2, on all probes. Black-box: RecFace "
        f"({P['recface_iterations']} iterations, batch 8, training seed 0) trained in each seed on that seed's "
        f"non-test identities (seed {S[0]}: {V['recface_data']}); evaluated on the seed's held-out probes "
        f"({len(proto.recon_test)} in seed {S[0]}).",
        "- Tests: exact two-sided sign tests on paired outcomes (per pair and model for acc, per image for "
        "continuous values) and 95 % percentile-bootstrap CIs of the mean paired difference. "
        "\"holds\" needs p < 0.05 in the claimed direction.", "",
    ]


def _accuracy_section(R: Mapping) -> list[str]:
    """The strict-accuracy table of one seed's view ``R``."""
    models, a, clean = R["models"], R["authorized"], R["clean"]
    sigma = f"{R['server_noise']:g}"
    rows = [["clean x", *[f"{_mean(clean[n]):.3f}" for n in models], f"{_mean(R['clean_noisy'][a]):.3f}", "1.000", "—"]]
    for name, r in R["settings"].items():
        cells = [f"**{_mean(r['decisions'][n]):.3f}**" if n in r["authorized"] else f"{_mean(r['decisions'][n]):.3f}"
                 for n in models]
        noisy_auth = np.mean([_mean(r["noisy_decisions"][m]) for m in r["authorized"]])
        rows.append([name, *cells, f"{noisy_auth:.3f}", f"{_mean(r['ssim']):.3f}", f"{r['seconds']:.0f}"])
    return [f"## Strict accuracy (Eq. 10) per setting and model, seed {R['seed']}", "",
            *_table(["setting", *models, f"authorized under server noise σ={sigma}", "SSIM(x̃, x)", "seconds (batch)"],
                    rows), "",
            f"Bold: authorized model(s). Each cell: mean over {len(R['protocol']['pair_y'])} pairs. 'seconds': "
            "this seed's run of the setting.", ""]


def _reconstruction_section(R: Mapping) -> list[str]:
    rows = []
    for key, r in R["reconstruction"].items():
        box, cond = key.split("/")
        rows.append([f"{box}-box", cond, f"{_mean(r['ssim']):.3f}", f"{_mean(r['psnr']):.2f}", f"{_mean(r['cos']):.3f}",
                     f"{_mean(r['srra']):.2f}", f"{len(r['ssim'])}"])
    return [f"## Reconstructions (Table 6), seed {R['seed']}", "",
            *_table(["attack", "features", "SSIM ↓", "PSNR ↓", "COS ↑", "SRRA ↑", "n"], rows), "",
            "\"random\": clean features plus PMT's feature change with its entries shuffled (the paper's "
            "same-amplitude noise row). COS: cosine of the authorized model's embeddings of the reconstruction and "
            "the original; SRRA: share above its threshold.", ""]


def _attribute_section(R: Mapping) -> list[str]:
    pmt_, noise = R["attributes"]["pmt"], R["attributes"]["noise"]
    a = R["authorized"]
    rows = [[f"{attr} {'(abs. difference, years)' if attr == 'age' else '(CosSim)'}", f"{_mean(pmt_[attr]):.3f}",
             f"{_mean(noise[attr]):.3f}"] for attr in pmt_]
    return [f"## Attributes (Table 8) and UP (Eq. 9), seed {R['seed']}", "",
            *_table(["attribute", "PMT(x)", "x + N(0, 0.3²)"], rows), "",
            f"UP(σ = {R['up']['sigma']:g}, κ = {R['thresholds'][a]:.3f}) on {a}, privacy term = 1 − attribute CosSim "
            f"(no LPIPS offline): PMT(x) vs original x: {_fmt_sum(C.utility_privacy(R))}.", ""]


def _timing_section(R: Mapping) -> list[str]:
    P, T, S = R["params"], R["timings"], C.seeds(R)
    seed = {s: R["per seed"][str(s)] for s in S}
    times = T["pmt_one_face"]
    rows = [
        [f"one face, `pmt(x, {R['authorized']})` with defaults ({P['one_face_steps']} steps)",
         f"{statistics.median(times):.1f} s median ({', '.join(f'{t:.1f}' for t in times)})", f"{len(times)} runs"],
        [f"RecFace training, {P['recface_iterations']} iterations (teaching scale)",
         "; ".join(f"seed {s} {seed[s]['recface']['train_seconds']:.0f} s (final loss "
                   f"{seed[s]['recface']['final_loss']:.2f})" for s in S), "1 per seed"],
        [f"RecFace training, {P['recface_fast_iterations']} iterations (fast mode)", f"{T['recface_fast']:.0f} s", "1"],
        [f"white-box reconstruction, {P['white_box_steps']} steps × 3 feature sets, batch "
         f"{len(seed[S[0]]['protocol']['probes'])}",
         "; ".join(f"seed {s} {seed[s]['white_box_seconds']:.0f} s" for s in S), "1 per seed"],
        [f"one seed of the protocol ({len(seed[S[0]]['settings'])} settings, reconstructions, RecFace, attributes, UP)",
         "; ".join(f"seed {s} {seed[s]['seed_minutes']:.1f} min" for s in S), "1 per seed"],
    ]
    return ["## Timings", "", *_table(["what", "time", "n"], rows), "",
            "Targets of the issue: ≤ 15 s per face, ≤ 10 min RecFace training, < 1 min in fast mode, on 2 idle cores."]


def render(R: Mapping) -> str:
    """The whole results page (``benchmarks/results/pmt.md``) of a results dict of
    :data:`facelab.experiments.pmt.SCHEMA`: the claims over seeds first, then the first seed's
    details."""
    V = _first(R)
    L = _header(R) + _data_section(R) + claims_section(R) + [""]
    L += _accuracy_section(V) + _reconstruction_section(V) + _attribute_section(V) + _timing_section(R)
    return "\n".join(L) + "\n"


__all__ = ["render", "claims_markdown", "claims_section", "seeds_table", "seeds_text", "EFFECT_TEXT", "numbers"]
