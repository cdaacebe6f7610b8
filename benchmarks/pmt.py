"""PMT (Wang et al., "Facial Data Minimization"): the paper's claims on facelab's pool, over seeds, and timings.

Writes ``pmt.json`` (every seed's raw decisions and per-image values, with the
run's settings, command and machine) and ``pmt.md`` (claims with verdicts per
seed and over seeds, the first seed's details, timings).  Protocol:
:mod:`facelab.experiments.pmt` on the offline set (or ``--data``); authorized
model mobileface (the paper's reconstruction model), every other pool model
unauthorized; κ = each model's calibrated threshold at FAR 0.01.

The protocol runs once per seed (``--seeds``, default 0 1 2; :func:`run_seed`).
A seed s drives the split (``make_protocol(seed=s)``), PMT's randomness
(``obfuscate(seed=s)``: noise start, augmentation draws) and the evaluation's
noise (server noise, the "random" features' shuffle and the N(0, 0.3²)
baseline from a generator seeded s + 1, so seed 0 draws what the single-seed
benchmark drew; UP's samples with seed s).  The attackers' own randomness
stays at seed 0 (white-box start jitter, RecFace's training), though RecFace
is retrained per seed on that seed's non-test identities.  Each claim keeps
one verdict per seed; the seeds are not pooled.  The timings are measured once,
after the seeds.

Claims: (a) Table 3 — noise initialisation gives the lowest unauthorized acc;
(b) Tables 4–5 — noise augmentation, layer aggregation and the Gaussian
kernel lower unauthorized acc; (c) Table 6 — reconstructions from PMT
features are far from the original (SSIM/PSNR) compared with clean features,
white and black box, while COS stays high; (d) Table 7/9 — authorized acc
stays high while unauthorized acc falls, also for MR-PMT with 2 and 3
authorized models; (e) Table 8 — attribute CosSim falls (against the paper's
x + N(0, 0.3²) baseline).  ``FACELAB_FAST=1``: a smoke run (3 probes, few steps)
that writes ``pmt_fast.md`` / ``pmt_fast.json`` instead.

This module only runs the protocol and saves the results dict
(:data:`facelab.experiments.pmt.SCHEMA`: everything the page shows); the
verdicts are computed in :mod:`facelab.experiments.pmt_claims` and the page
is :func:`facelab.experiments.pmt_report.render` of the saved JSON.
"""
from __future__ import annotations

import json
import os
import sys
import time

import torch

from facelab.experiments.pmt import (SCHEMA, acc_decisions, make_protocol, obfuscate, recface_data,
                                     reference_embeddings)
from facelab.experiments.pmt_claims import claims_over_seeds
from facelab.experiments.pmt_report import render
from facelab.faces import face_set
from facelab.methods import recface as R
from facelab.methods.pmt import pmt
from facelab.methods.reconstruction import white_box_reconstruction
from facelab.metrics.privacy import attribute_cossim, utility_privacy
from facelab.metrics.quality import psnr, ssim
from facelab.models import available, load
from facelab import steps as _steps

from .seeds import chosen as chosen_seeds
from .seeds import flag as seeds_flag
from .timing import add_device_option, device_flag, device_of, machine_line, synchronize

AUTHORIZED = "mobileface"
MR = {"MR-PMT 2": ["mobileface", "mobilefacenet"], "MR-PMT 3": ["mobileface", "mobilefacenet", "faceapi-resnet"]}
FAR = 0.01
SERVER_NOISE = 0.1
SHALLOW_LAYERS = 5  # the paper's shallow model
UP_SIGMA = 0.1


SETTINGS = {
    "default": {},
    "init=shuffle": {"init": "shuffle"}, "init=blur": {"init": "blur"},
    "augment=none": {"augment": "none"}, "augment=affine": {"augment": "affine"}, "augment=mix": {"augment": "mix"},
    "aggregate=False": {"aggregate": False},
    "kernel=linear": {"kernel": "linear"}, "kernel=none": {"kernel": "none"},
    **{k: {"_authorized": v} for k, v in MR.items()},
}


def run_seed(seed: int, *, ds, crops, pool, thresholds, reference, n_probes: int, steps: int, wb_steps: int,
             rf_iterations: int, up_samples: int, fast: bool, data: str, command: str, device) -> dict:
    """One seed's protocol: the split, every setting's PMT run, the reconstructions, RecFace, the
    attributes and UP.  ``seed`` drives the split (``make_protocol``), PMT's randomness (``obfuscate``)
    and the evaluation's noise; the attackers' own randomness stays at seed 0 (see the page's text).
    ``data``: the face set's argument (with the seed, it keys the work saved for a resume).  Returns the seed's
    record of the results dict, plus ``"_state"`` (tensors for the caller; not saved)."""
    t_seed = time.perf_counter()
    by = {m.name: m for m in pool}
    proto = make_protocol(ds.labels, ds.sources, n_probes=n_probes, seed=seed)
    x = crops[proto.probes]
    # the evaluation's noise (server noise, the shuffle of the "random" features, the N(0, 0.3²) baseline):
    # seed + 1 so that seed 0 draws what the single-seed benchmark drew
    gen = torch.Generator().manual_seed(seed + 1)
    server_noise = SERVER_NOISE * torch.randn(x.shape, generator=gen).to(device)
    print(f"-- seed {seed}: {proto.describe(ds.labels)} steps={steps}", flush=True)

    results: dict[str, dict] = {}
    clean = acc_decisions(pool, x, proto, thresholds, reference)
    clean_noisy = acc_decisions(pool, (x + server_noise).clamp(0, 1), proto, thresholds, reference)
    x_tilde = {}
    # the slow part (every setting's PMT run) is saved, so a crash in a later section does not lose it
    from facelab.cache import atomic_open, cache_dir

    from .provenance import inputs_digest

    stage = cache_dir() / "benchmarks" / (f"pmt-stage1-{'fast' if fast else 'full'}-{n_probes}-{steps}-seed{seed}"
                                          + ("" if device.type == "cpu" else f"-{device.type}") + ".pt")
    inputs = inputs_digest("pmt")  # work saved by other code or data is never resumed
    if stage.exists():
        saved = torch.load(stage, weights_only=False, map_location=device)
        if (saved.get("probes") == proto.probes and saved.get("inputs") == inputs and saved.get("seed") == seed
                and saved.get("data") == data):
            results = {k: v for k, v in saved["results"].items() if k in SETTINGS and saved["settings"][k] == SETTINGS[k]}
            x_tilde = {k: saved["x_tilde"][k] for k in results}
            print(f"  resumed {len(results)} settings from {stage}", flush=True)
    resumed = list(results)
    for name, params in SETTINGS.items():
        if name in results:
            continue
        params = dict(params)
        auth_names = params.pop("_authorized", [AUTHORIZED])
        t = time.perf_counter()
        xt = obfuscate(x, [by[n] for n in auth_names], steps=steps, seed=seed, monitor_every=steps, **params)
        synchronize(device)
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
        with atomic_open(stage) as fh:
            torch.save({"inputs": inputs, "seed": seed, "data": data, "probes": proto.probes, "settings": SETTINGS,
                        "results": results, "x_tilde": x_tilde}, fh)

    results = {k: results[k] for k in SETTINGS}  # the settings' order, also after a resume

    # (c) Table 6: reconstructions from clean vs PMT features
    auth = by[AUTHORIZED]
    shallow = auth.shallow(SHALLOW_LAYERS)
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
        # the attacker's start jitter stays at seed 0: a seed changes what is attacked, not the attacker
        img = _steps.run(white_box_reconstruction(feats, shallow, steps=wb_steps, seed=0)).x
        recon[f"white/{cond}"] = recon_metrics(img, x, e_x)
    synchronize(device)
    wb_seconds = time.perf_counter() - t
    print(f"  white-box reconstructions: {wb_seconds:.0f}s", flush=True)

    train_faces, data_note = recface_data(ds, proto)
    train_faces = train_faces.to(device)
    # refresh: trained (and cached for the notebook) in every run, so the training time below is this run's.
    # Trained once per seed on that seed's non-test identities (it must never see them), with its own
    # randomness at seed 0 (the attacker stays the same)
    net, prov = R.load_or_train(shallow, train_faces, data=data_note, iterations=rf_iterations, seed=0,
                                command=command, progress=False, refresh=True)
    test = proto.recon_test
    with torch.no_grad():
        for cond, feats in (("clean", z), ("pmt", z_t), ("random", z_rand)):
            recon[f"black/{cond}"] = recon_metrics(net(feats[test]), x[test], e_x[test])

    # (e) Table 8: attributes, PMT vs x + N(0, 0.3²); UP (Eq. 9)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen).to(device)).clamp(0, 1)
    cs_pmt, cs_noise = attribute_cossim(x, xt), attribute_cossim(x, noisy)
    up_pmt = utility_privacy(auth, x, xt, sigma=UP_SIGMA, kappa=thresholds[AUTHORIZED], samples=up_samples, seed=seed)
    up_orig = utility_privacy(auth, x, x, sigma=UP_SIGMA, kappa=thresholds[AUTHORIZED], samples=up_samples, seed=seed)
    minutes = (time.perf_counter() - t_seed) / 60
    print(f"  seed {seed}: {minutes:.1f} min", flush=True)

    return {"seed_minutes": minutes, "resumed": resumed, "protocol": proto.__dict__,
            "labels": [ds.labels[p] for p in proto.probes], "recface_data": data_note,
            "clean": {k: v.tolist() for k, v in clean.items()},
            "clean_noisy": {k: v.tolist() for k, v in clean_noisy.items()},
            "settings": {k: {"authorized": r["authorized"], "params": r["params"], "seconds": r["seconds"],
                             "ssim": r["ssim"], "decisions": {m: v.tolist() for m, v in r["decisions"].items()},
                             "noisy_decisions": {m: v.tolist() for m, v in r["noisy_decisions"].items()}}
                         for k, r in results.items()},
            "reconstruction": recon, "white_box_seconds": wb_seconds,
            "attributes": {"pmt": {k: v.tolist() for k, v in cs_pmt.items()},
                           "noise": {k: v.tolist() for k, v in cs_noise.items()}},
            "up": {"sigma": UP_SIGMA, "samples": up_samples, "pmt": up_pmt.tolist(), "original": up_orig.tolist()},
            "recface": prov, "_state": {"proto": proto, "shallow": shallow, "train_faces": train_faces}}


def main(args) -> None:
    fast = os.environ.get("FACELAB_FAST") == "1"
    torch.set_num_threads(args.threads)
    device = device_of(args)
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    data = getattr(args, "data", None) or "offline"
    seeds = chosen_seeds(getattr(args, "seeds", None))
    ds = face_set(data, 112)
    n_probes, steps = (3, 4) if fast else (8, 200)  # 200: pmt()'s default
    wb_steps = 3 if fast else 40
    rf_iterations = 5 if fast else 200
    rf_fast_iterations = 5 if fast else 60
    one_face_steps = 10 if fast else 200
    up_samples = 2 if fast else 4
    crops = ds.crops.to(device)
    pool = [load(n, device) for n in available()]
    by = {m.name: m for m in pool}
    thresholds = {m.name: m.threshold(FAR) for m in pool}
    reference = reference_embeddings(pool, crops)
    print(f"pmt benchmark: seeds {seeds}, {n_probes} probes, steps={steps}", flush=True)
    print(f"  loaded in {time.perf_counter() - t_start:.0f}s", flush=True)

    command = "python -m benchmarks pmt" + ("" if data == "offline" else f" --data {data}") + seeds_flag(seeds) + (
        " (FACELAB_FAST=1)" if fast else "")
    per_seed = {}
    for seed in seeds:
        per_seed[seed] = run_seed(seed, ds=ds, crops=crops, pool=pool, thresholds=thresholds, reference=reference,
                                  n_probes=n_probes, steps=steps, wb_steps=wb_steps, rf_iterations=rf_iterations,
                                  up_samples=up_samples, fast=fast, data=data, command=command, device=device)

    # timings: once per run (they do not depend on the seed), after the seeds
    auth = by[AUTHORIZED]
    first = per_seed[seeds[0]]["_state"]
    one = crops[first["proto"].probes[:1]]
    reps = 1 if fast else 3
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        _steps.run(pmt(one, auth, steps=one_face_steps))
        synchronize(device)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    _steps.run(R.train_recface(first["shallow"], first["train_faces"], iterations=rf_fast_iterations, seed=1))
    synchronize(device)
    rf_fast = time.perf_counter() - t
    total = time.perf_counter() - t_start

    raw = {"schema": SCHEMA, "command": f"{command} --threads {args.threads}" + device_flag(device),
           "machine": machine_line(args.threads, device),
           "threads": args.threads, "load": {"start": load_start, "end": os.getloadavg()[0]}, "minutes": total / 60,
           "fast": fast, "data": {"faces": len(ds), "identities": len(ds.identities), "name": ds.name, "arg": data},
           "authorized": AUTHORIZED, "mr": MR, "far": FAR, "server_noise": SERVER_NOISE, "models": list(by),
           "params": {"steps": steps, "shallow_layers": SHALLOW_LAYERS, "white_box_steps": wb_steps,
                      "recface_iterations": rf_iterations, "recface_fast_iterations": rf_fast_iterations,
                      "one_face_steps": one_face_steps},
           "thresholds": thresholds,
           "timings": {"pmt_one_face": times, "recface_fast": rf_fast},
           "seeds": seeds,
           # each seed's record (split, decisions, per-image values, RecFace); the page details the first seed
           "per seed": {str(s): {k: v for k, v in r.items() if k != "_state"} for s, r in per_seed.items()}}
    raw = json.loads(json.dumps(raw, default=str))  # JSON types (e.g. the stage's numbers), as the file holds them
    raw["claims over seeds"] = claims_over_seeds(raw)["over seeds"]
    stem = "pmt_fast" if fast else "pmt"
    saved = json.dumps(raw, indent=1, default=str) + "\n"
    text = render(json.loads(saved))  # the page is a function of the JSON alone
    (args.out / f"{stem}.json").write_text(saved)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":  # pragma: no cover
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--data", default="offline", help="offline (default), lfw or folder:PATH")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="run the protocol once per seed (the split, PMT's randomness, the evaluation's noise); "
                        "default 0 1 2")
    add_device_option(p)
    sys.exit(main(p.parse_args()))
