"""The ErasableMask claims, measured on the benchmark's results dict.

Every function here is a pure function of (parts of) the results dict of
:data:`facelab.experiments.erasable_mask.SCHEMA`.  Each claim compares the
default checkpoint (``erasable_mask``) with one ablation (:data:`CLAIMS`):

* on **binary** outcomes (:func:`binary_claim`: ASR success = the protected
  face is not matched to its owner; ESR success = the restored face is
  matched again), per unit × model;
* on **continuous** per-unit numbers (:func:`continuous_claim`: restored
  PSNR).

The units are correlated within a face (each face is protected twice, and
judged by several models), so the bootstrap CI resamples whole faces and the
exact sign test runs on per-face means (faces are the independent units);
:func:`facelab.metrics.claims.verdict` words the result ("holds
(significant)" needs both p < 0.05 and a CI excluding 0).  Each checkpoint
is trained once per training seed: one seed's verdict carries the
evaluation's uncertainty, not the training's, so :func:`claims_over_seeds`
tests every claim once per seed (each seed's checkpoints on that seed's
held-out faces) and gives the spread and the verdicts over seeds, never
pooling them.  A claim whose checkpoint is missing is "not run"
(:func:`claim_results`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..metrics.claims import compare_paired, over_seeds, paired_bootstrap_ci, sign_test, verdict

BASE = "erasable_mask"

CLAIMS = (
    {"id": "a", "other": "erasable_mask-ensemble", "kind": "binary", "setting": "clean", "models": "black",
     "outcome": "asr"},
    {"id": "b", "other": "erasable_mask-gamma0", "kind": "binary", "setting": "clean", "models": "all",
     "outcome": "esr"},
    {"id": "b′", "other": "erasable_mask-gamma0", "kind": "continuous", "measure": "psnr_restored", "unit": "dB"},
    {"id": "c", "other": "erasable_mask-nocurriculum", "kind": "continuous", "measure": "psnr_restored", "unit": "dB"},
    {"id": "c′", "other": "erasable_mask-nocurriculum", "kind": "binary", "setting": "clean", "models": "black",
     "outcome": "asr"},
    {"id": "d", "other": "erasable_mask-nonoise", "kind": "binary", "setting": "jpeg75", "models": "all",
     "outcome": "asr"},
    {"id": "d′", "other": "erasable_mask-nonoise", "kind": "binary", "setting": "jpeg75", "models": "all",
     "outcome": "esr"},
)
"""Each claim: the ablation it compares ``erasable_mask`` with, and what it compares — binary outcomes
(``"asr"``/``"esr"``) of a setting (``"clean"`` or a distortion) on the ``"black"``-box or ``"all"`` models, or a
continuous per-unit ``"measure"``.  The predicted direction is always: ``erasable_mask`` higher."""


def needs_distortions(name: str) -> bool:
    """Whether the benchmark must evaluate checkpoint ``name`` under the
    distortions: the default (the headline table shows them) and every
    ablation a claim compares under a distortion.

    >>> needs_distortions("erasable_mask"), needs_distortions("erasable_mask-nonoise")
    (True, True)
    >>> needs_distortions("erasable_mask-gamma0")
    False
    """
    return name == BASE or any(c["other"] == name and c.get("setting", "clean") != "clean" for c in CLAIMS)


def machine_was_shared(load_average: float, cpu_count: int | None) -> bool:
    """More runnable work than cores at the start (1-min load average above
    cores + 0.5): the times are upper bounds.

    >>> machine_was_shared(2.0, 2), machine_was_shared(2.6, 2)
    (False, True)
    """
    return load_average > (cpu_count or 1) + 0.5


def model_group(results: Mapping, group: str) -> tuple[str, ...]:
    """The model names of ``group``: ``"white"``, ``"black"`` or ``"all"`` (white then black)."""
    if group == "all":
        return (*results["white"], *results["black"])
    return tuple(results[group])


def flags(res: Mapping, models: Sequence[str], outcome: str) -> np.ndarray:
    """Per unit × model success, flattened model-major: ``"asr"`` = the
    protected face is not matched, ``"esr"`` = the restored face is matched.

    >>> r = {"outcomes": {"m": {"protected_match": [True, False], "restored_match": [True, True]}}}
    >>> flags(r, ["m"], "asr").tolist(), flags(r, ["m"], "esr").tolist()
    ([False, True], [True, True])
    """
    if outcome == "asr":
        return np.concatenate([~np.asarray(res["outcomes"][m]["protected_match"], dtype=bool) for m in models])
    if outcome == "esr":
        return np.concatenate([np.asarray(res["outcomes"][m]["restored_match"], dtype=bool) for m in models])
    raise ValueError(f"outcome must be 'asr' or 'esr', got {outcome!r}")


def _per_face(values: np.ndarray, clusters: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return np.array([values[clusters == k].mean() for k in np.unique(faces)])


def binary_claim(a: Mapping, b: Mapping, models: Sequence[str], outcome: str, faces: Sequence[int]) -> dict:
    """"``a`` succeeds more often than ``b``" on ``outcome`` over ``models``
    (``a``, ``b``: one setting's evaluation of two checkpoints, units paired).

    Returns ``rate_a``, ``rate_b``, ``n`` (unit × model outcomes), ``faces``
    (independent faces), ``ci`` (face-bootstrap 95 % CI of rate_a − rate_b),
    ``wins``/``losses`` (faces whose mean success is higher/lower under
    ``a``), ``p`` (exact sign test on them) and ``verdict``."""
    faces = np.asarray(faces)
    fa, fb = flags(a, models, outcome), flags(b, models, outcome)
    clusters = np.tile(faces, len(models))
    c = compare_paired(fa.tolist(), fb.tolist(), clusters=clusters.tolist())
    d = _per_face(fa.astype(float), clusters, faces) - _per_face(fb.astype(float), clusters, faces)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = sign_test(wins, losses)
    return {"kind": "binary", "rate_a": c.rate_a, "rate_b": c.rate_b, "n": c.n, "faces": int(len(np.unique(faces))),
            "ci": [float(c.ci[0]), float(c.ci[1])], "wins": wins, "losses": losses, "p": p,
            "verdict": verdict(c.rate_a - c.rate_b, c.ci, p)}


def continuous_claim(a: Sequence[float], b: Sequence[float], faces: Sequence[int]) -> dict:
    """"``a`` is higher than ``b``" on paired per-unit numbers.

    Returns ``mean_a``, ``mean_b``, ``effect`` (mean of a − b), ``ci``
    (face-bootstrap 95 % CI), ``wins``/``losses`` (faces whose mean
    difference is positive/negative), ``p`` (exact sign test) and
    ``verdict``."""
    faces = np.asarray(faces)
    effect, lo, hi = paired_bootstrap_ci(a, b, clusters=faces.tolist())
    d = _per_face(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), faces, faces)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = sign_test(wins, losses)
    return {"kind": "continuous", "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)), "effect": effect,
            "ci": [lo, hi], "faces": int(len(np.unique(faces))), "wins": wins, "losses": losses, "p": p,
            "verdict": verdict(effect, (lo, hi), p)}


def claim_result(results: Mapping, claim: Mapping) -> dict:
    """One claim of :data:`CLAIMS` on the results dict: the claim's fields,
    ``"status"`` — ``"run"``, or ``"no base"`` / ``"no ablation"`` when that
    checkpoint was not evaluated (then ``"missing"`` names it) — and, when
    run, the statistics of :func:`binary_claim` / :func:`continuous_claim`."""
    evaluated = results["results"]
    out = dict(claim)
    if BASE not in evaluated:
        return {**out, "status": "no base", "missing": BASE}
    if claim["other"] not in evaluated:
        return {**out, "status": "no ablation", "missing": claim["other"]}
    a, b, faces = evaluated[BASE], evaluated[claim["other"]], results["faces"]
    if claim["kind"] == "binary":
        stats = binary_claim(a[claim["setting"]], b[claim["setting"]], model_group(results, claim["models"]),
                             claim["outcome"], faces)
    elif claim["kind"] == "continuous":
        stats = continuous_claim(a["per_unit"][claim["measure"]], b["per_unit"][claim["measure"]], faces)
    else:
        raise ValueError(f"claim kind must be 'binary' or 'continuous', got {claim['kind']!r}")
    return {**out, "status": "run", **stats}


def claim_results(results: Mapping) -> list[dict]:
    """Every claim of :data:`CLAIMS` (:func:`claim_result`), in order."""
    return [claim_result(results, c) for c in CLAIMS]


def seed_views(results: Mapping) -> dict[int, Mapping]:
    """Per training seed, a results dict whose ``"results"``, ``"faces"``, ``"n_faces"``, ``"data"``,
    ``"missing"`` and ``"provenance"`` are that seed's: the dict itself for its first seed (seed 0 in a file
    without ``"seeds"``), and for each of ``"other seeds"`` the dict with that seed's fields laid over it."""
    first = int((results.get("seeds") or [0])[0])
    out = {first: results}
    for s, own in (results.get("other seeds") or {}).items():
        out[int(s)] = {**results, **own}
    return out


def claims_over_seeds(results: Mapping) -> list[dict]:
    """Every claim of :data:`CLAIMS` once per training seed (:func:`seed_views`), in order: per claim ``"id"``,
    ``"kind"``, ``"seeds"`` (where it ran) and ``"missing"`` (seeds where a checkpoint was absent), each seed's
    ``"effects"`` (Δ of rates, or of the measure) and ``"verdicts"`` (worded from that seed's own test), the
    ``"summary"`` of verdicts over seeds and the ``"spread"`` (min … max; mean ± sd) —
    :func:`facelab.metrics.claims.over_seeds`.  Seeds are not pooled: the same faces, models and code come back
    in every seed."""
    views = seed_views(results)
    rows = []
    for claim in CLAIMS:
        per = {s: claim_result(v, claim) for s, v in views.items()}
        run = {s: c for s, c in per.items() if c["status"] == "run"}
        row = {"id": claim["id"], "kind": claim["kind"], "unit": claim.get("unit"), "seeds": sorted(run),
               "missing": sorted(s for s in per if s not in run), "effects": [], "verdicts": [], "summary": None,
               "spread": None}
        if run:
            sp = over_seeds({s: ((c["rate_a"] - c["rate_b"]) if c["kind"] == "binary" else c["effect"],
                                 tuple(c["ci"]), c["p"]) for s, c in sorted(run.items())})
            binary = claim["kind"] == "binary"
            row.update(effects=list(sp.effects), verdicts=list(sp.verdicts), summary=sp.verdicts_summary(),
                       spread=sp.spread("+.1f", scale=100) if binary else sp.spread("+.2f"))
        rows.append(row)
    return rows


__all__ = ["BASE", "CLAIMS", "needs_distortions", "machine_was_shared", "model_group", "flags", "binary_claim",
           "continuous_claim", "claim_result", "claim_results", "seed_views", "claims_over_seeds"]
