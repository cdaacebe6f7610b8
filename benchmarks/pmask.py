"""PMask (Chow et al., PoPETs 2024): do §6's claims hold on facelab's pool?

Writes ``pmask.json`` (every per-probe outcome and everything the page
shows) and ``pmask.md``, its rendering by :mod:`facelab.experiments.pmask_report`,
in ``args.out``: the protocol of :mod:`facelab.experiments.pmask` on the
offline set, every pool model as an intruder, with the claims of
:mod:`facelab.experiments.pmask_claims`:

(a) PMask vs the Fawkes-style cloak (same team, same DSSIM budget) on
    black-box models: exact sign (McNemar) test on paired probe × model outcomes;
(b) SSIM, iterations and seconds per face of PMask vs Fawkes and TIP-IM
    (paired sign tests over the masked faces);
(c) the most focal-diverse team vs the median-ranked team of the same size,
    on the models in neither team;
(d) δ: protection, SSIM and time for a small and a large δ (paired tests);

and the seconds-per-face table.  Each claim is measured once per seed
(``--seeds``, default 0 1 2): a seed re-draws the gallery/probe split and is
handed to every method's randomness (PMask's random start, the Fawkes-style
cloak's target pick and start, TIP-IM's generator); the face set, the models,
the teams (ranked once, on data no seed touches) and the settings stay fixed.
Every seed keeps its own test and verdict; the page shows each seed's effect,
their spread and in how many seeds each verdict holds (seeds are not pooled),
with the first seed in detail.  The file is rewritten after every stage, so
a run cut short still leaves what it measured.  ``--data`` (``offline``,
``lfw`` or ``folder:PATH``): the identity set.  ``FACELAB_FAST=1``: a smoke
run (2 identities, few steps, every seed), not a result.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import torch

from facelab.evaluation import embed

from .seeds import chosen as chosen_seeds
from .seeds import flag as seeds_flag
from .timing import add_device_option, device_flag, device_of, machine_line, synchronize

DELTAS = (0.5, 1.0)  # (d) compares these two; δ = 1.0 is the main run
MAX_STEPS = 200  # facelab.methods.pmask's default cap (the paper sets none; Fawkes' 'high' mode runs 150)


def _load_avg() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _busy(load: str) -> bool:
    """More runnable work than cores when the run started or now: the machine was shared."""
    try:
        return max(float(load.split("/")[0]), os.getloadavg()[0]) > (os.cpu_count() or 1) + 0.5
    except (ValueError, OSError):
        return False


def main(args) -> str:
    from facelab.experiments import pmask as E
    from facelab.experiments import pmask_claims as C
    from facelab.experiments.pmask_report import render
    from facelab.faces import face_set
    from facelab.metrics.diversity import rank_teams
    from facelab.models import available, load

    threads = getattr(args, "threads", 1) or 1
    torch.set_num_threads(threads)
    device = device_of(args)
    fast = os.environ.get("FACELAB_FAST") == "1"
    seeds = chosen_seeds(getattr(args, "seeds", None))
    t_start = time.time()
    load_start = _load_avg()
    data = getattr(args, "data", None) or "offline"
    fs = face_set(data, 112, log=lambda *a: None)
    crops, labels = fs.crops.to(device), fs.labels
    pool = [load(n, device) for n in available()]
    names = [m.name for m in pool]
    by_name = dict(zip(names, pool))
    settings = {"omega": 0.017, "deltas": list(DELTAS), "steps": 6 if fast else MAX_STEPS, "lr": 0.005,
                "init_noise": 1 / 255, "fawkes_steps": 6 if fast else 150, "tip_steps": 4 if fast else 50,
                "eps": 12 / 255, "n_targets": 3}

    # focal diversity on the validation pairs of the whole set: no seed touches it, so the teams are the same in
    # every seed
    fail, n_pairs = E.validation_failures(pool, crops, labels)
    ranking = rank_teams(fail, 2, names)
    cost = {m.name: _step_cost(m, crops[:1]) for m in pool}
    best = ranking[0][1]
    tied = [t for t, d in ranking if d == best]
    top = min(tied, key=lambda t: sum(cost[n] for n in t))  # ties at the top: the cheapest team
    median = ranking[len(ranking) // 2][0]
    team = [by_name[n] for n in top]

    out = args.out
    command = (f"python -m benchmarks pmask --threads {threads}" + ("" if data == "offline" else f" --data {data}")
               + seeds_flag(seeds)
               + device_flag(device))
    R: dict = {
        "schema": E.SCHEMA, "fast": fast, "threads": threads, "command": command,
        "machine": machine_line(threads, device), "load_start": load_start, "data": fs.name, "models": names,
        "team": list(top), "median_team": list(median), "settings": settings,
        "diversity": {"ranking": [[list(t), d] for t, d in ranking], "failures": fail.sum(1).astype(int).tolist(),
                      "n_pairs": n_pairs, "tied": len(tied), "best": best},
        # per seed (the key is the seed as a string): its split, clean outcomes, runs and wall time
        "seeds": seeds, "per seed": {},
    }

    def write():
        R["load_end"] = _load_avg()
        R["busy"] = _busy(load_start)
        R["elapsed"] = time.time() - t_start
        R["claims over seeds"] = C.claims(R)["over seeds"]  # what the page leads with (it recomputes it)
        stem = "pmask_fast" if fast else "pmask"  # a smoke run never overwrites the committed results
        (out / f"{stem}.json").write_text(json.dumps(R, indent=1, ensure_ascii=False))
        # the page from the JSON as saved, so a re-render of it gives the same bytes
        text = render(json.loads((out / f"{stem}.json").read_text()))
        (out / f"{stem}.md").write_text(text)
        return text

    write()
    S = settings
    for seed in seeds:
        print(f"-- seed {seed}", flush=True)
        t_seed = time.time()
        # the seed draws the split and every method's randomness (pmask's start, Fawkes' target pick and start,
        # tip_im's generator); see facelab.experiments.pmask_report.randomness_text
        split = E.make_split(labels, max_gallery=1, max_probes=2, seed=seed,
                             identities=_smoke_identities(labels) if fast else None)
        gal_emb = {m.name: embed(m, crops[split.gallery], batch=E.EMBED_BATCH) for m in pool}
        clean = E.identify(split, crops, pool, None, gal_emb)
        entry = {"split": split.describe(), "probes": split.probes, "faces": split.faces, "clean": _j(clean),
                 "runs": {}, "elapsed": time.time() - t_seed}
        R["per seed"][str(seed)] = entry
        write()

        def run(key, method, team_models, **kw):
            r = E.protect(split, crops, method, team_models, log=print, gallery_emb=gal_emb, seed=seed, **kw)
            E.evaluate(r, split, crops, pool, gal_emb)
            entry["runs"][key] = {"outcomes": _j(r.outcomes), "ssim": r.ssim.tolist(), "psnr": r.psnr.tolist(),
                                  "iterations": r.iterations, "seconds": r.seconds, "converged": r.converged}
            entry["elapsed"] = time.time() - t_seed
            write()

        pm = dict(max_steps=S["steps"], lr=S["lr"], init_noise=S["init_noise"])
        run("pmask", "pmask", team, delta=1.0, **pm)
        run("fawkes", "fawkes", team, max_step=S["fawkes_steps"])
        run("tip_im", "tip_im", [team[0]], steps=S["tip_steps"], eps=S["eps"], n_targets=S["n_targets"])
        run(f"pmask δ={DELTAS[0]:g}", "pmask", team, delta=DELTAS[0], **pm)
        run("pmask median team", "pmask", [by_name[n] for n in median], delta=1.0, **pm)
    return write()


def _smoke_identities(labels) -> list[str]:
    """The smoke run's two protected people: Obama and Cage on the offline set, else the first two with two photos."""
    names = [n for n in dict.fromkeys(labels) if list(labels).count(n) >= 2]
    return [n for n in ("obama", "cage") if n in names] or names[:2]


def _step_cost(model, x, repeats: int = 3) -> float:
    """Minimum seconds of one forward + backward of one face (to break ties between equally diverse teams)."""
    best = float("inf")
    for _ in range(repeats):
        xa = x.clone().requires_grad_(True)
        synchronize(xa.device)
        t = time.perf_counter()
        model(xa).sum().backward()
        synchronize(xa.device)
        best = min(best, time.perf_counter() - t)
    return best


def _j(outcomes: dict) -> dict:
    return {k: np.asarray(v).astype(int).tolist() for k, v in outcomes.items()}


def render_main(args) -> str:
    """Re-write ``pmask.md`` from ``pmask.json`` without re-running the protection
    (``python -m benchmarks.pmask render``): after a change to the report's wording."""
    from facelab.experiments.pmask import load_results
    from facelab.experiments.pmask_report import render

    R = load_results(args.out / "pmask.json")
    if R is None:
        raise SystemExit(f"{args.out / 'pmask.json'} is missing or of an older schema: run python -m benchmarks pmask")
    text = render(R)
    (args.out / "pmask.md").write_text(text)
    return text


if __name__ == "__main__":
    import argparse
    import sys
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m benchmarks.pmask")
    p.add_argument("part", choices=["all", "render"], nargs="?", default="all")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="offline", help="offline (default), lfw or folder:PATH")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="run the protocol once per seed (the split and every method's randomness); default 0 1 2")
    add_device_option(p)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    {"render": render_main, "all": main}[a.part](a)
    from .provenance import after_run
    after_run("pmask", a, part=a.part)  # record in results/provenance.json (a render keeps the run's record)
    sys.exit(0)
