"""The PMT benchmark's report, from its results dict alone.

:func:`render` words every section of ``benchmarks/results/pmt.md`` from the
JSON ``benchmarks/pmt.py`` writes (:data:`facelab.experiments.pmt.SCHEMA`:
settings, command, machine line, load, run time, every per-pair decision and
per-image value), so the benchmark, a re-render and notebook 02 show the same
tables: ``render(json.loads(path.read_text())) == the .md file``.  The
claims' verdicts are computed in :mod:`facelab.experiments.pmt_claims`;
:func:`claims_markdown` is the claims section alone, for a notebook cell.
"""
from __future__ import annotations

import statistics
from typing import Mapping

import numpy as np

from ..evaluation import Table
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


def claims_section(R: Mapping) -> list[str]:
    rows = [[r["claim"], r["comparison"], numbers(r), r["verdict"]] for r in C.claims(R)]
    return ["## Claims", "", *_table(["claim", "comparison", "numbers (a vs b)", "verdict"], rows)]


def claims_markdown(R: Mapping) -> str:
    """The claims section of the report (claims (a)–(e) with their verdicts), for a notebook cell."""
    return "\n".join(claims_section(R)) + "\n"


def _header(R: Mapping) -> list[str]:
    load0, load1 = R["load"]["start"], R["load"]["end"]
    shared = max(load0, load1) > R["threads"] + 0.5
    resumed = R["resumed"]
    return [
        "# PMT: the paper's claims on facelab's pool, and timings", "",
        f"Command: `{R['command']}`  ",
        f"Machine: {R['machine']}; load average (1 min) at the start {load0:.1f}, at the end {load1:.1f}"
        + (" (a shared machine: other jobs ran alongside; timings are upper bounds)" if shared else "") + "  ",
        f"Total run time: {R['minutes']:.1f} min" + (f" (settings {', '.join(resumed)} were resumed from an interrupted "
                                                     "run with the same sizes; their seconds are from that run)"
                                                     if resumed else ""), "",
    ]


def _data_name(R: Mapping) -> str:
    """The face set's name as the page shows it (results made before ``--data`` existed are the offline set's)."""
    name = R["data"].get("name", "offline")
    return "Offline set" if name.startswith("offline") else f"Face set {name}"


def _data_section(R: Mapping) -> list[str]:
    P, a = R["params"], R["authorized"]
    proto = Protocol(**R["protocol"])
    describe = proto.describe(dict(zip(proto.probes, R["labels"])))
    unauth = [m for m in R["models"] if m != a]
    return [
        "## Data and settings", "",
        f"- {_data_name(R)} ({R['data']['faces']} aligned 112-px faces, {R['data']['identities']} identities). "
        f"{describe}",
        "- Pairs of one probe share its x̃ and are correlated"
        + ("; the two video subjects' photos are near-duplicates." if _data_name(R) == "Offline set" else "."),
        f"- Authorized model **{a}** (shallow model = its first {P['shallow_layers']} layers); unauthorized: "
        f"{', '.join(unauth)} (faceres and faceres-deep share one graph: correlated). MR-PMT: "
        + "; ".join(f"{k} = {' + '.join(v)}" for k, v in R["mr"].items()) + ".",
        f"- κ = each model's calibrated threshold at FAR {R['far']:g} "
        f"({', '.join(f'{k} {v:+.3f}' for k, v in R['thresholds'].items())}); "
        "Eq. 10's strict acc. Chance level of acc is not 50 %: on clean images it is the verification accuracy of the pairs.",
        "- Settings run: " + ", ".join(R["settings"]) + ".",
        f"- PMT: {P['steps']} steps per setting, α 4/255 → 0.25/255, "
        "seed 0; default = noise init, noise augmentation (σ 0.1), aggregation, Gaussian kernel k = 1.",
        f"- White-box reconstruction: {P['white_box_steps']} sign steps, λ_TV = 5, β = 2, on all probes. Black-box: RecFace "
        f"({P['recface_iterations']} iterations, batch 8) trained on {P['recface_data']}; evaluated on the "
        f"{len(proto.recon_test)} held-out probes.",
        "- Tests: exact two-sided sign tests on paired outcomes (per pair and model for acc, per image for "
        "continuous values) and 95 % percentile-bootstrap CIs of the mean paired difference. "
        "\"holds\" needs p < 0.05 in the claimed direction.", "",
    ]


def _accuracy_section(R: Mapping) -> list[str]:
    models, a, clean = R["models"], R["authorized"], R["clean"]
    sigma = f"{R['server_noise']:g}"
    rows = [["clean x", *[f"{_mean(clean[n]):.3f}" for n in models], f"{_mean(R['clean_noisy'][a]):.3f}", "1.000", "—"]]
    for name, r in R["settings"].items():
        cells = [f"**{_mean(r['decisions'][n]):.3f}**" if n in r["authorized"] else f"{_mean(r['decisions'][n]):.3f}"
                 for n in models]
        noisy_auth = np.mean([_mean(r["noisy_decisions"][m]) for m in r["authorized"]])
        rows.append([name, *cells, f"{noisy_auth:.3f}", f"{_mean(r['ssim']):.3f}", f"{r['seconds']:.0f}"])
    return ["## Strict accuracy (Eq. 10) per setting and model", "",
            *_table(["setting", *models, f"authorized under server noise σ={sigma}", "SSIM(x̃, x)", "seconds (batch)"],
                    rows), "",
            f"Bold: authorized model(s). Each cell: mean over {len(R['protocol']['pair_y'])} pairs.", ""]


def _reconstruction_section(R: Mapping) -> list[str]:
    rows = []
    for key, r in R["reconstruction"].items():
        box, cond = key.split("/")
        rows.append([f"{box}-box", cond, f"{_mean(r['ssim']):.3f}", f"{_mean(r['psnr']):.2f}", f"{_mean(r['cos']):.3f}",
                     f"{_mean(r['srra']):.2f}", f"{len(r['ssim'])}"])
    return ["## Reconstructions (Table 6)", "",
            *_table(["attack", "features", "SSIM ↓", "PSNR ↓", "COS ↑", "SRRA ↑", "n"], rows), "",
            "\"random\": clean features plus PMT's feature change with its entries shuffled (the paper's "
            "same-amplitude noise row). COS: cosine of the authorized model's embeddings of the reconstruction and "
            "the original; SRRA: share above its threshold.", ""]


def _attribute_section(R: Mapping) -> list[str]:
    pmt_, noise = R["attributes"]["pmt"], R["attributes"]["noise"]
    a = R["authorized"]
    rows = [[f"{attr} {'(abs. difference, years)' if attr == 'age' else '(CosSim)'}", f"{_mean(pmt_[attr]):.3f}",
             f"{_mean(noise[attr]):.3f}"] for attr in pmt_]
    return ["## Attributes (Table 8) and UP (Eq. 9)", "",
            *_table(["attribute", "PMT(x)", "x + N(0, 0.3²)"], rows), "",
            f"UP(σ = {R['up']['sigma']:g}, κ = {R['thresholds'][a]:.3f}) on {a}, privacy term = 1 − attribute CosSim "
            f"(no LPIPS offline): PMT(x) vs original x: {_fmt_sum(C.utility_privacy(R))}.", ""]


def _timing_section(R: Mapping) -> list[str]:
    P, T, prov = R["params"], R["timings"], R["recface"]
    times = T["pmt_one_face"]
    rows = [
        [f"one face, `pmt(x, {R['authorized']})` with defaults ({P['one_face_steps']} steps)",
         f"{statistics.median(times):.1f} s median ({', '.join(f'{t:.1f}' for t in times)})", f"{len(times)} runs"],
        [f"RecFace training, {prov['iterations']} iterations (teaching scale)",
         f"{prov['train_seconds']:.0f} s (final loss {prov['final_loss']:.2f})", "1"],
        [f"RecFace training, {P['recface_fast_iterations']} iterations (fast mode)", f"{T['recface_fast']:.0f} s", "1"],
        [f"white-box reconstruction, {P['white_box_steps']} steps × 3 feature sets, batch {len(R['protocol']['probes'])}",
         f"{T['white_box']:.0f} s", "1"],
    ]
    return ["## Timings", "", *_table(["what", "time", "n"], rows), "",
            "Targets of the issue: ≤ 15 s per face, ≤ 10 min RecFace training, < 1 min in fast mode, on 2 idle cores."]


def render(R: Mapping) -> str:
    """The whole results page (``benchmarks/results/pmt.md``) of a results dict of
    :data:`facelab.experiments.pmt.SCHEMA`."""
    L = _header(R) + _data_section(R) + claims_section(R) + [""]
    L += _accuracy_section(R) + _reconstruction_section(R) + _attribute_section(R) + _timing_section(R)
    return "\n".join(L) + "\n"


__all__ = ["render", "claims_markdown", "claims_section", "numbers"]
