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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .. import steps as _steps
from ..methods.pmt import pmt
from ..metrics.claims import sign_test
from ..metrics.privacy import strict_decisions

__all__ = ["Protocol", "make_protocol", "obfuscate", "reference_embeddings", "acc_decisions", "sign_test",
           "paired_decisions", "paired_summary", "verdict", "recface_data", "architecture_figure"]


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
    out = {}
    with torch.no_grad():
        for m in models:
            out[m.name] = torch.cat([m(crops[i:i + batch]) for i in range(0, len(crops), batch)])
    return out


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
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    return {"a": float(a.mean()), "b": float(b.mean()), "only_a": only_a, "only_b": only_b, "n": int(a.size),
            "p": sign_test(only_a, only_b)}


def paired_summary(a: Sequence[float], b: Sequence[float], n_boot: int = 10000, seed: int = 0) -> dict:
    """Paired continuous values: means, mean difference a − b with a 95 %
    percentile bootstrap CI, and the exact sign test of the per-item differences."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1) if len(d) else np.array([np.nan])
    return {"a": float(a.mean()), "b": float(b.mean()), "diff": float(d.mean()),
            "ci": (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))),
            "a_higher": int((d > 0).sum()), "b_higher": int((d < 0).sum()), "n": int(len(d)),
            "p": sign_test(int((d > 0).sum()), int((d < 0).sum()))}


def verdict(effect: float, p: float, alpha: float = 0.05) -> str:
    """The project's wording (:func:`facelab.metrics.claims.verdict`) for a claim
    whose predicted direction is ``effect > 0``, decided by the exact sign test's ``p``."""
    from ..metrics.claims import verdict as worded

    return worded(effect, p=p, alpha=alpha)


# -- helpers shared by the benchmark and the notebook --------------------------------------


def recface_data(data, protocol: Protocol, per_video: int = 24) -> tuple[torch.Tensor, str]:
    """RecFace's training faces for ``protocol`` (every face of the non-test identities plus
    :func:`facelab.methods.recface.video_frames`) and the description that keys its checkpoint."""
    from ..methods.recface import video_frames

    frames = video_frames(per_video)
    faces = torch.cat([data.crops[protocol.recon_train], frames])
    note = (f"offline set minus the {len(protocol.recon_test)} test identities ({len(protocol.recon_train)} faces) "
            f"+ {len(frames)} extra video frames")
    return faces, note


def architecture_figure():
    """Fig. 1 of the paper as a picture: (A) the user uploads shallow features E_c(x),
    (B) the user uploads an image; PMT sits on the user side in both."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, axes = plt.subplots(2, 1, figsize=(10, 4.6))
    rows = [
        ("A · upload features", [("photo x", "#dde"), ("PMT → x̃", "#cfc"), ("shallow model E_c\n(user side)", "#ffd"),
                                  ("features z̃ = E_c(x̃)", "#eee"), ("server model E_s", "#fdd"), ("identity", "#eee")],
         "attacker sees z̃ → white-/black-box reconstruction"),
        ("B · upload images", [("photo x", "#dde"), ("PMT → x̃", "#cfc"), ("upload x̃", "#eee"),
                               ("full model f = E_s∘E_c\n(server)", "#fdd"), ("identity", "#eee")],
         "attacker sees x̃ → other face models (data abuse), attribute models"),
    ]
    for ax, (title, boxes, threat) in zip(axes, rows):
        ax.set_xlim(0, len(boxes) * 2)
        ax.set_ylim(0, 2)
        ax.axis("off")
        ax.set_title(title, loc="left", fontsize=11)
        for k, (label, colour) in enumerate(boxes):
            ax.add_patch(FancyBboxPatch((k * 2 + 0.1, 0.8), 1.6, 0.9, boxstyle="round,pad=0.05", fc=colour, ec="#555"))
            ax.text(k * 2 + 0.9, 1.25, label, ha="center", va="center", fontsize=8.5)
            if k:
                ax.annotate("", xy=(k * 2 + 0.08, 1.25), xytext=(k * 2 - 0.28, 1.25),
                            arrowprops=dict(arrowstyle="->", color="#333"))
        ax.text(0.1, 0.3, "threat: " + threat, fontsize=9, color="#a00")
    fig.tight_layout()
    return fig
