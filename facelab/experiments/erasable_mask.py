"""ErasableMask's benchmark protocol, and the results file it writes.

The protocol (``benchmarks/erasable_mask.py`` runs it on the checkpoints
``python -m facelab.methods.erasable_mask`` stores; :data:`VARIANTS` names
them): the held-out faces of the offline set, each protected twice
(:func:`units`: towards its own attributes, b = a, and towards all attributes
flipped, b = 1 − a), scored by :func:`evaluate_variant` on the white-box
models :data:`WHITE` (the training surrogates) and the black-box models
:data:`BLACK` at each model's threshold for FAR :data:`FAR`, clean and under
the distortions :data:`DISTORTIONS`; and the gradient baselines on the same
faces (:func:`baselines`).

The benchmark saves everything its page shows in one JSON (:data:`SCHEMA`):

* ``"schema"``, ``"command"``, ``"fast"``, ``"threads"``, ``"machine"``,
  ``"load_average"``, ``"cpu_count"``, ``"seconds"`` (wall time);
* ``"data"`` (the face set's description), ``"n_faces"``, ``"faces"`` (the
  face index of every unit), ``"far"``, ``"white"``, ``"black"``,
  ``"variants"`` (checkpoint name → training flags), ``"distortions"``,
  ``"missing"`` (variants and editors without a checkpoint);
* ``"results"``: per variant, ``"clean"`` and each distortion evaluated
  (:func:`facelab.methods.erasable_mask.evaluate`, with per-unit outcomes)
  and ``"per_unit"`` (restored / protected PSNR, L2 change);
* ``"editors"``: the editor ablation, per checkpoint (the default and
  :data:`EDITORS`) :func:`evaluate_editor`'s dict (absent in older files);
* ``"baselines"`` (one dict per attack), ``"speed"``, ``"provenance"`` (per
  variant, the checkpoint's);
* ``"seeds"`` (training seeds, the first one's evaluation being everything
  above) and ``"other seeds"``: per further seed its own ``"data"``,
  ``"n_faces"``, ``"faces"``, ``"results"``, ``"missing"`` and
  ``"provenance"`` — every variant retrained with that seed
  (:func:`seed_checkpoint`) and evaluated on that seed's held-out faces
  (:func:`held_out`); absent in older files.

:mod:`facelab.experiments.erasable_mask_claims` computes the claims from that
dict and :mod:`facelab.experiments.erasable_mask_report` words the page
(``render(results)`` is ``benchmarks/results/erasable_mask.md``);
:func:`benchmark_results` reads the committed file for notebook 03.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from . import results as _results
from .erasable_mask_claims import BASE  # the default checkpoint, against which every ablation is compared

SCHEMA = "facelab.erasable_mask/1"
"""The results dict's version: :func:`load_results` returns None for any other."""

WHITE = ("mobileface", "faceapi-resnet")
BLACK = ("mobilefacenet", "facenet-casia", "faceres")
VARIANTS = {
    "erasable_mask": "default",
    "erasable_mask-ensemble": "--attack ensemble",
    "erasable_mask-gamma0": "--gamma 0",
    "erasable_mask-nocurriculum": "--no-curriculum",
    "erasable_mask-nonoise": "--no-noise",
}
"""Checkpoint name → the training flags that make it."""
EDITORS = {"erasable_mask-editor-shortcut1": "--shortcut-layers 1 --epochs 40 0 0"}
"""Stage-1-only checkpoints (the attribute editor alone) for the editor ablation: AttGAN's one shortcut against
facelab's three (:class:`facelab.methods.erasable_mask.NetConfig`); only their edit is evaluated
(:func:`evaluate_editor`), beside the default checkpoint's own stage-1 editor."""
SEEDS = (0, 1, 2)
"""Training seeds the benchmark evaluates every variant of :data:`VARIANTS` over: the seed draws the train/test
split, the initialisation and the batches, so a claim that compares two checkpoints trained once each says as
much about the seed as about the method."""
DISTORTIONS = {"jpeg75": ("jpeg", 75.0), "noise0.02": ("gaussian", 0.02), "resize0.5": ("resize", 0.5)}
FAR = 0.01


def seed_checkpoint(name: str, seed: int) -> str:
    """The cache name of variant ``name`` trained with ``seed`` (seed 0 keeps the plain name).

    >>> seed_checkpoint("erasable_mask-gamma0", 0), seed_checkpoint("erasable_mask-gamma0", 2)
    ('erasable_mask-gamma0', 'erasable_mask-gamma0-seed2')
    """
    return name if seed == 0 else f"{name}-seed{seed}"


def held_out(spec: str, seed: int, size: int = 64):
    """The faces the checkpoints trained with ``seed`` never saw: on the offline set, that seed's test split
    (training draws its split from its seed); any other set (``lfw``, ``folder:PATH``) is held out whole."""
    from ..methods.erasable_mask.data import held_out_faces, offline_faces

    return offline_faces(size, seed=seed) if spec == "offline" else held_out_faces(spec, size)


def units(x: torch.Tensor, a: torch.Tensor):
    """Every face twice: with its own attributes (b = a: no edit wanted, the
    perturbation alone protects) and with all attributes flipped (b = 1 − a).
    Returns images, targets, and the face index of each unit.

    >>> xs, bs, faces = units(torch.zeros(2, 3, 4, 4), torch.tensor([[1., 0.], [0., 0.]]))
    >>> xs.shape[0], bs.tolist(), faces.tolist()
    (4, [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0, 1, 0, 1])
    """
    xs = torch.cat([x, x])
    bs = torch.cat([a, 1 - a])
    faces = np.tile(np.arange(x.shape[0]), 2)
    return xs, bs, faces


def evaluate_variant(model, xs: torch.Tensor, bs: torch.Tensor, face_models: Mapping, distortions: bool) -> dict:
    """One checkpoint on the units: ``"clean"``, each of :data:`DISTORTIONS`
    when ``distortions`` (each costs a full pass), and ``"per_unit"``."""
    from ..methods import erasable_mask as em
    from ..metrics.quality import psnr

    out = {"clean": em.evaluate(model, xs, bs, face_models, FAR)}
    for name, d in (DISTORTIONS.items() if distortions else ()):
        out[name] = em.evaluate(model, xs, bs, face_models, FAR, distortion=d, edited=False)
    with torch.no_grad():
        x_p = model.protect(xs, bs)
        x_r = model.erase(x_p)
    out["per_unit"] = {"psnr_restored": psnr(x_r, xs).tolist(), "psnr_protected": psnr(x_p, xs).tolist(),
                       "l2_change": (x_p - xs).flatten(1).norm(dim=1).tolist()}
    return out


@torch.no_grad()
def evaluate_editor(model, xs: torch.Tensor, bs: torch.Tensor, face_models: Mapping) -> dict:
    """The attribute-edited faces x_b = G(x, b) alone (no perturbation encoder): per model the share still
    matched to their clean face at the threshold for FAR :data:`FAR` (per unit, for paired tests), and
    PSNR / SSIM of x_b against x.  A low match rate means the editor itself loses the identity, so the
    protected faces' ASR would not measure the perturbation."""
    from ..methods.erasable_mask.evaluate import match_rates
    from ..metrics.quality import psnr, ssim

    x_b = model.edit(model.check_faces(xs), bs)
    matched = {name: match_rates(m, xs, x_b, FAR)[0].tolist() for name, m in face_models.items()}
    return {"shortcut_layers": model.cfg.shortcut_layers,
            "stage1_epochs": (model.provenance or {}).get("train", {}).get("epochs", [None])[0],
            "match": {name: sum(v) / len(v) for name, v in matched.items()}, "matched": matched,
            "psnr": float(psnr(x_b, xs).mean()), "ssim": float(ssim(x_b, xs).mean())}


def baselines(x: torch.Tensor, white: Mapping, face_models: Mapping, l2_budget: float) -> list[dict]:
    """PGD and MI-FGSM (10 steps on the ``white`` models) on the clean faces
    ``x``: L∞ 8/255 each, and PGD-L2 at ``l2_budget`` (ErasableMask's mean L2
    change).  Per attack ``{"attack", "norm", "eps", "asr": {model: rate},
    "psnr", "ssim"}``; ASR at each model's threshold for FAR :data:`FAR`."""
    from .. import steps
    from ..methods.baselines import mifgsm, pgd
    from ..metrics.quality import psnr, ssim

    surrogates = list(white.values())
    runs = [("PGD", "linf", 8 / 255, pgd(x, surrogates, eps=8 / 255, steps=10, seed=0)),
            ("MI-FGSM", "linf", 8 / 255, mifgsm(x, surrogates, eps=8 / 255, steps=10)),
            ("PGD", "l2", l2_budget, pgd(x, surrogates, eps=l2_budget, norm="l2", steps=10, seed=0))]
    out = []
    for attack, norm, eps, gen in runs:
        x_adv = steps.run(gen).x
        asr = {}
        for m, fm in face_models.items():
            with torch.no_grad():
                sim = fm.similarity(fm(x_adv), fm(x))
            asr[m] = float((sim < fm.threshold(FAR)).float().mean())
        out.append({"attack": attack, "norm": norm, "eps": float(eps), "asr": asr,
                    "psnr": float(psnr(x_adv, x).mean()), "ssim": float(ssim(x_adv, x).mean())})
    return out


def load_results(path) -> dict | None:
    """The results dict at ``path`` if it exists and has this module's :data:`SCHEMA`, else None
    (an older file lacks what the page shows)."""
    return _results.load_results(path, SCHEMA)


def benchmark_results() -> dict | None:
    """The committed benchmark results (``benchmarks/results/erasable_mask.json`` beside the facelab
    package in a source checkout) if present and of the current :data:`SCHEMA`, else None — e.g. when
    facelab is pip-installed."""
    return _results.committed_results("erasable_mask", SCHEMA)


__all__ = ["SCHEMA", "BASE", "WHITE", "BLACK", "VARIANTS", "EDITORS", "SEEDS", "DISTORTIONS", "FAR",
           "seed_checkpoint", "held_out", "units",
           "evaluate_variant", "evaluate_editor",
           "baselines", "load_results", "benchmark_results"]
