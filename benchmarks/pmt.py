"""PMT (Wang et al., "Facial Data Minimization"): the paper's claims on facelab's pool, and timings.

Writes ``pmt.json`` (every raw decision and per-image value, with the run's
settings, command and machine) and ``pmt.md`` (claims with verdicts,
timings).  Protocol: :mod:`facelab.experiments.pmt` on the offline set;
authorized model mobileface (the paper's reconstruction model), every other
pool model unauthorized; κ = each model's calibrated threshold at FAR 0.01.

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
from facelab.experiments.pmt_report import render
from facelab.faces import face_set
from facelab.methods import recface as R
from facelab.methods.pmt import pmt
from facelab.methods.reconstruction import white_box_reconstruction
from facelab.metrics.privacy import attribute_cossim, utility_privacy
from facelab.metrics.quality import psnr, ssim
from facelab.models import available, load
from facelab import steps as _steps

from .timing import add_device_option, device_flag, device_of, machine_line, synchronize

AUTHORIZED = "mobileface"
MR = {"MR-PMT 2": ["mobileface", "mobilefacenet"], "MR-PMT 3": ["mobileface", "mobilefacenet", "faceapi-resnet"]}
FAR = 0.01
SERVER_NOISE = 0.1
SHALLOW_LAYERS = 5  # the paper's shallow model
UP_SIGMA = 0.1


def main(args) -> None:
    fast = os.environ.get("FACELAB_FAST") == "1"
    torch.set_num_threads(args.threads)
    device = device_of(args)
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    data = getattr(args, "data", None) or "offline"
    ds = face_set(data, 112)
    n_probes, steps = (3, 4) if fast else (8, 200)  # 200: pmt()'s default
    wb_steps = 3 if fast else 40
    rf_iterations = 5 if fast else 200
    rf_fast_iterations = 5 if fast else 60
    one_face_steps = 10 if fast else 200
    proto = make_protocol(ds.labels, ds.sources, n_probes=n_probes)
    crops = ds.crops.to(device)
    x = crops[proto.probes]
    pool = [load(n, device) for n in available()]
    by = {m.name: m for m in pool}
    thresholds = {m.name: m.threshold(FAR) for m in pool}
    gen = torch.Generator().manual_seed(1)
    server_noise = SERVER_NOISE * torch.randn(x.shape, generator=gen).to(device)
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
    from facelab.cache import atomic_open, cache_dir

    from .provenance import inputs_digest

    stage = cache_dir() / "benchmarks" / (f"pmt-stage1-{'fast' if fast else 'full'}-{n_probes}-{steps}"
                                          + ("" if device.type == "cpu" else f"-{device.type}") + ".pt")
    inputs = inputs_digest("pmt")  # work saved by other code or data is never resumed
    if stage.exists():
        saved = torch.load(stage, weights_only=False, map_location=device)
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
            torch.save({"inputs": inputs, "probes": proto.probes, "settings": settings, "results": results,
                        "x_tilde": x_tilde}, fh)

    results = {k: results[k] for k in settings}  # the settings' order, also after a resume

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
        img = _steps.run(white_box_reconstruction(feats, shallow, steps=wb_steps, seed=0)).x
        recon[f"white/{cond}"] = recon_metrics(img, x, e_x)
    synchronize(device)
    wb_seconds = time.perf_counter() - t
    print(f"  white-box reconstructions: {wb_seconds:.0f}s", flush=True)

    train_faces, data_note = recface_data(ds, proto)
    train_faces = train_faces.to(device)
    command = "python -m benchmarks pmt" + ("" if data == "offline" else f" --data {data}") + (
        " (FACELAB_FAST=1)" if fast else "")
    # refresh: trained (and cached for the notebook) in every run, so the training time below is this run's
    net, prov = R.load_or_train(shallow, train_faces, data=data_note, iterations=rf_iterations, seed=0,
                                command=command, progress=False, refresh=True)
    test = proto.recon_test
    with torch.no_grad():
        for cond, feats in (("clean", z), ("pmt", z_t), ("random", z_rand)):
            recon[f"black/{cond}"] = recon_metrics(net(feats[test]), x[test], e_x[test])

    # (e) Table 8: attributes, PMT vs x + N(0, 0.3²); UP (Eq. 9)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen).to(device)).clamp(0, 1)
    cs_pmt, cs_noise = attribute_cossim(x, xt), attribute_cossim(x, noisy)
    up_samples = 2 if fast else 4
    up_pmt = utility_privacy(auth, x, xt, sigma=UP_SIGMA, kappa=thresholds[AUTHORIZED], samples=up_samples)
    up_orig = utility_privacy(auth, x, x, sigma=UP_SIGMA, kappa=thresholds[AUTHORIZED], samples=up_samples)

    # timings
    one = crops[proto.probes[:1]]
    reps = 1 if fast else 3
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        _steps.run(pmt(one, auth, steps=one_face_steps))
        synchronize(device)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    _steps.run(R.train_recface(shallow, train_faces, iterations=rf_fast_iterations, seed=1))
    synchronize(device)
    rf_fast = time.perf_counter() - t
    total = time.perf_counter() - t_start

    raw = {"schema": SCHEMA, "command": f"{command} --threads {args.threads}" + device_flag(device),
           "machine": machine_line(args.threads, device),
           "threads": args.threads, "load": {"start": load_start, "end": os.getloadavg()[0]}, "minutes": total / 60,
           "resumed": resumed, "fast": fast,
           "data": {"faces": len(ds), "identities": len(ds.identities), "name": ds.name, "arg": data},
           "authorized": AUTHORIZED, "mr": MR, "far": FAR, "server_noise": SERVER_NOISE, "models": list(by),
           "params": {"steps": steps, "shallow_layers": SHALLOW_LAYERS, "white_box_steps": wb_steps,
                      "recface_iterations": rf_iterations, "recface_fast_iterations": rf_fast_iterations,
                      "recface_data": data_note, "one_face_steps": one_face_steps},
           "protocol": proto.__dict__, "labels": [ds.labels[p] for p in proto.probes], "thresholds": thresholds,
           "clean": {k: v.tolist() for k, v in clean.items()},
           "clean_noisy": {k: v.tolist() for k, v in clean_noisy.items()},
           "settings": {k: {"authorized": r["authorized"], "params": r["params"], "seconds": r["seconds"], "ssim": r["ssim"],
                            "decisions": {m: v.tolist() for m, v in r["decisions"].items()},
                            "noisy_decisions": {m: v.tolist() for m, v in r["noisy_decisions"].items()}}
                        for k, r in results.items()},
           "reconstruction": recon, "attributes": {"pmt": {k: v.tolist() for k, v in cs_pmt.items()},
                                                   "noise": {k: v.tolist() for k, v in cs_noise.items()}},
           "up": {"sigma": UP_SIGMA, "samples": up_samples, "pmt": up_pmt.tolist(), "original": up_orig.tolist()},
           "recface": prov,
           "timings": {"pmt_one_face": times, "recface_fast": rf_fast, "white_box": wb_seconds}}
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
    add_device_option(p)
    sys.exit(main(p.parse_args()))
