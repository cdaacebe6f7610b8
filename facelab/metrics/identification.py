"""Open-set identification success of a protection (TIP-IM, Yang et al. 2020, §5.1).

A face-identification system ranks every gallery image by its similarity to a
probe.  For a *protected* probe whose true identity has images in the gallery:

* **Rank-N-T** (targeted): at least one of the top N gallery images belongs
  to one of the target identities;
* **Rank-N-UT** (untargeted): none of the top N gallery images belongs to the
  probe's true identity.

Both are protection success rates: higher means better protected.  Scores
are similarities (higher = more alike), e.g. a model's own
:meth:`FaceModel.similarity`; ranking by cosine equals ranking by the squared
distance of L2-normalised features (the paper's D_f).  Ties are broken by
gallery order (a stable sort), so results are deterministic.
"""
from __future__ import annotations

from typing import Collection, Sequence

import numpy as np
import torch

from .. import validate as V


def _scores(scores) -> np.ndarray:
    s = scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores, np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (probes, gallery), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    return s


def top_n(scores, n: int) -> np.ndarray:
    """Indices of the n most similar gallery images per probe, best first: (P, min(n, G))."""
    s = _scores(scores)
    n = V.integer(n, "n", hint="how many of the best-ranked gallery images count")
    return np.argsort(-s, axis=1, kind="stable")[:, :n]


def _per_probe_sets(sets, n_probes: int) -> list[set]:
    """A single collection of labels for every probe, or one collection per probe."""
    if isinstance(sets, (str, int, np.integer)):
        return [{sets}] * n_probes
    sets = list(sets)
    if len(sets) == n_probes and all(isinstance(t, (set, frozenset, list, tuple, np.ndarray)) for t in sets):
        return [set(np.asarray(t).tolist()) for t in sets]
    one = set(np.asarray(sets).tolist())
    return [one] * n_probes


def rank_n_targeted(scores, gallery_labels: Sequence, target_labels, n: int = 1) -> np.ndarray:
    """Per probe, True when a target identity is among the top ``n`` gallery images (Rank-N-T).

    ``target_labels``: the target identities I (one collection for every
    probe, or one collection per probe).
    """
    top = top_n(scores, n)
    labels = np.asarray(gallery_labels)
    if labels.shape[0] != _scores(scores).shape[1]:
        raise ValueError(f"{labels.shape[0]} gallery labels for {_scores(scores).shape[1]} gallery columns")
    targets = _per_probe_sets(target_labels, top.shape[0])
    return np.array([any(lab in t for lab in labels[row].tolist()) for row, t in zip(top, targets)])


def rank_n_untargeted(scores, gallery_labels: Sequence, true_labels: Sequence, n: int = 1) -> np.ndarray:
    """Per probe, True when none of the top ``n`` gallery images has the probe's true identity (Rank-N-UT)."""
    top = top_n(scores, n)
    labels = np.asarray(gallery_labels)
    true = np.asarray(true_labels)
    if true.shape[0] != top.shape[0]:
        raise ValueError(f"{true.shape[0]} true labels for {top.shape[0]} probes")
    if labels.shape[0] != _scores(scores).shape[1]:
        raise ValueError(f"{labels.shape[0]} gallery labels for {_scores(scores).shape[1]} gallery columns")
    return np.array([not (labels[row] == t).any() for row, t in zip(top, true)])


def similarity_matrix(model, probes: torch.Tensor, gallery: torch.Tensor, batch: int = 64,
                      gallery_embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """(P, G) similarities under ``model``'s own metric (no gradient).

    For a face model (one with an ``input_size``, e.g. a :class:`FaceModel`)
    ``probes`` and ``gallery`` are checked as float [0,1] NCHW image batches."""
    if getattr(model, "input_size", None) is not None:
        probes = V.images(probes, "probes")
        if gallery_embeddings is None:
            gallery = V.images(gallery, "gallery")
    batch = V.integer(batch, "batch")
    with torch.no_grad():
        emb = lambda x: torch.cat([model(x[i : i + batch]) for i in range(0, x.shape[0], batch)])  # noqa: E731
        p = emb(probes)
        g = emb(gallery) if gallery_embeddings is None else gallery_embeddings
        return model.similarity(p[:, None], g[None])


def identification_rates(scores, gallery_labels: Sequence, true_labels: Sequence, target_labels,
                         ns: Collection[int] = (1, 5)) -> dict[str, float]:
    """Mean Rank-N-T and Rank-N-UT over the probes, e.g. ``{"R1-T": 0.4, "R1-UT": 0.9, "R5-T": …}``."""
    out: dict[str, float] = {}
    for n in ns:
        out[f"R{n}-T"] = float(rank_n_targeted(scores, gallery_labels, target_labels, n).mean())
        out[f"R{n}-UT"] = float(rank_n_untargeted(scores, gallery_labels, true_labels, n).mean())
    return out
