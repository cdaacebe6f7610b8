"""The ErasableMask benchmark's page, from its results dict alone.

:func:`render` words ``benchmarks/results/erasable_mask.md`` from the JSON
that ``benchmarks/erasable_mask.py`` writes (:data:`facelab.experiments.erasable_mask.SCHEMA`),
so the benchmark, a re-render and notebook 03 show the same tables and
verdicts; :func:`claims_markdown` is the claims section alone.  The claims
are computed in :mod:`facelab.experiments.erasable_mask_claims`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..evaluation import Table
from ..metrics.claims import VERDICTS
from .erasable_mask_claims import (BASE, CLAIMS, claim_results, claims_over_seeds, machine_was_shared,
                                   model_group, seed_views)

TITLES = {
    "a": "(a) meta-auxiliary attack transfers better to black-box models than a plain ensemble loss "
         "(same data, epochs and surrogates) — black-box ASR",
    "b": "(b) clean-domain injection (γ = 0.3) raises ESR over γ = 0 — ESR on all {n_all} models",
    "b′": "(b′) … and restored PSNR",
    "c": "(c) the curriculum ends better than all losses from the start — restored PSNR",
    "c′": "(c′) … and black-box ASR",
    "d": "(d) the noise pool keeps ASR under JPEG q = 75 — ASR on all {n_all} models",
    "d′": "(d′) … and ESR under JPEG q = 75",
}
"""Each claim's wording, by its id in :data:`facelab.experiments.erasable_mask_claims.CLAIMS`."""

_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
TRAIN = "python -m facelab.methods.erasable_mask --threads 1"


def _n(k: int) -> str:
    return _WORDS.get(k, str(k))


def _table(header: Sequence[str], rows) -> list[str]:
    return Table.from_rows(header, rows).to_markdown(list(header)).split("\n")


def _rates(rates: Mapping[str, float], models: Sequence[str]) -> str:
    return " / ".join(f"{rates[m]:.0%}" for m in models)


def _model_rates(res: Mapping, models: Sequence[str], key: str) -> str:
    return _rates({m: res["models"][m][key] for m in models}, models)


def _baseline_name(b: Mapping) -> str:
    if b["norm"] == "linf":
        return f"{b['attack']} L∞ {round(b['eps'] * 255)}/255"
    return f"{b['attack']} L2 {b['eps']:.2f} (ErasableMask's mean L2 change)"


def claim_line(R: Mapping, c: Mapping) -> str:
    """One claim's bullet: its statistics and verdict, or why it was not run."""
    title = TITLES[c["id"]].format(n_all=_n(len(model_group(R, "all"))))
    if c["status"] == "no base":
        return f"- {title}: **not run** (no `{BASE}` checkpoint; train it with `{TRAIN}`)"
    if c["status"] == "no ablation":
        other = c["other"]
        return (f"- {title}: **not run** (no `{other}` checkpoint; train it with "
                f"`{TRAIN} {R['variants'].get(other, '')} --name {other}`)")
    lo, hi = c["ci"]
    if c["kind"] == "binary":
        body = (f"{c['rate_a']:.1%} vs {c['rate_b']:.1%} (n = {c['n']} outcomes from {c['faces']} faces; "
                f"face-bootstrap 95 % CI of Δ [{lo:+.3f}, {hi:+.3f}]; sign test on per-face means "
                f"{c['wins']}:{c['losses']}, p = {c['p']:.2g})")
    else:
        body = (f"{c['mean_a']:.2f} vs {c['mean_b']:.2f} {c['unit']} (Δ {c['effect']:+.2f}, face-bootstrap 95 % CI "
                f"[{lo:+.2f}, {hi:+.2f}]; sign test on per-face means {c['wins']}:{c['losses']}, p = {c['p']:.2g})")
    return f"- {title}: {body} — **{c['verdict']}**"


def _claims_section(R: Mapping) -> list[str]:
    seeds = list(seed_views(R))
    L = ["## Claims" + (f" (training seed {seeds[0]})" if len(seeds) > 1 else ""), ""]
    L += [claim_line(R, c) for c in claim_results(R)]
    if len(seeds) == 1:
        L += ["", f"Each claim compares two checkpoints trained once each (seed {seeds[0]}): a difference can come "
              "from the seed as much as from the method; the verdicts carry only the evaluation's uncertainty "
              f"({R['n_faces']} faces), not the training's."]
    else:
        L += ["", f"These verdicts are seed {seeds[0]}'s checkpoints alone and carry only the evaluation's "
              f"uncertainty ({R['n_faces']} faces); the next section repeats every claim with each training seed."]
        L += [""] + _seeds_section(R)
    return L


def _compares(c: Mapping) -> str:
    if c["kind"] == "continuous":
        return f"restored PSNR ({c['unit']})"
    where = "" if c["setting"] == "clean" else f" under {c['setting']}"
    return f"{c['outcome'].upper()}{where}, {c['models']} models (pts)"


def _seeds_section(R: Mapping) -> list[str]:
    views = seed_views(R)
    seeds = list(views)
    rows = claims_over_seeds(R)
    L = [f"## Claims over training seeds {', '.join(map(str, seeds))}", "",
         "Every variant is retrained with each seed (the seed draws the train/test split, the initialisation and the "
         "batches; `--seed N --name <variant>-seedN`) and evaluated on that seed's own held-out faces; each seed's "
         "claim is tested alone, as above (face bootstrap, sign test on per-face means). The seeds are reruns of "
         "one protocol on the same photo pool, not independent samples, so they are not pooled: a claim holds over "
         "seeds only where it holds (significant) in every seed. Δ = default − ablation (rates in points).", ""]
    for s, v in views.items():
        prov = [p for n, p in (v.get("provenance") or {}).items()  # the variants, not the editor ablation
                if n.split("-seed")[0] in R["variants"] and p.get("train_seconds") is not None]
        secs = [p["train_seconds"] for p in prov]
        L.append(f"- seed {s}: {v['n_faces']} held-out faces ({v['data'].rsplit('; ', 1)[-1]}); checkpoints missing: "
                 f"{', '.join(v['missing']) if v['missing'] else 'none'}"
                 + (f"; training {min(secs):.0f}–{max(secs):.0f} s per variant" if secs else ""))
    L.append("")
    table = []
    for c, r in zip(CLAIMS, rows):
        per = " / ".join(format((100 if r["kind"] == "binary" else 1) * e, "+.1f" if r["kind"] == "binary" else "+.2f")
                         for e in r["effects"]) or "–"
        summary = r["summary"] or "not run"
        if r["missing"] and r["summary"]:
            summary += f"; not run in seed{'s' if len(r['missing']) > 1 else ''} {', '.join(map(str, r['missing']))}"
        table.append([f"({c['id']})", f"default vs {c['other'].removeprefix(BASE + '-')}", _compares(c), per,
                      r["spread"] or "–", summary])
    L += _table(["claim", "compares", "measure", "Δ per seed", "spread", "verdicts over seeds"], table)
    every = sum(1 for r in rows if r["verdicts"] and not r["missing"] and set(r["verdicts"]) == {VERDICTS[0]})
    L += ["", f"Claims holding (significant) in every seed: {every} of {len(rows)}."]
    return L


def claims_markdown(R: Mapping) -> str:
    """The claims section of the page (each claim's statistics and verdict, and over training seeds when the
    results hold several), for a notebook cell."""
    return "\n".join(_claims_section(R)) + "\n"


def _header(R: Mapping) -> list[str]:
    white, black = R["white"], R["black"]
    shared = machine_was_shared(R["load_average"], R["cpu_count"])
    L = ["# ErasableMask (teaching scale)", "",
         f"Command: `{R['command']}`" + (" — **FACELAB_FAST=1 smoke run: not a result**" if R.get("fast") else "")
         + "  ",
         f"Machine: {R['machine']}; load average at start {R['load_average']:.1f}"
         + (" (more runnable work than cores: the machine was shared, times are upper bounds)" if shared else "")
         + "  ",
         f"Data: {R['data']}. Evaluated on the {R['n_faces']} held-out faces × "
         "2 target attribute vectors (its own, b = a, and all flipped, b = 1 − a) = "
         f"{len(R['faces'])} protected faces (correlated within a face).  ",
         f"White-box (training surrogates): {', '.join(white)}; black-box (held out): {', '.join(black)}; "
         f"thresholds at FAR {R['far']:.0%} (`model.threshold(far)`).", ""]
    if BASE not in R["results"]:
        L += [f"**Not run**: no `{BASE}` checkpoint in the facelab cache. Train it with "
              f"`{TRAIN}` and run this benchmark again.", ""]
    return L


def _protection_section(R: Mapping) -> list[str]:
    white, black = R["white"], R["black"]
    every = model_group(R, "all")
    n_all = len(every)
    L = ["## Protection and erasure", "",
         f"ASR per model (white: {' / '.join(white)}; black: {' / '.join(black)}); ESR on all {_n(n_all)}; "
         "PSNR/SSIM vs the clean face.", ""]
    rows = []
    for name, res in R["results"].items():
        for dist in ("clean", *R["distortions"]):
            if dist not in res:
                continue
            r = res[dist]
            rows.append([name, "none" if dist == "clean" else dist, _model_rates(r, white, "asr"),
                         _model_rates(r, black, "asr"), _model_rates(r, every, "esr"), f"{r['psnr_protected']:.1f}",
                         f"{r['psnr_restored']:.1f}", f"{r['ssim_restored']:.3f}"])
    L += _table(["variant", "distortion", "ASR white", "ASR black", f"ESR (all {n_all})", "PSNR prot.", "PSNR rest.",
                 "SSIM rest."], rows)
    if BASE in R["results"]:
        r = R["results"][BASE]["clean"]
        L += ["", "Match rate of the attribute-edited faces x_b (no perturbation encoder) per model, "
              f"for reference: {_model_rates(r, every, 'match_edited')} "
              "(a low rate means the editing autoencoder alone already loses the identity at this scale, "
              "and that model's ASR measures the editor, not the perturbation)."]
    return L


def _editors_section(R: Mapping) -> list[str]:
    """The editor ablation: AttGAN's shortcut count against the identity the edited faces keep."""
    editors = R.get("editors") or {}
    if not editors:
        return []
    every = model_group(R, "all")
    rows = [[name, str(e["shortcut_layers"]), str(e["stage1_epochs"]), _rates(e["match"], every),
             f"{e['psnr']:.1f}", f"{e['ssim']:.3f}"] for name, e in editors.items()]
    n_units = len(R["faces"])
    return ["", "## Editor ablation: AttGAN's shortcuts", "",
            f"The attribute editor alone (stage 1; x_b = G(x, b), no perturbation), on the same {n_units} units "
            f"({R['n_faces']} faces × 2 targets): the share of x_b still matched to its clean face per model "
            f"({' / '.join(every)}, at FAR {R['far']:.0%}), and PSNR / SSIM of x_b vs x. "
            f"`{BASE}`'s row is its own frozen stage-1 editor; the other is trained for stage 1 only.", ""] + \
        _table(["checkpoint", "shortcut layers", "stage-1 epochs", "x_b matched", "PSNR x_b", "SSIM x_b"], rows)


def _baselines_section(R: Mapping) -> list[str]:
    white, black = R["white"], R["black"]
    rows = [[_baseline_name(b), _rates(b["asr"], white), _rates(b["asr"], black), "—", f"{b['psnr']:.1f}",
             f"{b['ssim']:.3f}"] for b in R["baselines"]]
    return (["", "## Gradient baselines on the same faces (no erasure)", ""]
            + _table(["method", "ASR white", "ASR black", "ESR", "PSNR", "SSIM"], rows))


def _training_load(prov: Mapping, cpu_count) -> str:
    """What else ran while the checkpoint trained, as far as its provenance says."""
    if prov.get("cpu_seconds") is None or prov.get("load_average") is None:
        return "machine load not recorded (trained before facelab recorded it)"
    share = prov["cpu_seconds"] / max(prov["train_seconds"], 1e-9)
    return (f"{prov['cpu_seconds']:.0f} s of CPU ({share:.2f} of the wall time); 1-min load average "
            f"{prov['load_average']:.2f} on {cpu_count} cores when it ended")


def _speed_section(R: Mapping) -> list[str]:
    s = R["speed"]
    prov = R["provenance"].get(BASE, {})
    return ["", "## Speed", "",
            f"- protect + erase of one 64-px face: {s['protect_erase_seconds'] * 1000:.1f} ms (minimum of "
            f"{s['repeats']} runs; the issue's budget is 200 ms)",
            f"- training (from the checkpoint's provenance): {prov.get('train_seconds', float('nan')):.0f} s "
            f"for {prov.get('iterations')} iterations, epochs {prov.get('train', {}).get('epochs')}, "
            f"{prov.get('threads')} thread(s); {_training_load(prov, R['cpu_count'])} (budget: 20 min on 2 cores)",
            f"- training command: `{prov.get('command')}`"]


def render(R: Mapping) -> str:
    """The whole ``erasable_mask.md`` page of a results dict (schema 1)."""
    L = _header(R) + _protection_section(R) + _editors_section(R)
    if BASE in R["results"]:
        L += _baselines_section(R) + _speed_section(R)
    L += [""] + _claims_section(R)
    missing = R["missing"]
    L += ["", f"Variants not trained here: {', '.join(missing) if missing else 'none'}.",
          "", f"Benchmark wall time: {R['seconds']:.0f} s."]
    return "\n".join(L) + "\n"


__all__ = ["TITLES", "claim_line", "claims_markdown", "render"]
