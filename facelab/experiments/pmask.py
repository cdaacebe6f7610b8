"""PMask's evaluation (§6) on a facelab identity set.

Protocol (:func:`make_split`): every identity with two or more photos is a
protected person ℓ in turn; a seeded split gives ℓ some *probe* photos
(𝒟_ℓ^P, never in the gallery) and some *gallery* photos (𝒟_ℓ^G, the photos
PMask masks); ℓ's remaining photos are left out, so the gallery holds only
the masked ones.  The intruder's gallery is every identity's gallery photos
plus every single-photo identity (distractors).  One person is protected at a
time (Eq. 2), the others' photos stay clean.

A probe is *protected* against a model when its nearest gallery image under
that model's similarity (Eq. 1) belongs to someone else; PSR (protection
success rate) is the fraction of probes protected.  PSR of the clean gallery
is the chance-level reference (how often the intruder already fails).

Focal diversity (:func:`pool_failures`): a model "fails" on a validation
photo when leave-one-out identification over the whole set (every other
photo as gallery) returns the wrong identity.  On the offline set that
validation data is the same faces as the evaluation (stated in every table).

The benchmark (``python -m benchmarks pmask``) runs this protocol once per
seed: the seed draws :func:`make_split` and is handed to every method
:func:`protect` runs (``seed=``); the teams are ranked once, before any seed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import steps as _steps
from ..evaluation import embed as _embed
from ..methods.fawkes import fawkes, select_target
from ..methods.pmask import pmask
from ..methods.tip_im import tip_im
from ..metrics.quality import psnr, ssim
from . import results as _results

#: faces per forward when this protocol embeds a set (part of its results' recipe)
EMBED_BATCH = 64

SCHEMA = 3
"""Version of the results dict ``python -m benchmarks pmask`` writes (``pmask.json``): 3 measures the claims once per
seed — what every seed shares at the top (settings, focal-diversity ranking and teams, machine), ``"seeds"``, and
``"per seed"`` {seed: its split, clean outcomes, every run's per-probe outcomes under ``"runs"``, ``"elapsed"``}
(see :mod:`facelab.experiments.pmask_claims`); 2 held one draw, its runs at the top."""


@dataclass
class Split:
    """Per protected identity: gallery (masked) and probe photo indices; the intruder's gallery."""

    protected: dict[str, tuple[list[int], list[int]]]  # name -> (gallery, probes)
    gallery: list[int]
    labels: list[str]

    @property
    def probes(self) -> list[int]:
        return [p for _, ps in self.protected.values() for p in ps]

    @property
    def faces(self) -> list[int]:
        return [g for gs, _ in self.protected.values() for g in gs]

    def describe(self) -> str:
        return (f"{len(self.protected)} protected identities, {len(self.faces)} masked gallery photos, "
                f"{len(self.probes)} probes; intruder gallery of {len(self.gallery)} photos "
                f"({len({self.labels[i] for i in self.gallery})} identities)")


def make_split(labels: Sequence[str], max_gallery: int = 2, max_probes: int = 2, seed: int = 0,
               identities: Sequence[str] | None = None) -> Split:
    """Seeded gallery/probe split (see the module doc): per identity with n ≥ 2
    photos, ⌊n/2⌋ probes (at most ``max_probes``, at least 1) and up to
    ``max_gallery`` gallery photos from the rest."""
    labels = list(labels)
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(labels))
    members = {n: [i for i, l in enumerate(labels) if l == n] for n in names}
    multi = [n for n in names if len(members[n]) >= 2 and (identities is None or n in identities)]
    protected, gallery = {}, []
    for n in names:
        m = members[n]
        if n not in multi:
            if len(m) == 1:
                gallery.extend(m)
            continue
        order = [m[k] for k in rng.permutation(len(m))]
        n_probe = max(1, min(max_probes, len(m) // 2))
        probes, gal = order[:n_probe], order[n_probe : n_probe + max_gallery]
        protected[n] = (sorted(gal), sorted(probes))
        gallery.extend(gal)
    return Split(protected, sorted(gallery), labels)


def pool_failures(models: Sequence[nn.Module], crops: torch.Tensor, labels: Sequence[str]) -> np.ndarray:
    """Boolean (n_models, n_samples): model fails to identify the photo by leave-one-out
    rank-1 over the whole set (samples: photos whose identity has another photo)."""
    labels = np.array(labels)
    counts = {l: int((labels == l).sum()) for l in set(labels)}
    samples = [i for i, l in enumerate(labels) if counts[l] >= 2]
    out = np.zeros((len(models), len(samples)), dtype=bool)
    for r, m in enumerate(models):
        e = _embed(m, crops, batch=EMBED_BATCH)
        s = m.similarity(e[samples][:, None], e[None])
        s[torch.arange(len(samples)), torch.as_tensor(samples)] = -float("inf")
        out[r] = labels[s.argmax(1).numpy()] != labels[samples]
    return out


def validation_failures(pool: Sequence[nn.Module], crops: torch.Tensor, labels: Sequence[str], far: float = 1e-3,
                        per_identity: int = 12) -> tuple[np.ndarray, int]:
    """Focal diversity's validation data, denser in failures than :func:`pool_failures`:
    genuine pairs of the set (up to ``per_identity`` per identity, so the video subjects
    do not dominate); a model fails on a pair when its similarity is below its
    calibrated threshold at FAR ``far``.  Returns (failures (n_models, n_pairs), n_pairs)."""
    import itertools

    lab = np.array(labels)
    pairs = []
    for n in dict.fromkeys(labels):
        idx = np.flatnonzero(lab == n)
        pairs += list(itertools.combinations(idx.tolist(), 2))[:per_identity]
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    out = []
    for m in pool:
        e = _embed(m, crops, batch=EMBED_BATCH)
        out.append((m.similarity(e[a], e[b]) < m.threshold(far)).numpy())
    return np.array(out), len(pairs)


def psr(outcomes: dict[str, np.ndarray], models: Sequence[str] | None = None) -> float:
    """Mean protection success rate over ``models`` (default all) from :func:`identify`'s outcomes."""
    names = list(outcomes) if models is None else list(models)
    return float(np.mean([outcomes[n].mean() for n in names])) if names else float("nan")


@dataclass
class Run:
    """One method's protection of every masked photo, and its evaluation."""

    name: str
    protected: torch.Tensor  # (n_faces, 3, H, W) in split.faces order
    iterations: list[int]
    seconds: list[float]
    converged: list[bool] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU time per face (less load-sensitive)
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)  # model -> bool per probe (True = protected)
    ssim: np.ndarray | None = None
    psnr: np.ndarray | None = None


def identify(split: Split, crops: torch.Tensor, models: Sequence[nn.Module], masked: torch.Tensor | None,
             gallery_emb: dict | None = None) -> dict[str, np.ndarray]:
    """Per model, per probe (split.probes order): True when the probe is *not* identified as its
    own identity against the gallery with that identity's photos replaced by ``masked``
    (``masked`` None: the clean gallery)."""
    labels = np.array(split.labels)
    gal = list(split.gallery)
    gal_labels = labels[gal]
    pos = {g: k for k, g in enumerate(gal)}
    face_pos = {f: k for k, f in enumerate(split.faces)}
    out = {}
    for m in models:
        base = gallery_emb[m.name] if gallery_emb else _embed(m, crops[gal], batch=EMBED_BATCH)
        pe = _embed(m, crops[split.probes], batch=EMBED_BATCH)
        masked_e = _embed(m, masked, batch=EMBED_BATCH) if masked is not None else None
        res, k = [], 0
        for name, (gfaces, probes) in split.protected.items():
            g = base.clone()
            if masked_e is not None:
                for f in gfaces:
                    g[pos[f]] = masked_e[face_pos[f]]
            s = m.similarity(pe[k : k + len(probes)][:, None], g[None])
            res.extend(gal_labels[s.argmax(1).numpy()] != name)
            k += len(probes)
        out[m.name] = np.array(res, dtype=bool)
    return out


def protect(split: Split, crops: torch.Tensor, method: str, team: Sequence[nn.Module], *, log=None,
            gallery_emb: dict | None = None, **kw) -> Run:
    """Protect every masked photo one at a time (a face per run, as timed per face).

    ``method``: ``"pmask"`` (kw to :func:`facelab.methods.pmask.pmask`),
    ``"fawkes"`` (kw to :func:`facelab.methods.fawkes.fawkes`; the target
    identity chosen per person by :func:`select_target` among the other
    gallery identities) or ``"tip_im"`` (kw to :func:`facelab.methods.tip_im`;
    targets: one photo of each of ``n_targets`` other gallery identities).
    A ``seed`` in ``kw`` reaches the method (and, for Fawkes, :func:`select_target` too).
    ``gallery_emb``: {model: embeddings of ``split.gallery``} to reuse (PMask's 𝒩 search)."""
    labels = split.labels
    outs, its, secs, conv, cpu = [], [], [], [], []
    n_targets = kw.pop("n_targets", 5)
    for name, (gfaces, _) in split.protected.items():
        others = [i for i in split.gallery if labels[i] != name]
        ref = crops[gfaces]
        other_ids = list(dict.fromkeys(labels[i] for i in others))
        if method == "fawkes":  # one target per person, from precomputed gallery embeddings when given
            cands = [crops[[i for i in others if labels[i] == o]] for o in other_ids]
            cand_emb = None
            if gallery_emb:
                cand_emb = [{k: v[[split.gallery.index(i) for i in others if labels[i] == o]] for k, v in gallery_emb.items()}
                            for o in other_ids]
            target = cands[select_target(ref, cands, team, seed=kw.get("seed", 0), embeddings=cand_emb)][:1]
        for f in gfaces:
            x = crops[f : f + 1]
            t0, c0 = time.perf_counter(), time.process_time()
            if method == "pmask":
                pos = [split.gallery.index(i) for i in others]
                pre = {k: v[pos] for k, v in gallery_emb.items()} if gallery_emb else None
                last = _steps.run(pmask(x, crops[others], team, reference=ref, others_embeddings=pre, **kw))
                conv.append(bool(last.state["converged"][0]))
                its.append(int(last.i))
            elif method == "fawkes":
                last = _steps.run(fawkes(x, target, team, **kw))
                its.append(int(last.i))
            elif method == "tip_im":
                tg = [next(i for i in others if labels[i] == o) for o in other_ids[:n_targets]]
                last = _steps.run(tip_im(x, crops[tg], list(team), **kw))
                its.append(int(last.i))
            else:
                raise ValueError(f"method must be pmask, fawkes or tip_im; got {method!r}")
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            outs.append(last.x)
            if log:
                log(f"  {method} {name} face {f}: {its[-1]} it, {secs[-1]:.1f}s")
    x = torch.cat(outs)
    x0 = crops[split.faces]
    return Run(method, x, its, secs, conv, cpu, ssim=ssim(x, x0).numpy(), psnr=psnr(x, x0).clamp(max=99).numpy())


def evaluate(run: Run, split: Split, crops: torch.Tensor, models: Sequence[nn.Module], gallery_emb=None) -> Run:
    run.outcomes = identify(split, crops, models, run.protected, gallery_emb)
    return run


LogFn = Callable[[str], None] | None


def load_results(path) -> dict | None:
    """The results dict at ``path`` if it exists and has this module's :data:`SCHEMA`, else None
    (an older file lacks what the page shows)."""
    return _results.load_results(path, SCHEMA)


def benchmark_results() -> dict | None:
    """The committed benchmark results (``benchmarks/results/pmask.json`` beside the facelab package
    in a source checkout) if present and of the current :data:`SCHEMA`, else None — e.g. when facelab
    is pip-installed."""
    return _results.committed_results("pmask", SCHEMA)
