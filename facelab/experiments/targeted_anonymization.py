"""Evaluation of Targeted Anonymization as in the paper's §4.1–4.2.

Protocol (per trial, one identity): one photo is **protected** (x0); four
photos of that person *including x0* give the **average features** (Eq. 3);
one photo not among them is the **validation** probe.  With the protected
photo as the gallery sample we measure

* the authorized model's **TAR**: sim_A(ta, validation) ≥ th_A;
* its **FAR**: sim_A(ta, y) ≥ th_A over every photo y of every *other*
  identity in the set (the paper: "matching the generated samples with the
  random sample from other people");
* each target model's **recognition rate**: sim_T(ta, validation) ≥ th_T.

Thresholds: the benchmark calibrates th_old (and every target's threshold)
on identities **disjoint** from the evaluated trials
(:func:`disjoint_thresholds`), so no evaluated photo helped set the bar it is
judged by; :func:`facelab.evaluation.resolve_thresholds` (the stored calibration) is for quick
looks.  :class:`Protocol` runs one setting over every trial (one attack run
per trial and setting, scored once); :func:`evaluate_authorized` runs the
whole Fig. 1 / Table 1 sweep for one authorized model and
:func:`run_protocol` for several, returning a JSON-able dict (the schema
:data:`SCHEMA` that ``benchmarks/targeted_anonymization.py`` writes and the
notebook's figures read).  The claims' statistics on that dict are in
:mod:`facelab.experiments.targeted_anonymization_claims`.

On facelab's offline set the only identities
with ≥ 5 photos are the two video subjects, so most trials come from their
frames (different frames as protected photo, random average/validation
picks): results are correlated and the set is small — every table says so.

Helpers here are used by ``benchmarks/targeted_anonymization.py`` and by
``notebooks/01_targeted_anonymization.ipynb``; the pictures of a run are in
:mod:`facelab.viz.targeted_anonymization`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import steps as _steps
from ..methods.targeted_anonymization import targeted_anonymization, targeted_anonymization_baseline
from ..evaluation import EmbeddingCache
from ..evaluation.calibration import pair_indices, pair_similarities
from ..metrics.claims import discordant
from ..models.zoo import model_device
from . import results as _results


@dataclass(frozen=True)
class Trial:
    """One protected photo: indices into the face set."""

    identity: str
    protected: int
    average: tuple[int, ...]  # includes ``protected`` (the paper's four images)
    validation: int


def make_trials(labels: Sequence[str], n_average: int = 4, per_identity: int = 8, min_images: int = 3,
                seed: int = 0) -> list[Trial]:
    """Seeded trials: for each identity with ≥ ``min_images`` photos, up to
    ``per_identity`` trials with distinct protected photos; the average uses
    x0 plus up to ``n_average`` − 1 other photos (fewer when the identity has
    fewer than ``n_average`` + 1 photos — one is always kept for validation)."""
    rng = np.random.default_rng(seed)
    labels = list(labels)
    trials = []
    for name in dict.fromkeys(labels):
        members = np.flatnonzero(np.array(labels) == name)
        if len(members) < max(min_images, 2):
            continue
        for x0 in rng.permutation(members)[:per_identity]:
            others = rng.permutation(members[members != x0])
            k = min(n_average - 1, len(others) - 1)
            trials.append(Trial(name, int(x0), (int(x0), *map(int, others[:k])), int(others[k])))
    return trials


def disjoint_thresholds(models: Sequence[nn.Module], emb: "EmbeddingCache", labels: Sequence[str], exclude: Iterable[str],
                        far: float) -> dict[str, dict]:
    """Per model, the threshold at ``far`` from the impostor pairs among the
    photos of identities **not** in ``exclude`` (the evaluated trials'
    identities), so no evaluated photo helps set the threshold it is judged by.

    Returns per model ``{"th", "far", "impostor_pairs", "accepted"`` (impostor
    pairs at or above th), ``"rests_on"`` (th sits just above the
    rests_on-th highest impostor score), ``"images", "identities", "source"}``.
    With n impostor pairs, a FAR below 1/n cannot be resolved: the threshold
    then sits just above the highest impostor score (say so with the n)."""
    from ..metrics.verification import threshold_at_far

    labels_ = np.asarray(list(labels), dtype=object).astype(str)
    excluded = set(map(str, exclude))
    keep = np.flatnonzero(~np.isin(labels_, list(excluded)))
    _, imp = pair_indices(labels_[keep]) if len(keep) >= 2 else (None, np.zeros((0, 2), dtype=np.int64))
    if len(imp) == 0:
        raise ValueError(f"disjoint_thresholds: no impostor pair among the identities outside the {len(excluded)} "
                         "evaluated ones; use a face set with more identities (e.g. --data lfw) or fewer trial identities")
    pairs = keep[imp]
    out = {}
    for m in models:
        s = pair_similarities(m, emb(m), pairs).cpu()
        th = threshold_at_far(s, far)
        if s.dtype == torch.float32:  # scores compare in float32: step to the next float32 above the cut score
            th = float(np.nextafter(np.float32(np.nextafter(th, -np.inf)), np.float32(np.inf)))
        out[m.name] = {"th": th, "far": far, "impostor_pairs": int(len(pairs)), "accepted": int((s >= th).sum()),
                       "rests_on": int(np.floor(far * len(pairs))) + 1, "images": int(len(keep)),
                       "identities": int(len(set(labels_[keep]))),
                       "source": "calibrated here on identities disjoint from the trials"}
    return out


def protect(trials: Sequence[Trial], crops: torch.Tensor, *, victim, authorized, method: str = "ours",
            batch: int = 32, **kw) -> torch.Tensor:
    """Protected photos (N,3,S,S) for every trial; ``method`` "ours"
    (:func:`targeted_anonymization`) or "baseline"; ``kw`` go to the method."""
    dev = model_device(authorized)
    out = []
    for s in range(0, len(trials), batch):
        chunk = trials[s : s + batch]
        x = crops[[t.protected for t in chunk]].to(dev)
        users = [crops[list(t.average)].to(dev) for t in chunk]
        if method == "ours":
            gen = targeted_anonymization(x, users, victim=victim, authorized=authorized, **kw)
        elif method == "baseline":
            gen = targeted_anonymization_baseline(x, victim=victim, authorized=authorized, **kw)
        else:
            raise ValueError(f"method must be 'ours' or 'baseline', got {method!r}")
        out.append(_steps.run(gen).x.cpu())
    return torch.cat(out)


def evaluate(images: torch.Tensor, trials: Sequence[Trial], labels: Sequence[str], emb: EmbeddingCache, *,
             authorized: nn.Module, targets: Sequence[nn.Module], thresholds: Mapping[str, dict]) -> dict:
    """TAR and FAR of the authorized model and each target's recognition
    rate, with ``images`` (one per trial) as the gallery samples.

    Per-unit decisions are kept for paired comparisons between settings:
    ``tar_accepts`` (per trial), ``target_accepts[name]`` (per trial) and the
    accepted impostor comparisons — ``far_units`` (positions in the list of
    every (trial, photo of another identity) comparison, trial by trial, with
    ``far_n_per_trial`` comparisons per trial) and ``far_pairs``
    ([trial, photo index] of each accepted one)."""
    labels = np.array(labels)
    val = [t.validation for t in trials]
    out: dict = {"n": len(trials)}
    with torch.no_grad():
        for m in [authorized, *targets]:
            e = m(images.to(model_device(m)))
            th = thresholds[m.name]["th"]
            accepted = [bool(v) for v in (m.similarity(e, emb(m)[val]) >= th).cpu()]
            rate = sum(accepted) / len(accepted)
            if m is authorized:
                out["tar"], out["tar_accepts"] = rate, accepted
                units, pairs, per_trial, offset = [], [], [], 0
                for k, t in enumerate(trials):
                    others = np.flatnonzero(labels != t.identity)
                    hit = (m.similarity(e[k : k + 1], emb(m)[others]) >= th).cpu().numpy()
                    units += [offset + int(j) for j in np.flatnonzero(hit)]
                    pairs += [[k, int(others[j])] for j in np.flatnonzero(hit)]
                    per_trial.append(len(others))
                    offset += len(others)
                out["far"], out["far_n"], out["far_accepted"] = len(units) / offset, offset, len(units)
                out["far_units"], out["far_pairs"], out["far_n_per_trial"] = units, pairs, per_trial
            else:
                out.setdefault("targets", {})[m.name] = rate
                out.setdefault("target_accepts", {})[m.name] = accepted
    tg = out.get("targets", {})
    out["target_mean"] = float(np.mean(list(tg.values()))) if tg else float("nan")
    return out


def paired_sign_test(a: dict, b: dict) -> dict:
    """Exact two-sided sign (McNemar) test of two settings' target decisions,
    paired by (trial, target model): ``only_a`` decisions recognised under
    ``a`` but not ``b``, ``only_b`` the reverse, ``n`` all decisions, ``p``.

    Trials of one video subject are correlated, so ``p`` is optimistic."""
    flat_a = [x for name, acc in a["target_accepts"].items() for x in acc]
    flat_b = [y for name in a["target_accepts"] for y in b["target_accepts"][name]]
    only_a, only_b, p = discordant(flat_a, flat_b)
    return {"only_a": only_a, "only_b": only_b, "n": len(flat_a), "p": p}


SCHEMA = "facelab.targeted_anonymization/2"
"""The results dict's version: readers (the notebook's figures) check it and
fall back to a live run when a results file is older."""

C_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
D_GRID = (0.0, 1 / 16, 0.25, 1.0, 4.0, 16.0)  # coarse; refined where a matched TAR level needs it


@dataclass
class Protocol:
    """One authorized model's evaluation on a face set.  Each setting
    (:meth:`clean`, :meth:`ours`, :meth:`ori`, :meth:`baseline`) is one attack
    run per trial, scored once by :func:`evaluate`; the result dict gains
    ``"seconds"`` (wall time of the run).  ``attack``: keyword arguments for
    both methods (``n``, ``seed``, …)."""

    trials: Sequence[Trial]
    crops: torch.Tensor
    labels: Sequence[str]
    emb: EmbeddingCache
    victim: object
    authorized: nn.Module
    targets: Sequence[nn.Module]
    thresholds: Mapping[str, dict]
    attack: dict = field(default_factory=dict)

    @property
    def th_old(self) -> float:
        return float(self.thresholds[self.authorized.name]["th"])

    def _score(self, x: torch.Tensor, t0: float) -> dict:
        r = evaluate(x, self.trials, self.labels, self.emb, authorized=self.authorized, targets=self.targets,
                     thresholds=self.thresholds)
        return {**r, "seconds": time.perf_counter() - t0}

    def clean(self) -> dict:
        """The unprotected photos as gallery samples."""
        t0 = time.perf_counter()
        return self._score(self.crops[[t.protected for t in self.trials]], t0)

    def ours(self, c: float) -> dict:
        """Boundary walking (Algorithm 1) with Eq. 4's th_new(c) around f̄_A."""
        t0 = time.perf_counter()
        x = protect(self.trials, self.crops, victim=self.victim, authorized=self.authorized, method="ours", c=c,
                    th_old=self.th_old, **self.attack)
        return self._score(x, t0)

    def ori(self) -> dict:
        """Fig. 1's (ori): the constraint J(f_A(x0), f_A(x+δ)) ≥ th_old — Formula 2's reference (the original
        photo alone) with the normal threshold, walked by Eq. 5 (c = 0, so th_new = th_old)."""
        t0 = time.perf_counter()
        alone = [Trial(t.identity, t.protected, (t.protected,), t.validation) for t in self.trials]
        x = protect(alone, self.crops, victim=self.victim, authorized=self.authorized, method="ours", c=0.0,
                    th_old=self.th_old, **self.attack)
        return self._score(x, t0)

    def baseline(self, d: float) -> dict:
        """The baseline, Eq. 2 with the fixed weight d (d = 0: the transfer attack of Eq. 1 alone)."""
        t0 = time.perf_counter()
        x = protect(self.trials, self.crops, victim=self.victim, authorized=self.authorized, method="baseline", d=d,
                    **self.attack)
        return self._score(x, t0)


def _brief(r: dict) -> str:
    return (f"TAR {r['tar']:.2f} FAR {r['far_accepted']}/{r['far_n']} targets {r['target_mean']:.2f} "
            f"({r['seconds']:.0f} s)")


def evaluate_authorized(protocol: Protocol, *, cs: Sequence[float] = C_GRID, ds: Sequence[float] = D_GRID,
                        levels: Sequence[float] | None = None, max_refine: int = 2,
                        log: Callable[[str], None] = print) -> dict:
    """Fig. 1 and Table 1 for one authorized model: ours at every c, (ori),
    the baseline over the coarse grid ``ds`` and then up to ``max_refine``
    more d values, each placed by
    :func:`~facelab.experiments.targeted_anonymization_claims.next_baseline_d`
    where a TAR level of ``levels`` is not yet bracketed finely (or not
    reached at all).  Returns the section dict of :data:`SCHEMA` with its
    ``"claims"`` (:func:`~facelab.experiments.targeted_anonymization_claims.section_claims`)."""
    from . import targeted_anonymization_claims as C

    levels = C.LEVELS if levels is None else tuple(levels)
    P = protocol
    t0 = time.perf_counter()
    sec: dict = {"authorized": P.authorized.name, "targets": [m.name for m in P.targets], "th_old": P.th_old}
    sec["clean"] = P.clean()
    sec["ours"] = []
    for c in cs:
        sec["ours"].append({"c": float(c), **P.ours(c)})
        log(f"  ours c={c:g}: {_brief(sec['ours'][-1])}")
    sec["ori"] = P.ori()
    log(f"  (ori): {_brief(sec['ori'])}")
    sec["baseline"] = []
    for d in ds:
        sec["baseline"].append({"d": float(d), "refined": False, **P.baseline(d)})
        log(f"  baseline d={d:g}: {_brief(sec['baseline'][-1])}")
    for _ in range(max_refine):
        d = C.next_baseline_d(sec["ours"], sec["baseline"], levels)
        if d is None:
            break
        sec["baseline"].append({"d": float(d), "refined": True, **P.baseline(d)})
        sec["baseline"].sort(key=lambda r: r["d"])
        log(f"  baseline d={d:g} (refined): {_brief(next(r for r in sec['baseline'] if r['d'] == d))}")
    sec["seconds"] = time.perf_counter() - t0
    sec["runs"] = len(sec["ours"]) + 1 + len(sec["baseline"])
    sec["claims"] = C.section_claims(sec, levels)
    return sec


def run_protocol(faces, models: Mapping[str, nn.Module], *, victims: Sequence[str], authorized: Sequence[str],
                 cs: Sequence[float] = C_GRID, ds: Sequence[float] = D_GRID, levels: Sequence[float] | None = None,
                 max_refine: int = 2, per_identity: int = 8, n: int = 20, seed: int = 0, far: float = 1e-3,
                 log: Callable[[str], None] = print, on_section: Callable[[dict], None] | None = None) -> dict:
    """The §4.2 evaluation on ``faces`` (a face set: ``crops``, ``labels``,
    ``summary()``): the victim(s) fixed, each of ``authorized`` in turn
    authorized, every other model of ``models`` (loaded, by name) an unseen
    target.  Thresholds (th_old and the targets') come from identities
    disjoint from the trials (:func:`disjoint_thresholds`).  Returns the
    results dict of :data:`SCHEMA`; ``on_section(results)`` is called after
    each authorized model (a long run can save partial results)."""
    from . import targeted_anonymization_claims as C

    crops, labels = faces.crops, list(faces.labels)
    trials = make_trials(labels, per_identity=per_identity, seed=seed)
    if not trials:
        raise ValueError("run_protocol: no identity has the 3 photos a trial needs (protected, average, validation)")
    emb = EmbeddingCache(crops)
    ths = disjoint_thresholds(list(models.values()), emb, labels, {t.identity for t in trials}, far)
    victim = [models[v] for v in victims]
    out = {"schema": SCHEMA, "data": faces.summary(), "victims": list(victims), "far": far, "thresholds": ths,
           "levels": list(C.LEVELS if levels is None else levels),
           "params": {"cs": list(map(float, cs)), "ds": list(map(float, ds)), "max_refine": max_refine,
                      "per_identity": per_identity, "n": n, "seed": seed, "eps": 8 / 255, "mu": 0.6, "p": 0.5,
                      "d_ours": 5.0},
           "trials": [{"identity": t.identity, "protected": t.protected, "average": list(t.average),
                       "validation": t.validation} for t in trials],
           "authorized": {}}
    for a in authorized:
        if a in victims:
            continue
        targets = [m for name, m in models.items() if name not in victims and name != a]
        log(f"authorized {a}; targets {[m.name for m in targets]}; th_old {ths[a]['th']:+.4f}")
        P = Protocol(trials, crops, labels, emb, victim, models[a], targets, ths, {"n": n, "seed": seed})
        out["authorized"][a] = evaluate_authorized(P, cs=cs, ds=ds, levels=out["levels"], max_refine=max_refine,
                                                   log=log)
        if on_section is not None:
            on_section(out)
    return out


def load_results(path) -> dict | None:
    """The results dict at ``path`` if it exists and has this module's
    :data:`SCHEMA`, else None (older files lack what the figures need)."""
    return _results.load_results(path, SCHEMA)


def benchmark_results() -> dict | None:
    """The committed benchmark results (``benchmarks/results/targeted_anonymization.json``
    beside the facelab package in a source checkout) if present and of the
    current :data:`SCHEMA`, else None — e.g. when facelab is pip-installed."""
    return _results.committed_results("targeted_anonymization", SCHEMA)


__all__ = ["Trial", "make_trials", "disjoint_thresholds", "protect",
           "evaluate", "paired_sign_test", "SCHEMA", "C_GRID", "D_GRID", "Protocol", "evaluate_authorized",
           "run_protocol", "load_results", "benchmark_results"]
