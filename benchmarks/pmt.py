"""PMT (Wang et al., "Facial Data Minimization"): the paper's claims on facelab's pool, and timings.

Writes ``pmt.md`` (claims with verdicts, timings) and ``pmt.json`` (every raw
decision and per-image value).  Protocol: :mod:`facelab.experiments.pmt` on
the offline set; authorized model mobileface (the paper's reconstruction
model), every other pool model unauthorized; κ = each model's calibrated
threshold at FAR 0.01.

Claims: (a) Table 3 — noise initialisation gives the lowest unauthorized acc;
(b) Tables 4–5 — noise augmentation, layer aggregation and the Gaussian
kernel lower unauthorized acc; (c) Table 6 — reconstructions from PMT
features are far from the original (SSIM/PSNR) compared with clean features,
white and black box, while COS stays high; (d) Table 7/9 — authorized acc
stays high while unauthorized acc falls, also for MR-PMT with 2 and 3
authorized models; (e) Table 8 — attribute CosSim falls (against the paper's
x + N(0, 0.3²) baseline).  ``FACELAB_FAST=1``: a smoke run (4 probes, few steps).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import numpy as np
import torch

from facelab.experiments.pmt import (acc_decisions, make_protocol, obfuscate, paired_decisions, paired_summary,
                                     reference_embeddings)
from facelab.metrics.claims import verdict
from facelab.faces import offline_set
from facelab.methods import recface as R
from facelab.methods.pmt import pmt
from facelab.methods.reconstruction import white_box_reconstruction
from facelab.metrics.privacy import attribute_cossim, utility_privacy
from facelab.metrics.quality import psnr, ssim
from facelab.models import available, load
from facelab import steps as _steps

from .timing import machine_line

AUTHORIZED = "mobileface"
MR = {"MR-PMT 2": ["mobileface", "mobilefacenet"], "MR-PMT 3": ["mobileface", "mobilefacenet", "faceapi-resnet"]}
FAR = 0.01
SERVER_NOISE = 0.1


def _fmt_dec(d: dict) -> str:
    return f"{d['a']:.3f} vs {d['b']:.3f} ({d['only_a']}:{d['only_b']} discordant of {d['n']}, p = {d['p']:.3g})"


def _fmt_sum(s: dict, digits: int = 3) -> str:
    lo, hi = s["ci"]
    return (f"{s['a']:.{digits}f} vs {s['b']:.{digits}f}, diff {s['diff']:+.{digits}f} "
            f"[{lo:+.{digits}f}, {hi:+.{digits}f}] (sign {s['a_higher']}:{s['b_higher']} of {s['n']}, p = {s['p']:.3g})")


def _pool_decisions(dec: dict, names) -> np.ndarray:
    return np.concatenate([dec[n] for n in names])


def main(args) -> None:
    fast = os.environ.get("FACELAB_FAST") == "1"
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    ds = offline_set(112)
    n_probes, steps = (3, 4) if fast else (8, 200)  # 200: pmt()'s default
    wb_steps = 3 if fast else 40
    rf_iterations = 5 if fast else 200
    rf_fast_iterations = 5 if fast else 60
    one_face_steps = 10 if fast else 200
    proto = make_protocol(ds.labels, ds.sources, n_probes=n_probes)
    crops = ds.crops
    x = crops[proto.probes]
    pool = [load(n) for n in available()]
    by = {m.name: m for m in pool}
    thresholds = {m.name: m.threshold(FAR) for m in pool}
    unauth = [m.name for m in pool if m.name != AUTHORIZED]
    gen = torch.Generator().manual_seed(1)
    server_noise = SERVER_NOISE * torch.randn(x.shape, generator=gen)
    print(f"pmt benchmark: {proto.describe(ds.labels)} steps={steps}", flush=True)
    print(f"  loaded in {time.perf_counter() - t_start:.0f}s", flush=True)

    settings = {
        "default": {},
        "init=shuffle": {"init": "shuffle"}, "init=blur": {"init": "blur"},
        "augment=none": {"augment": "none"}, "augment=affine": {"augment": "affine"}, "augment=mix": {"augment": "mix"},
        "aggregate=False": {"aggregate": False},
        "kernel=linear": {"kernel": "linear"}, "kernel=none": {"kernel": "none"},
        **{k: {"_authorized": v} for k, v in MR.items()},
    }
    results: dict[str, dict] = {}
    reference = reference_embeddings(pool, crops)
    clean = acc_decisions(pool, x, proto, thresholds, reference)
    clean_noisy = acc_decisions(pool, (x + server_noise).clamp(0, 1), proto, thresholds, reference)
    x_tilde = {}
    resumed: list[str] = []
    # the slow part (every setting's PMT run) is saved, so a crash in a later section does not lose it
    from facelab.cache import cache_dir

    from .provenance import inputs_digest

    stage = cache_dir() / "benchmarks" / f"pmt-stage1-{'fast' if fast else 'full'}-{n_probes}-{steps}.pt"
    inputs = inputs_digest("pmt")  # work saved by other code or data is never resumed
    if stage.exists():
        saved = torch.load(stage, weights_only=False)
        if saved.get("probes") == proto.probes and saved.get("inputs") == inputs:
            results = {k: v for k, v in saved["results"].items() if k in settings and saved["settings"][k] == settings[k]}
            x_tilde = {k: saved["x_tilde"][k] for k in results}
            print(f"  resumed {len(results)} settings from {stage}", flush=True)
    resumed = list(results)
    for name, params in settings.items():
        if name in results:
            continue
        params = dict(params)
        auth_names = params.pop("_authorized", [AUTHORIZED])
        t = time.perf_counter()
        xt = obfuscate(x, [by[n] for n in auth_names], steps=steps, seed=0, monitor_every=steps, **params)
        secs = time.perf_counter() - t
        x_tilde[name] = xt
        results[name] = {
            "authorized": auth_names, "params": params, "seconds": secs,
            "decisions": acc_decisions(pool, xt, proto, thresholds, reference),
            "noisy_decisions": acc_decisions(pool, (xt + server_noise).clamp(0, 1), proto, thresholds, reference),
            "ssim": ssim(xt, x).tolist(),
        }
        d = results[name]["decisions"]
        print(f"  {name}: {secs:.0f}s, acc " + ", ".join(f"{n} {d[n].mean():.2f}" for n in d), flush=True)
        stage.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"inputs": inputs, "probes": proto.probes, "settings": settings, "results": results, "x_tilde": x_tilde},
                   str(stage) + ".tmp")
        os.replace(str(stage) + ".tmp", stage)

    def unauth_of(name):
        auth = results[name]["authorized"]
        return [n for n in by if n not in auth]

    rows = []  # (claim, comparison, numbers, verdict)

    # (a) Table 3 and (b) Tables 4-5: unauthorized acc, default vs each alternative
    for claim, others in (("(a) init: noise lowest unauthorized acc", ["init=shuffle", "init=blur"]),
                          ("(b) augment=noise lowers unauthorized acc", ["augment=none", "augment=affine", "augment=mix"]),
                          ("(b) layer aggregation lowers unauthorized acc", ["aggregate=False"]),
                          ("(b) Gaussian kernel lowers unauthorized acc", ["kernel=linear", "kernel=none"])):
        names = unauth_of("default")
        for other in others:
            dec = paired_decisions(_pool_decisions(results["default"]["decisions"], names),
                                   _pool_decisions(results[other]["decisions"], names))
            auth = paired_decisions(results["default"]["decisions"][AUTHORIZED], results[other]["decisions"][AUTHORIZED])
            v = verdict(dec["b"] - dec["a"], p=dec["p"])
            if auth["a"] < auth["b"] and auth["p"] < 0.05:
                v += "; but authorized acc is significantly lower too, so not at comparable authorized acc"
            rows.append((claim, f"default vs {other}", f"unauthorized acc {_fmt_dec(dec)}; authorized acc {_fmt_dec(auth)}", v))
    # (b) robustness motive of T: authorized acc under server noise σ = 0.1
    for other in ("augment=none", "augment=affine", "augment=mix"):
        dec = paired_decisions(results["default"]["noisy_decisions"][AUTHORIZED], results[other]["noisy_decisions"][AUTHORIZED])
        rows.append(("(b) augment=noise keeps authorized acc under server noise σ=0.1", f"default vs {other}",
                     f"authorized acc {_fmt_dec(dec)}", verdict(dec["a"] - dec["b"], p=dec["p"])))

    # (d) authorized high, unauthorized falls, single and MR-PMT
    for name in ("default", *MR):
        for a in results[name]["authorized"]:
            dec = paired_decisions(results[name]["decisions"][a], clean[a])
            rows.append(("(d) authorized acc stays high", f"{name}: {a} PMT vs clean",
                         f"acc {_fmt_dec(dec)}",
                         "reversed: significant drop" if dec["a"] < dec["b"] and dec["p"] < 0.05 else
                         ("holds (no significant drop, acc ≥ 0.8)" if dec["a"] >= 0.8 else "no significant drop, but acc < 0.8")))
        names = unauth_of(name)
        dec = paired_decisions(_pool_decisions(results[name]["decisions"], names), _pool_decisions(clean, names))
        rows.append(("(d) unauthorized acc falls", f"{name}: {', '.join(names)} PMT vs clean",
                     f"acc {_fmt_dec(dec)}", verdict(dec["b"] - dec["a"], p=dec["p"])))

    # (c) Table 6: reconstructions from clean vs PMT features
    auth = by[AUTHORIZED]
    shallow = auth.shallow(5)
    xt = x_tilde["default"]
    with torch.no_grad():
        z, z_t = shallow(x), shallow(xt)
        perm = torch.randperm(z.numel() // z.shape[0], generator=gen)
        d = (z_t - z).flatten(1)
        z_rand = z + d[:, perm].view_as(z)  # the paper's "random noise" row: PMT's change, shuffled
        e_x = auth(x)
    recon = {}

    def recon_metrics(img, ref, e_ref):
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(auth(img), e_ref, dim=-1)
        return {"ssim": ssim(img, ref).tolist(), "psnr": psnr(img, ref).tolist(), "cos": cos.tolist(),
                "srra": (auth.similarity(auth(img), e_ref) > thresholds[AUTHORIZED]).float().tolist()}

    t = time.perf_counter()
    for cond, feats in (("clean", z), ("pmt", z_t), ("random", z_rand)):
        img = _steps.run(white_box_reconstruction(feats, shallow, steps=wb_steps, seed=0)).x
        recon[f"white/{cond}"] = recon_metrics(img, x, e_x)
    wb_seconds = time.perf_counter() - t
    print(f"  white-box reconstructions: {wb_seconds:.0f}s", flush=True)

    frames = R.video_frames(24)
    train_faces = torch.cat([crops[proto.recon_train], frames])
    data_note = (f"offline set minus the {len(proto.recon_test)} test identities ({len(proto.recon_train)} faces) "
                 f"+ {len(frames)} extra video frames")
    command = "python -m benchmarks pmt" + (" (FACELAB_FAST=1)" if fast else "")
    # refresh: trained (and cached for the notebook) in every run, so the training time below is this run's
    net, prov = R.load_or_train(shallow, train_faces, data=data_note, iterations=rf_iterations, seed=0,
                                command=command, progress=False, refresh=True)
    test = proto.recon_test
    with torch.no_grad():
        for cond, feats in (("clean", z), ("pmt", z_t), ("random", z_rand)):
            recon[f"black/{cond}"] = recon_metrics(net(feats[test]), x[test], e_x[test])
    for box in ("white", "black"):
        for metric in ("ssim", "psnr"):
            s = paired_summary(recon[f"{box}/clean"][metric], recon[f"{box}/pmt"][metric])
            rows.append((f"(c) {box}-box: {metric.upper()} to the original lower from PMT features",
                         "clean features vs PMT features", _fmt_sum(s, 2 if metric == "psnr" else 3),
                         verdict(s["diff"], p=s["p"])))
        s = paired_summary(recon[f"{box}/pmt"]["cos"], recon[f"{box}/random"]["cos"])
        rows.append((f"(c) {box}-box: COS stays high (PMT above the random-noise features)",
                     "PMT features vs random noise of PMT's amplitude", _fmt_sum(s), verdict(s["diff"], p=s["p"])))

    # (e) Table 8: attributes, PMT vs x + N(0, 0.3²)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    cs_pmt, cs_noise = attribute_cossim(x, xt), attribute_cossim(x, noisy)
    for attr in cs_pmt:
        s = paired_summary(cs_pmt[attr].tolist(), cs_noise[attr].tolist())
        lower_better = attr != "age"
        rows.append((f"(e) attribute {'CosSim lower' if lower_better else 'age difference (years) higher'} for PMT(x)",
                     f"{attr}: PMT(x) vs x + N(0, 0.3²)", _fmt_sum(s, 2 if attr == "age" else 3),
                     verdict(-s["diff"] if lower_better else s["diff"], p=s["p"])))
    up_pmt = utility_privacy(auth, x, xt, sigma=0.1, kappa=thresholds[AUTHORIZED], samples=2 if fast else 4)
    up_orig = utility_privacy(auth, x, x, sigma=0.1, kappa=thresholds[AUTHORIZED], samples=2 if fast else 4)
    s_up = paired_summary(up_pmt.tolist(), up_orig.tolist())

    # timings
    one = crops[proto.probes[:1]]
    reps = 1 if fast else 3
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        _steps.run(pmt(one, auth, steps=one_face_steps))
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    _steps.run(R.train_recface(shallow, train_faces, iterations=rf_fast_iterations, seed=1))
    rf_fast = time.perf_counter() - t
    total = time.perf_counter() - t_start

    lines = [
        "# PMT: the paper's claims on facelab's pool, and timings", "",
        f"Command: `{command} --threads {args.threads}`  ",
        f"Machine: {machine_line(args.threads)}; load average (1 min) at the start {load_start:.1f}, "
        f"at the end {os.getloadavg()[0]:.1f}" + (" (a shared machine: other jobs ran alongside; timings are upper bounds)"
                                                  if max(load_start, os.getloadavg()[0]) > args.threads + 0.5 else "") + "  ",
        f"Total run time: {total / 60:.1f} min" + (f" (settings {', '.join(resumed)} were resumed from an interrupted "
                                                   "run with the same sizes; their seconds are from that run)" if resumed else ""), "",
        "## Data and settings", "",
        f"- Offline set ({len(ds)} aligned 112-px faces, {len(ds.identities)} identities). {proto.describe(ds.labels)}",
        f"- Pairs of one probe share its x̃ and are correlated; the two video subjects' photos are near-duplicates.",
        f"- Authorized model **{AUTHORIZED}** (shallow model = its first 5 layers); unauthorized: {', '.join(unauth)} "
        f"(faceres and faceres-deep share one graph: correlated). MR-PMT: " +
        "; ".join(f"{k} = {' + '.join(v)}" for k, v in MR.items()) + ".",
        f"- κ = each model's calibrated threshold at FAR {FAR} ({', '.join(f'{k} {v:+.3f}' for k, v in thresholds.items())}); "
        "Eq. 10's strict acc. Chance level of acc is not 50 %: on clean images it is the verification accuracy of the pairs.",
        "- Settings run: " + ", ".join(settings) + ".",
        f"- PMT: {steps} steps per setting, α 4/255 → 0.25/255, "
        "seed 0; default = noise init, noise augmentation (σ 0.1), aggregation, Gaussian kernel k = 1.",
        f"- White-box reconstruction: {wb_steps} sign steps, λ_TV = 5, β = 2, on all probes. Black-box: RecFace "
        f"({rf_iterations} iterations, batch 8) trained on {data_note}; evaluated on the {len(test)} held-out probes.",
        "- Tests: exact two-sided sign tests on paired outcomes (per pair and model for acc, per image for "
        "continuous values) and 95 % percentile-bootstrap CIs of the mean paired difference. "
        "\"holds\" needs p < 0.05 in the claimed direction.", "",
        "## Claims", "",
        "| claim | comparison | numbers (a vs b) | verdict |", "|---|---|---|---|",
    ]
    lines += [f"| {c} | {cmp} | {num} | {v} |" for c, cmp, num, v in rows]
    lines += ["", "## Strict accuracy (Eq. 10) per setting and model", "",
              "| setting | " + " | ".join(by) + " | authorized under server noise σ=0.1 | SSIM(x̃, x) | seconds (batch) |",
              "|---|" + "---|" * (len(by) + 3)]
    lines.append("| clean x | " + " | ".join(f"{clean[n].mean():.3f}" for n in by) +
                 f" | {clean_noisy[AUTHORIZED].mean():.3f} | 1.000 | — |")
    for name, r in results.items():
        cells = [f"**{r['decisions'][n].mean():.3f}**" if n in r["authorized"] else f"{r['decisions'][n].mean():.3f}" for n in by]
        noisy_auth = np.mean([r["noisy_decisions"][a].mean() for a in r["authorized"]])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {noisy_auth:.3f} | {np.mean(r['ssim']):.3f} | {r['seconds']:.0f} |")
    lines += ["", "Bold: authorized model(s). Each cell: mean over "
              f"{len(proto.pair_y)} pairs.", "",
              "## Reconstructions (Table 6)", "",
              "| attack | features | SSIM ↓ | PSNR ↓ | COS ↑ | SRRA ↑ | n |", "|---|---|---|---|---|---|---|"]
    for key, r in recon.items():
        box, cond = key.split("/")
        lines.append(f"| {box}-box | {cond} | {np.mean(r['ssim']):.3f} | {np.mean(r['psnr']):.2f} | {np.mean(r['cos']):.3f} "
                     f"| {np.mean(r['srra']):.2f} | {len(r['ssim'])} |")
    lines += ["", "\"random\": clean features plus PMT's feature change with its entries shuffled (the paper's "
              "same-amplitude noise row). COS: cosine of the authorized model's embeddings of the reconstruction and "
              "the original; SRRA: share above its threshold.", "",
              "## Attributes (Table 8) and UP (Eq. 9)", "",
              "| attribute | PMT(x) | x + N(0, 0.3²) |", "|---|---|---|"]
    for attr in cs_pmt:
        lines.append(f"| {attr} {'(abs. difference, years)' if attr == 'age' else '(CosSim)'} | {cs_pmt[attr].mean():.3f} | {cs_noise[attr].mean():.3f} |")
    lines += ["", f"UP(σ = 0.1, κ = {thresholds[AUTHORIZED]:.3f}) on {AUTHORIZED}, privacy term = 1 − attribute CosSim "
              f"(no LPIPS offline): PMT(x) vs original x: {_fmt_sum(s_up)}.", "",
              "## Timings", "",
              "| what | time | n |", "|---|---|---|",
              f"| one face, `pmt(x, mobileface)` with defaults ({one_face_steps} steps) | {statistics.median(times):.1f} s median "
              f"({', '.join(f'{t:.1f}' for t in times)}) | {reps} runs |",
              f"| RecFace training, {prov['iterations']} iterations (teaching scale) | {prov['train_seconds']:.0f} s "
              f"(final loss {prov['final_loss']:.2f}) | 1 |",
              f"| RecFace training, {rf_fast_iterations} iterations (fast mode) | {rf_fast:.0f} s | 1 |",
              f"| white-box reconstruction, {wb_steps} steps × 3 feature sets, batch {len(x)} | {wb_seconds:.0f} s | 1 |", "",
              "Targets of the issue: ≤ 15 s per face, ≤ 10 min RecFace training, < 1 min in fast mode, on 2 idle cores."]
    text = "\n".join(lines) + "\n"
    out = args.out / ("pmt_fast.md" if fast else "pmt.md")
    out.write_text(text)
    raw = {"protocol": proto.__dict__, "labels": [ds.labels[p] for p in proto.probes], "thresholds": thresholds,
           "clean": {k: v.tolist() for k, v in clean.items()},
           "settings": {k: {"authorized": r["authorized"], "params": r["params"], "seconds": r["seconds"], "ssim": r["ssim"],
                            "decisions": {m: v.tolist() for m, v in r["decisions"].items()},
                            "noisy_decisions": {m: v.tolist() for m, v in r["noisy_decisions"].items()}}
                        for k, r in results.items()},
           "reconstruction": recon, "attributes": {"pmt": {k: v.tolist() for k, v in cs_pmt.items()},
                                                   "noise": {k: v.tolist() for k, v in cs_noise.items()}},
           "up": {"pmt": up_pmt.tolist(), "original": up_orig.tolist()}, "recface": prov,
           "timings": {"pmt_one_face": times, "recface_fast": rf_fast, "white_box": wb_seconds}}
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    print(text)


if __name__ == "__main__":  # pragma: no cover
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    sys.exit(main(p.parse_args()))
