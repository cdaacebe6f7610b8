"""PMT's evaluation (Wang et al., §6) on a facelab identity set.

:func:`make_protocol` picks the faces to obfuscate ("probes") and the pairs
Eq. 10's strict accuracy is scored on: probes come one per identity with two
or more photos (round-robin, so the two video subjects do not dominate);
each probe is paired with up to ``genuine`` other photos of its identity
(y = 1) and ``impostors`` photos of other identities (y = 0).  Pairs of one
probe share x̃₁ and are correlated; every table says so.

For the reconstruction attacks, the probes whose identity has no video
(``recon_test``) are held out: RecFace trains on every face of the other
identities plus extra video frames, never on a test identity.

Statistics (:func:`sign_test`, :func:`paired_summary`): exact two-sided sign
tests on paired outcomes (decisions of one pair and model under two
settings; per-image values under two conditions) and percentile bootstrap
CIs of the mean paired difference.

``benchmarks/pmt.py`` runs this protocol once per seed (``seed`` of
:func:`make_protocol` and of PMT) and writes its results as a JSON dict of
:data:`SCHEMA` (every seed's per-pair decisions and per-image values, with the
run's settings, command and machine); :func:`load_results` /
:func:`benchmark_results` read it back.  The claims' verdicts on that dict are computed in
:mod:`facelab.experiments.pmt_claims` and worded, with the whole results
page, in :mod:`facelab.experiments.pmt_report`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .. import steps as _steps
from ..evaluation import embed
from ..methods.pmt import pmt
from ..metrics.claims import discordant, paired_bootstrap_ci, paired_signs
from ..metrics.privacy import strict_decisions
from . import results as _results

__all__ = ["Protocol", "make_protocol", "obfuscate", "reference_embeddings", "acc_decisions",
           "paired_decisions", "paired_summary", "recface_data", "SCHEMA", "load_results", "benchmark_results"]

SCHEMA = "facelab.pmt/2"
"""The version of the results dict ``benchmarks/pmt.py`` writes (``"schema"``):
readers check it.  2: one record per seed under ``"per seed"`` (``"seeds"``
lists them; :func:`facelab.experiments.pmt_claims.seed_results` is one seed's
view).  Files of version 1 (one seed, its records at the top level) and
files without a version (written before the report moved into
:mod:`facelab.experiments.pmt_report`) lack what the page needs."""


@dataclass
class Protocol:
    probes: list[int]
    pair_probe: list[int]      # position in probes of each pair's x1
    pair_partner: list[int]    # crop index of each pair's x2
    pair_y: list[int]
    recon_test: list[int]      # positions in probes held out from RecFace training
    recon_train: list[int]     # crop indices RecFace may train on
    note: str = ""

    def describe(self, labels: Sequence[str]) -> str:
        ids = {labels[p] for p in self.probes}
        g = sum(self.pair_y)
        return (f"{len(self.probes)} probes of {len(ids)} identities; {len(self.pair_y)} pairs "
                f"({g} genuine, {len(self.pair_y) - g} impostor); reconstruction test: {len(self.recon_test)} probes "
                f"of identities absent from RecFace's {len(self.recon_train)} training faces (+ video frames).")


def make_protocol(labels: Sequence[str], sources: Sequence[str] | None = None, n_probes: int = 8, genuine: int = 2,
                  impostors: int = 4, seed: int = 0) -> Protocol:
    """Seeded probes and pairs (see the module doc).  ``sources`` marks video
    identities (a source naming an ``.mp4`` or a frame) so they are kept out of
    the reconstruction test."""
    rng = np.random.default_rng(seed)
    labels = list(labels)
    arr = np.array(labels)
    multi = [n for n in dict.fromkeys(labels) if (arr == n).sum() >= 2]
    if len(multi) < 2:
        raise ValueError("the set needs at least two identities with two or more photos")
    video = set()
    if sources is not None:
        video = {labels[i] for i, s in enumerate(sources) if ".mp4" in s or "frame" in s}
    order = [multi[i] for i in rng.permutation(len(multi))]
    members = {n: list(rng.permutation(np.flatnonzero(arr == n))) for n in multi}
    probes: list[int] = []
    while len(probes) < n_probes and any(members[n] for n in order):
        for n in order:
            if len(probes) < n_probes and len(members[n]) >= 2:
                probes.append(int(members[n].pop(0)))
    pp, partner, ys = [], [], []
    for k, p in enumerate(probes):
        same = [int(i) for i in np.flatnonzero(arr == labels[p]) if i != p]
        other = [int(i) for i in np.flatnonzero(arr != labels[p])]
        for j in [same[i] for i in rng.permutation(len(same))[:genuine]]:
            pp.append(k), partner.append(j), ys.append(1)
        for j in [other[i] for i in rng.permutation(len(other))[:impostors]]:
            pp.append(k), partner.append(j), ys.append(0)
    test = [k for k, p in enumerate(probes) if labels[p] not in video]
    test_ids = {labels[probes[k]] for k in test}
    train = [i for i in range(len(labels)) if labels[i] not in test_ids]
    return Protocol(probes, pp, partner, ys, test, train)


def obfuscate(x: torch.Tensor, authorized, **kw) -> torch.Tensor:
    """PMT(x), the last step of :func:`facelab.methods.pmt.pmt`."""
    return _steps.run(pmt(x, authorized, **kw)).x


def reference_embeddings(models, crops: torch.Tensor, batch: int = 32) -> dict[str, torch.Tensor]:
    """Every crop's embedding per model, computed once: {model: (N, d)}."""
    return {m.name: embed(m, crops, batch) for m in models}


def acc_decisions(models, x_tilde: torch.Tensor, protocol: Protocol, thresholds: dict[str, float],
                  reference: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Eq. 10 decision of every pair for every model, {model: bool (pairs,)}.
    ``x_tilde``: the obfuscated probes, in ``protocol.probes`` order; ``reference``:
    :func:`reference_embeddings` of the crops the protocol indexes."""
    probes = torch.as_tensor(protocol.probes)
    pp, partner = torch.as_tensor(protocol.pair_probe), torch.as_tensor(protocol.pair_partner)
    out = {}
    with torch.no_grad():
        for m in models:
            e_t = m(x_tilde)
            ref = reference[m.name]
            out[m.name] = strict_decisions(m, e_t[pp], ref[probes][pp], ref[partner], protocol.pair_y,
                                           thresholds[m.name]).cpu().numpy()
    return out


# -- statistics -------------------------------------------------------------------------


def paired_decisions(a: np.ndarray, b: np.ndarray) -> dict:
    """Sign test of two settings' paired bool outcomes: rates, discordant counts, p."""
    only_a, only_b, p = discordant(a, b)
    return {"a": float(np.mean(a)), "b": float(np.mean(b)), "only_a": only_a, "only_b": only_b, "n": int(np.size(a)),
            "p": p}


def paired_summary(a: Sequence[float], b: Sequence[float], n_boot: int = 10000, seed: int = 0) -> dict:
    """Paired continuous values: means, mean difference a − b with a 95 %
    percentile bootstrap CI, and the exact sign test of the per-item differences."""
    diff, lo, hi = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
    higher, lower, p = paired_signs(a, b)
    return {"a": float(np.mean(a)), "b": float(np.mean(b)), "diff": diff, "ci": (lo, hi), "a_higher": higher,
            "b_higher": lower, "n": len(a), "p": p}


# -- helpers shared by the benchmark and the notebook --------------------------------------


def recface_data(data, protocol: Protocol, per_video: int = 24) -> tuple[torch.Tensor, str]:
    """RecFace's training faces for ``protocol`` (every face of the non-test identities plus
    :func:`facelab.methods.recface.video_frames`) and the description that keys its checkpoint."""
    from ..methods.recface import video_frames

    frames = video_frames(per_video)
    faces = torch.cat([data.crops[protocol.recon_train], frames])
    name = "offline set" if str(data.name).startswith("offline") else f"face set {data.name}"
    note = (f"{name} minus the {len(protocol.recon_test)} test identities ({len(protocol.recon_train)} faces) "
            f"+ {len(frames)} extra video frames" + ("" if name == "offline set" else " of the offline set"))
    return faces, note


# -- the benchmark's results ----------------------------------------------------------------


def load_results(path) -> dict | None:
    """The results dict at ``path`` if it exists and has this module's :data:`SCHEMA`, else None
    (an older file lacks what the page shows)."""
    return _results.load_results(path, SCHEMA)


def benchmark_results() -> dict | None:
    """The committed benchmark results (``benchmarks/results/pmt.json`` beside the facelab package
    in a source checkout) if present and of the current :data:`SCHEMA`, else None — e.g. when facelab
    is pip-installed."""
    return _results.committed_results("pmt", SCHEMA)
