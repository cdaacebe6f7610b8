"""The TIP-IM claims benchmark's pages, from its results dict alone.

:func:`render` words ``benchmarks/results/tip_im.md`` (the claims over seeds, with verdicts)
and :func:`render_full` ``tip_im_full.md`` (every model's rates, per seed) from the JSON that
``python -m benchmarks tip_im`` writes (:data:`facelab.experiments.tip_im.SCHEMA`), so the
benchmark, a re-render and notebook 04 show the same tables; :func:`claims_markdown` is the
claim sections alone, for a notebook cell.  The claims are computed in
:mod:`facelab.experiments.tip_im_claims`.
"""
from __future__ import annotations

from typing import Mapping

from ..evaluation import Table
from ..metrics.claims import PairedComparison, SeedSpread, in_every_seed
from . import tip_im_claims as C
from .tip_im import summarize

#: the columns of ``tip_im_full.md``
FULL_COLUMNS = ["method", "gamma", "model", "box", "R1-T", "chance R1-T", "R5-T", "chance R5-T", "R1-UT", "R5-UT",
                "PSNR", "SSIM", "MMD", "seconds"]

SMOKE = " — **FACELAB_FAST=1 smoke run: not a result**"


def _table(header, rows) -> str:
    return Table.from_rows(header, rows).to_markdown()


def _seed_list(R: Mapping) -> str:
    return ", ".join(map(str, R["seeds"]))


def _data_name(R: Mapping) -> str:
    d = R["data"]
    return "facelab offline set" if d["arg"] == "offline" else f"{d['name']} ({d['credit']})"


def _head(R: Mapping, title: str) -> list[str]:
    return [f"# {title}", "", f"Command: `{R['command']}`" + (SMOKE if R.get("fast") else "") + "  ",
            f"Machine: {R['machine']}", ""]


def _seed_cell(effect, ci, p, v) -> str:
    ci_text = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci is not None else ""
    p_text = f", p = {p:.2g}" if p is not None else ""
    return f"{effect:+.3f}{ci_text}{p_text}: {v}"


def seeds_table(R: Mapping, records: list[dict] | None = None) -> str:
    """The claims over seeds: each seed's effect, CI, p and verdict, the spread of the effects and
    in how many seeds each verdict holds (in bold when every seed agrees)."""
    records = C.claims(R)["over seeds"] if records is None else records
    header = ["claim (effect: A − B)", *(f"seed {s}" for s in R["seeds"]), "spread over seeds (min … max; mean ± sd)",
              "verdict over seeds"]
    rows = []
    for rec in records:
        sp = SeedSpread.from_record(rec)
        bold = "**" if sp.stable else ""
        rows.append([rec["claim"], *(_seed_cell(e, ci, p, v) for e, ci, p, v in
                                     zip(rec["effects"], rec["ci"], rec["p"], rec["verdicts"])),
                     sp.spread(), bold + sp.verdicts_summary() + bold])
    return _table(header, rows)


def rates_table(R: Mapping) -> str:
    """Black-box Rank-1-T (and its chance level) of every setting, per seed."""
    header = ["method", "γ", *(f"black R1-T, seed {s} (chance)" for s in R["seeds"]), "min … max"]
    rows = []
    for r in C.rates_by_setting(R):
        vals = [(v["rate"], v["chance"]) for v in r["per seed"].values()]
        g = "—" if r["gamma"] != r["gamma"] else f"{r['gamma']:g}"
        rows.append([r["method"], g, *(f"{v:.3f} ({c:.3f})" for v, c in vals),
                     f"{min(v for v, _ in vals):.3f} … {max(v for v, _ in vals):.3f}"])
    return _table(header, rows)


def _paired_text(c: Mapping) -> str:
    pc = PairedComparison(c["rate_a"], c["rate_b"], c["wins"], c["losses"], c["n"], c["p"], tuple(c["ci"]),
                          c["verdict"])
    return f"**{c['verdict']}**: {pc.summary()}"


def detail_table(claims: list[dict]) -> str:
    """One seed's claims, worded: what was measured and the verdict with its statistics."""
    by = {}
    for c in claims:
        by.setdefault(c["claim"], []).append(c)
    (a,), (a2,), (d,), (code,) = by["a"], by["a′"], by["d"], by["code"]
    g, single = a["rates"]["G"], a["rates"]["single"]
    rows = [
        ["(a) multi-target G beats single-target on black-box R1-T",
         f"G {g['rate']:.3f} (chance {g['chance']:.3f}) vs single {single['rate']:.3f} (chance {single['chance']:.3f})",
         _paired_text(a)],
        ["(a′) the same, each rate minus its chance level (G aims at k targets, so a random ranking already "
         "hits one more often)", f"G {g['rate'] - g['chance']:+.3f} vs single {single['rate'] - single['chance']:+.3f}",
         f"**{a2['verdict']}**: above chance {a2['a']} {a2['above_a']:+.3f}, {a2['b']} {a2['above_b']:+.3f}; "
         f"difference {a2['effect']:+.3f}, 95% CI [{a2['ci'][0]:+.3f}, {a2['ci'][1]:+.3f}] (n = {a2['n']})"],
    ]
    lines = []
    for key in dict.fromkeys(q["measure"] for q in by["b"]):
        lines.append(f"{key}: " + "; ".join(
            f"γ {q['gamma_from']:g}→{q['gamma_to']:g}: {q['effect']:+.3f} [{q['ci'][0]:+.3f}, {q['ci'][1]:+.3f}] "
            f"{q['verdict']}" for q in by["b"] if q["measure"] == key))
    rows.append(["(b) raising γ raises PSNR and SSIM (G)", "per-probe change, mean [95% CI]", "<br>".join(lines)])
    for c in by["c"]:
        m = c["b"]
        rows.append([f"(c) G beats {m} on black-box R1-T", f"G {c['rates']['G']['rate']:.3f} vs {m} "
                     f"{c['rates'][m]['rate']:.3f}", _paired_text(c)])
    rows += [
        ["(d) input diversity raises black-box R1-T (G, p = 1 vs p = 0)",
         f"{d['rates']['G']['rate']:.3f} vs {d['rates']['G, no diversity']['rate']:.3f}", _paired_text(d)],
        ["paper vs released code: which transfers better? (G, both with input diversity)",
         f"released code {code['rates']['G, released code']['rate']:.3f} vs paper {code['rates']['G']['rate']:.3f}",
         _paired_text(code)],
    ]
    return _table(["claim", "measured", "verdict and statistics"], rows)


def randomness_text(R: Mapping) -> str:
    """What a seed changes, and what it does not."""
    P, rows = R["params"], R["rows"]
    cap = P["max_gallery_per_identity"]
    return (
        f"What a seed changes: `run_protocol(seed=…)` hands the same seed to two places. (1) The split, "
        f"`make_protocol` (NumPy): the order of each identity's photos, and with it which of them are its probes "
        f"(the first up to {P['probes_per_identity']}), which one is its target image for the other identities, and "
        f"which of the rest enter the gallery (capped at {cap} per identity); and the order of each probe group's "
        f"target identities, so which identity the single-target baseline aims at (targets[0]). (2) The method, "
        f"`tip_im` (a torch generator restarted from the seed for every probe group and every setting): the "
        f"input-diversity draw of each step (resize size and pad offset), the self-augmentation of the MMD reference "
        f"batch (rotation, projective, brightness), TIP-IM-Rand's target per image and step, and the released code's "
        f"affine + rotation jitter. Fixed across seeds: the face set, the identities and their k = {rows[0]['targets']} "
        f"targets, the models, ε, α, T and the bootstrap's own seed (0). So the seeds are not independent "
        f"replications: they re-draw the split of the same {R['data']['photos']} photos "
        f"({in_every_seed(C.probes_in_every_seed(R), rows[0]['probes'], 'probes', 'a probe', 'probes')}) and the attack's randomness, on the same "
        f"identities and models.")


def note_text(R: Mapping) -> str:
    """The data, the protocol's settings and how the statistics were done."""
    P, rows = R["params"], R["rows"]
    n, steps, eps = rows[0]["probes"], P["steps"], P["eps"]
    black = sorted({r["model"] for r in rows if r["box"] == "black"})
    return (f"Data: {_data_name(R)}, {rows[0]['mode']} protocol, {n} protected probes, {rows[0]['targets']} target "
            f"identities per probe, gallery of {rows[0]['gallery']} images (capped at {P['max_gallery_per_identity']} "
            f"per identity). Surrogate (white box): {P['surrogate']}; {len(black)} black-box models: "
            f"{', '.join(black)}. ε = {eps * 255:g}/255 (L∞), α = {P['alpha'] * 255:g}/255, μ = {P['mu']:g}, "
            f"T = {steps}, input diversity p = {P['diversity_prob']:g} (resize-and-pad, every "
            f"setting but 'G, no diversity'); D_f on L2-normalised features; MMD on pixels with 16-image "
            f"self-augmentation; γ is on facelab's MMD scale (not the paper's). 'G, released code' is "
            f"`tip_im(variant=\"released_code\")`: the authors' run.py where it differs from Alg. 1 (momentum in each "
            f"candidate's step, affine + rotation diversity every iteration, plain L2 gains on raw features) with its "
            f"step α = 1.5·ε/T = {1.5 * eps * 255 / steps:.2f}/255. The single-target baseline aims at targets[0] "
            f"(`target_index=0`) and is scored against that identity.\n\n"
            f"Statistics: the unit of (a), (c), (d) and the paper-vs-code row is a probe-model pair ({n} probes × "
            f"{len(black)} black-box models = {n * len(black)} pairs); pairs of one probe are correlated, so the 95% CI "
            f"of the rate difference is a bootstrap over probes (whole clusters), and the exact sign test counts "
            f"discordant pairs (optimistic for the same reason). A verdict says 'holds' only when the sign test gives "
            f"p < 0.05 and the CI excludes 0 (`facelab.metrics.claims.verdict`). (b) is a paired bootstrap over the "
            f"{n} probes. Chance: the Rank-N-T a uniformly random ranking of the gallery would give, per probe's own "
            f"target images. The single-target baseline is scored against its one target, every other method against "
            f"its k targets, so their chance levels differ. 'seconds' is wall time on a shared machine (noisy).")


def seeds_text(R: Mapping) -> str:
    """Why the seeds are not pooled, what a seed changes, and the minutes per seed."""
    minutes = {int(s): m for s, m in R["minutes"].items()}
    return (
        f"Each seed ({_seed_list(R)}) runs the whole protocol and gets its own test and verdict; the seeds are **not "
        f"pooled** into one test, because they are not independent samples: the same faces, identities and models "
        f"come back in every seed, and the probes overlap between seeds. A claim's spread is the min … max and mean ± "
        f"sd of its effect over the {len(R['seeds'])} seeds; 'verdict over seeds' counts the seeds in which each "
        f"verdict holds (`facelab.metrics.claims.over_seeds`), in bold when every seed agrees. {randomness_text(R)}\n\n"
        f"Minutes per seed: " + ", ".join(f"seed {s} {minutes[s]:.1f}" for s in R["seeds"])
        + f"; total {sum(minutes[s] for s in R['seeds']):.1f} min.")


def _sections(R: Mapping, computed: dict) -> list[str]:
    first = R["seeds"][0]
    return [f"## Black-box Rank-1-T per setting and seed\n\n{rates_table(R)}",
            f"## Seed {first} in detail\n\n{detail_table(computed['per seed'][first])}"]


def render(R: Mapping) -> str:
    """``tip_im.md``: the claims over seeds, what the seeds are, the settings, the rates per
    setting and seed, the first seed's claims in detail and its summary per method."""
    computed = C.claims(R)
    first = R["seeds"][0]
    parts = ["\n".join(_head(R, f"TIP-IM: the paper's qualitative claims on facelab's pool, over seeds "
                                f"{_seed_list(R)}")) + "\n" + seeds_table(R, computed["over seeds"]),
             seeds_text(R), note_text(R), *_sections(R, computed),
             f"## Summary per method, seed {first}\n\n" + summarize(R["rows"]).to_markdown()]
    return "\n\n".join(parts) + "\n"


def render_full(R: Mapping) -> str:
    """``tip_im_full.md``: every model's rates and quality, per seed."""
    d = R["data"]
    full = "\n\n".join(f"## Seed {s}\n\n{Table(rows).to_markdown(FULL_COLUMNS)}"
                       for s, rows in C.rows_by_seed(R).items())
    title = f"TIP-IM: every model ({'offline set' if d['arg'] == 'offline' else d['name']}), seeds {_seed_list(R)}"
    return "\n".join(_head(R, title)) + f"\n{note_text(R)}\n\n{randomness_text(R)}\n\n{full}\n"


def claims_markdown(R: Mapping) -> str:
    """The claim sections of ``tip_im.md`` (for a notebook cell): the claims over seeds, the
    black-box rates per setting and seed, and the first seed's claims in detail."""
    computed = C.claims(R)
    return "\n\n".join([f"**TIP-IM's claims over seeds {_seed_list(R)}** (`{R['command']}`"
                        + (", a smoke run: not a result" if R.get("fast") else "") + ")",
                        seeds_table(R, computed["over seeds"]), *_sections(R, computed)])


__all__ = ["render", "render_full", "claims_markdown", "seeds_table", "rates_table", "detail_table", "note_text",
           "randomness_text", "seeds_text", "FULL_COLUMNS"]
