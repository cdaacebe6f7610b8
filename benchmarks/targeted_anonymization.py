"""Targeted Anonymization (Ding et al., 2023): do the paper's claims hold on our pool?

Writes ``targeted_anonymization.md`` and ``targeted_anonymization.json`` (in
``args.out``, default benchmarks/results/; ``*_fast`` names in the
``FACELAB_FAST=1`` smoke mode) with, per authorized model (the victim stays
fixed, the remaining pool models are the unseen targets, as in the paper's
§4.2):

* Fig. 1: authorized TAR and FAR over c, with (ori) — Formula 2's reference
  with th_old — and the clean photos; the contrast Eq. 4 vs (ori) tested at
  every c;
* claim (a), Table 1: ours vs the baseline (Eq. 2) where both first reach
  each authorized TAR level of 60/70/80/90/100 %, on a d grid refined
  around every match (:func:`~facelab.experiments.targeted_anonymization_claims.next_baseline_d`);
* claim (b): monotonicity of TAR and of the targets' recognition over the
  whole c sweep; claim (c): the authorized FAR per c against the clean FAR;
* every verdict by :func:`facelab.metrics.claims.verdict` (exact sign test
  plus bootstrap CI on paired units), every rate with its n and chance level;
* th_old and the targets' thresholds calibrated on identities disjoint from
  the trials, with the impostor pairs behind each;
* the whole protocol once per seed (``--seeds``, default 0 1 2), every claim
  tested per seed and its spread over seeds on the page
  (:func:`~facelab.experiments.targeted_anonymization_claims.claims_over_seeds`);
  ``--jobs N`` runs N seeds at once in separate processes (each with
  ``--threads`` threads): the seeds are independent, and one seed takes about
  an hour on one CPU thread.

The JSON (:data:`facelab.experiments.targeted_anonymization.SCHEMA`) holds
every per-trial decision and is what notebook 01's figures read: the first
seed's results at the top level, the other seeds' (the same shape, each with
its own ``machine`` and ``minutes``) under ``"other seeds"``.

Entry point for ``python -m benchmarks``: :func:`main` (``args.out``,
``args.threads``, ``args.data``, ``args.device``, ``args.seeds``, ``args.jobs``; optional ``args.ta_*``
fields, see :func:`parser`).  Standalone: ``python -m benchmarks.targeted_anonymization …``;
``python -m benchmarks.targeted_anonymization render`` re-writes the page from the
committed JSON (after a change to its wording only).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

DEFAULTS = dict(ta_victim="facenet-casia", ta_authorized=None, ta_per_identity=8, ta_n=20, ta_far=1e-3,
                ta_cs=(0.0, 0.25, 0.5, 0.75, 1.0), ta_ds=(0.0, 1 / 16, 0.25, 1.0, 4.0, 16.0), ta_refine=2,
                ta_quick=False, ta_seeds=(0, 1, 2), ta_jobs=1)
# the smoke run: a cheap victim, one authorized model, 6 trials, 5 steps, two seeds (not a result)
FAST = dict(ta_victim="mobileface", ta_authorized=["mobilefacenet"], ta_per_identity=2, ta_n=5,
            ta_cs=(0.0, 0.5, 1.0), ta_ds=(0.0, 0.25, 4.0), ta_refine=1, ta_seeds=(0, 1))
PROTOCOL = ("ta_victim", "ta_authorized", "ta_per_identity", "ta_n", "ta_far", "ta_cs", "ta_ds", "ta_refine")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.targeted_anonymization", description=__doc__.split("\n")[0])
    p.add_argument("--victim", dest="ta_victim", nargs="+", default=[DEFAULTS["ta_victim"]],
                   help="victim model(s); several = an ensemble")
    p.add_argument("--authorized", dest="ta_authorized", nargs="+", default=None,
                   help="authorized models taking turns (default: every other pool model)")
    p.add_argument("--per-identity", dest="ta_per_identity", type=int, default=DEFAULTS["ta_per_identity"])
    p.add_argument("--n", dest="ta_n", type=int, default=DEFAULTS["ta_n"], help="iterations")
    p.add_argument("--far", dest="ta_far", type=float, default=DEFAULTS["ta_far"])
    p.add_argument("--cs", dest="ta_cs", type=float, nargs="+", default=list(DEFAULTS["ta_cs"]))
    p.add_argument("--ds", dest="ta_ds", type=float, nargs="+", default=list(DEFAULTS["ta_ds"]),
                   help="the baseline's coarse d grid (refined where a match needs it)")
    p.add_argument("--refine", dest="ta_refine", type=int, default=DEFAULTS["ta_refine"],
                   help="extra baseline runs per authorized model to bracket the matches")
    p.add_argument("--quick", dest="ta_quick", action="store_true",
                   help="the FACELAB_FAST=1 smoke run (a smoke run, not a result)")
    p.add_argument("--seeds", dest="ta_seeds", type=int, nargs="+", default=None,
                   help="run the protocol once per seed (default 0 1 2)")
    p.add_argument("--seed", dest="ta_seeds", type=int, nargs=1, help="one seed: the same as --seeds N")
    p.add_argument("--jobs", dest="ta_jobs", type=int, default=None,
                   help="seeds run at once, each in its own process with --threads threads (default 1)")
    p.add_argument("--data", default="offline", help="offline (default), lfw or folder:PATH")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    from .timing import add_device_option

    add_device_option(p)
    return p


def _fast(args) -> bool:
    return os.environ.get("FACELAB_FAST") == "1" or bool(getattr(args, "ta_quick", False))


def _opt(args, name):
    if _fast(args) and name in FAST:
        return FAST[name]
    v = getattr(args, name, None)
    return v if v is not None else DEFAULTS[name]


def _seeds(args) -> list[int]:
    seeds = (FAST["ta_seeds"] if _fast(args) and not (getattr(args, "ta_seeds", None) or getattr(args, "seeds", None))
             else getattr(args, "ta_seeds", None) or getattr(args, "seeds", None) or DEFAULTS["ta_seeds"])
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds must be distinct, got {seeds}")
    return seeds


def _jobs(args, n_seeds: int) -> int:
    jobs = next((j for j in (getattr(args, "ta_jobs", None), getattr(args, "jobs", None)) if j is not None),
                DEFAULTS["ta_jobs"])
    if int(jobs) < 1:
        raise SystemExit(f"--jobs must be at least 1, got {jobs}")
    return min(int(jobs), n_seeds)


def _run_seed(opts: dict, seed: int, threads: int, device: str, data: str, partial: Path | None) -> dict:
    """One seed of the protocol, in this process or a worker: loads the faces and models itself (a worker shares
    nothing with its parent), writes ``partial`` after every authorized model, returns the results dict with this
    seed's ``machine`` and ``minutes``."""
    from facelab.experiments import targeted_anonymization as E
    from facelab.faces import face_set
    from facelab.models import available, load

    torch.set_num_threads(threads)
    t_start, load_at_start = time.time(), _load()
    victims = [opts["ta_victim"]] if isinstance(opts["ta_victim"], str) else list(opts["ta_victim"])
    pool = available()
    authorized = [a for a in (opts["ta_authorized"] or pool) if a not in victims]
    faces = face_set(data)
    models = {n: load(n, torch.device(device)) for n in dict.fromkeys([*pool, *victims, *authorized])}
    log = lambda s: print(f"[seed {seed}] {s}", flush=True)  # noqa: E731

    def stamp(results: dict) -> dict:
        results["machine"] = _machine(threads, load_at_start, device)
        results["minutes"] = (time.time() - t_start) / 60
        return results

    def save_partial(results: dict) -> None:  # a long run leaves what it has (a *.tmp: never committed)
        if partial is not None:
            partial.write_text(json.dumps(stamp(results), indent=1) + "\n")

    results = E.run_protocol(faces, models, victims=victims, authorized=authorized, cs=list(opts["ta_cs"]),
                             ds=list(opts["ta_ds"]), max_refine=int(opts["ta_refine"]),
                             per_identity=int(opts["ta_per_identity"]), n=int(opts["ta_n"]), seed=seed,
                             far=float(opts["ta_far"]), log=log, on_section=save_partial)
    return stamp(results)


def combine(per_seed: dict[int, dict], seeds: list[int]) -> dict:
    """The results dict of a run over ``seeds``: the first seed's results at the top level (what the notebook's
    figures read), the others under ``"other seeds"`` by seed, ``"seeds"`` in run order."""
    first = dict(per_seed[seeds[0]])
    first["seeds"] = list(seeds)
    first["other seeds"] = {str(s): per_seed[s] for s in seeds[1:]}
    return first


def main(args) -> str:
    from facelab.experiments.targeted_anonymization_report import render

    from .timing import device_flag, device_of

    threads = getattr(args, "threads", 1) or 1
    device = device_of(args)
    fast = _fast(args)
    seeds = _seeds(args)
    jobs = _jobs(args, len(seeds))
    data = getattr(args, "data", None) or "offline"
    opts = {k: _opt(args, k) for k in PROTOCOL}
    out = Path(getattr(args, "out", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    stem = "targeted_anonymization" + ("_fast" if fast else "")
    command = getattr(args, "ta_command", None) or (
        ("FACELAB_FAST=1 " if fast else "") + f"python -m benchmarks targeted_anonymization --threads {threads}"
        + ("" if seeds == list(DEFAULTS["ta_seeds"]) or fast else " --seeds " + " ".join(map(str, seeds)))
        + (f" --jobs {jobs}" if jobs > 1 else "")
        + ("" if data == "offline" else f" --data {data}") + device_flag(device))
    partial = {s: out / f"{stem}.seed{s}.partial.tmp" for s in seeds}
    work = [(opts, s, threads, str(device), data, partial[s]) for s in seeds]
    if jobs == 1:
        per_seed = {s: _run_seed(*w) for s, w in zip(seeds, work)}
    else:  # spawn: a forked torch process can deadlock in its thread pool
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {s: pool.submit(_run_seed, *w) for s, w in zip(seeds, work)}
            per_seed = {s: f.result() for s, f in futures.items()}
    results = combine(per_seed, seeds)
    results["command"] = command
    results["fast"] = fast
    text = render(results)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / f"{stem}.md").write_text(text)
    for p in partial.values():
        p.unlink(missing_ok=True)
    print(text)
    return text


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _machine(threads: int, load_at_start: float, device="cpu") -> str:
    from .timing import machine_line

    return f"{machine_line(threads, device)}; 1-min load average {load_at_start:.2f} at the start, {_load():.2f} at the end"


def render_main(args) -> str:
    """Re-write ``targeted_anonymization.md`` from its JSON without re-running the attacks
    (``python -m benchmarks.targeted_anonymization render``): after a change to the page's wording only."""
    from facelab.experiments.targeted_anonymization import load_results
    from facelab.experiments.targeted_anonymization_report import render

    out = Path(getattr(args, "out", Path(__file__).parent / "results"))
    R = load_results(out / "targeted_anonymization.json")
    if R is None:
        raise SystemExit(f"{out / 'targeted_anonymization.json'} is missing or of an older schema: run "
                         "python -m benchmarks targeted_anonymization --threads 1")
    text = render(R)
    (out / "targeted_anonymization.md").write_text(text)
    return text


if __name__ == "__main__":
    argv = sys.argv[1:]
    part = "render" if argv[:1] == ["render"] else "all"
    a = parser().parse_args(argv[1:] if part == "render" else argv)
    a.ta_command = " ".join(["python -m benchmarks.targeted_anonymization", *argv])
    (render_main if part == "render" else main)(a)
    from .provenance import after_run
    # record in results/provenance.json (not for --quick or smoke runs; a render keeps the run's record)
    after_run("targeted_anonymization", a, part=part)
