"""ErasableMask at teaching scale: protection, erasure, robustness, speed, and the paper's claims.

Evaluates the checkpoints ``python -m facelab.methods.erasable_mask`` stores
in the facelab cache (training is not part of this benchmark: each takes
10–20 min; the table says which variants were trained and which were not):

==============================  ===========================================================
checkpoint                      trained with
==============================  ===========================================================
``erasable_mask``               the default (meta-auxiliary attack, γ = 0.3, curriculum, noise pool)
``erasable_mask-ensemble``      ``--attack ensemble``   — claim (a)
``erasable_mask-gamma0``        ``--gamma 0``           — claim (b)
``erasable_mask-nocurriculum``  ``--no-curriculum``     — claim (c)
``erasable_mask-nonoise``       ``--no-noise``          — claim (d)
==============================  ===========================================================

each also trained with seeds 1 and 2 (``--seed N --name <checkpoint>-seedN``;
``--seeds`` picks the seeds, 0 first: the page's detailed sections are seed
0's, and every claim is repeated per seed with its spread over seeds); and,
for the editor ablation (AttGAN's one shortcut against facelab's three;
stage 1 only, 2 min), ``erasable_mask-editor-shortcut1`` (``--shortcut-layers 1
--epochs 40 0 0``).

Protocol (:mod:`facelab.experiments.erasable_mask`): the 16 held-out faces
of the offline set (seed-0 split; never seen in training; ``--data lfw`` or
``--data folder:PATH``: every face of that set instead), each protected
twice: towards its own attributes (b = a, the perturbation alone protects)
and towards all attributes flipped (b = 1 − a): 32 protected faces,
correlated within a face (CIs resample faces, sign tests run on per-face
means).  White-box models = the training surrogates (mobileface,
faceapi-resnet); black-box = mobilefacenet, facenet-casia, faceres.  ASR /
ESR at each model's calibrated threshold for FAR 1 %
(:mod:`facelab.methods.erasable_mask.evaluate`).  Robustness: JPEG q = 75,
Gaussian σ = 0.02, resize ×0.5 between protection and both the face model
and the restorer.  PGD / MI-FGSM (10 steps, the same two surrogates): at
L∞ 8/255, and PGD-L2 at the L2 change ErasableMask makes (matched change).

This module only runs the protocol and times it: it writes
``benchmarks/results/erasable_mask.json`` (everything the page shows,
:data:`facelab.experiments.erasable_mask.SCHEMA`) and
``erasable_mask.md`` = ``render(json)``; the claims are computed in
:mod:`facelab.experiments.erasable_mask_claims` and worded in
:mod:`facelab.experiments.erasable_mask_report`.  ``FACELAB_FAST=1``: 4
faces, 2 timing repeats, ``erasable_mask_fast.*`` (never the committed
files), and no evaluation cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .timing import device_flag, device_of, machine_line, min_time

# what a cached evaluation depends on besides the checkpoint and the faces: a change to any of these re-evaluates
EVAL_CODE = ("facelab/experiments/erasable_mask.py", "facelab/methods/erasable_mask/evaluate.py",
             "facelab/methods/erasable_mask/losses.py", "facelab/methods/erasable_mask/model.py",
             "facelab/methods/erasable_mask/nets.py", "facelab/metrics/quality.py", "facelab/models/thresholds.json",
             "facelab/models/packages.py")
ROOT = Path(__file__).resolve().parent.parent


def _eval_key(name: str, xs: torch.Tensor, bs: torch.Tensor) -> str:
    """The checkpoint's weight checksum, then a digest of the units, the evaluation code, torch's version
    and the device when it is not the CPU (a GPU's rounding differs)."""
    from facelab.methods.erasable_mask.checkpoint import checkpoint_path, read_header

    h = hashlib.sha256()
    h.update(xs.detach().cpu().contiguous().numpy().tobytes())
    h.update(bs.detach().cpu().contiguous().numpy().tobytes())
    for rel in EVAL_CODE:
        p = ROOT / rel
        h.update(rel.encode() + (p.read_bytes() if p.exists() else b"<absent>"))
    h.update(torch.__version__.encode())
    if xs.device.type != "cpu":
        h.update(str(xs.device).encode())
    return f"{read_header(checkpoint_path(name))[0]['payload_sha256'][:16]}-{h.hexdigest()[:12]}"


def _cached_evaluation(name: str, key: str, run) -> dict:
    """A variant's evaluation, reused while its checkpoint, the faces and the
    evaluation code are unchanged (``key``), so adding one ablation does not
    re-evaluate the others."""
    from facelab.cache import atomic_write
    from facelab.methods.erasable_mask.checkpoint import checkpoint_dir

    path = checkpoint_dir() / f"eval-{name}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = run()
    atomic_write(path, json.dumps(res))
    return res


def _seeds(args) -> list[int]:
    from facelab.experiments.erasable_mask import SEEDS

    seeds = [int(s) for s in (getattr(args, "seeds", None) or SEEDS)]
    if len(set(seeds)) != len(seeds) or seeds[0] != 0:
        raise SystemExit(f"--seeds must be distinct and start with 0 (the page's detailed sections are the seed-0 "
                         f"checkpoints'), got {seeds}")
    return seeds


def _evaluate_seed(seed: int, data_arg: str, face_models: dict, device, fast: bool):
    """Every variant of :data:`~facelab.experiments.erasable_mask.VARIANTS` trained with ``seed`` on that seed's
    held-out faces: ``(x, xs, bs, data, faces, results, missing, loaded)``."""
    from facelab.experiments import erasable_mask as E
    from facelab.experiments.erasable_mask_claims import needs_distortions
    from facelab.methods import erasable_mask as em

    data = E.held_out(data_arg, seed)
    x, a = data.split("test")
    x, a = x.to(device), a.to(device)
    if fast:
        x, a = x[:4], a[:4]
    xs, bs, faces = E.units(x, a)
    results, missing, loaded = {}, [], {}
    for variant in E.VARIANTS:
        name = E.seed_checkpoint(variant, seed)
        if not em.exists(name):
            missing.append(name)
            continue
        loaded[name] = em.load(name, device=device)
        run = lambda: E.evaluate_variant(loaded[name], xs, bs, face_models,  # noqa: E731
                                         distortions=needs_distortions(variant))
        # a smoke run neither reads nor writes the cache: it cannot hand its numbers to a real run
        results[variant] = run() if fast else _cached_evaluation(name, _eval_key(name, xs, bs), run)
    return x, xs, bs, data, faces, results, missing, loaded


def main(args) -> str:
    from facelab.experiments import erasable_mask as E
    from facelab.experiments.erasable_mask_report import render
    from facelab.methods import erasable_mask as em
    from facelab.models import load

    threads = getattr(args, "threads", 1) or 1
    torch.set_num_threads(threads)
    device = device_of(args)
    fast = os.environ.get("FACELAB_FAST") == "1"
    t_start = time.perf_counter()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    data_arg = getattr(args, "data", None) or "offline"
    seeds = _seeds(args)
    face_models = {n: load(n, device) for n in (*E.WHITE, *E.BLACK)}
    white = {n: face_models[n] for n in E.WHITE}
    x, xs, bs, data, faces, results, missing, models_ = _evaluate_seed(seeds[0], data_arg, face_models, device, fast)
    other_seeds = {}
    for seed in seeds[1:]:
        _, _, _, d_s, f_s, r_s, m_s, l_s = _evaluate_seed(seed, data_arg, face_models, device, fast)
        other_seeds[str(seed)] = {"data": d_s.description, "n_faces": int(len(set(f_s.tolist()))),
                                  "faces": f_s.tolist(), "results": r_s, "missing": m_s,
                                  "provenance": {n: m.provenance for n, m in l_s.items()}}
        del l_s

    editors = {}
    for name in (E.BASE, *E.EDITORS):
        if name in models_:
            editors[name] = E.evaluate_editor(models_[name], xs, bs, face_models)
        elif name in E.EDITORS and em.exists(name):
            editor = em.load(name, device=device)
            editors[name] = E.evaluate_editor(editor, xs, bs, face_models)
            models_[name] = editor
        elif name in E.EDITORS:
            missing.append(name)

    baselines, speed = [], None
    if E.BASE in results:
        l2 = float(np.mean(results[E.BASE]["per_unit"]["l2_change"]))
        baselines = E.baselines(x, white, face_models, l2)
        m = models_[E.BASE]
        one, b1 = xs[:1], bs[:1]
        reps = 2 if fast else getattr(args, "repeats", 20)
        speed = {"protect_erase_seconds": min_time(lambda: m.erase(m.protect(one, b1)), reps, device=device), "repeats": reps}

    R = {"schema": E.SCHEMA, "fast": fast, "threads": threads,
         "command": ("FACELAB_FAST=1 " if fast else "") + f"python -m benchmarks erasable_mask --threads {threads}"
         + ("" if seeds == list(E.SEEDS) else " --seeds " + " ".join(map(str, seeds)))
         + ("" if data_arg == "offline" else f" --data {data_arg}") + device_flag(device),
         "machine": machine_line(threads, device), "load_average": load_avg, "cpu_count": os.cpu_count(),
         "data": data.description, "n_faces": int(x.shape[0]), "faces": faces.tolist(), "far": E.FAR,
         "white": list(E.WHITE), "black": list(E.BLACK), "variants": dict(E.VARIANTS),
         "distortions": list(E.DISTORTIONS), "missing": missing, "results": results, "editors": editors, "baselines": baselines,
         "speed": speed, "provenance": {n: m.provenance for n, m in models_.items()},
         "seeds": seeds, "other seeds": other_seeds}
    R["seconds"] = time.perf_counter() - t_start
    R = json.loads(json.dumps(R, default=str))  # the page is rendered from exactly what the JSON holds
    out = Path(getattr(args, "out", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    stem = "erasable_mask" + ("_fast" if fast else "")
    text = render(R)
    (out / f"{stem}.json").write_text(json.dumps(R, indent=1) + "\n")
    (out / f"{stem}.md").write_text(text)
    print(text)
    return text
