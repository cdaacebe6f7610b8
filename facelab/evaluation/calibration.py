"""Verification thresholds computed from labelled faces: every genuine and every impostor pair.

:func:`calibrate_model` scores all pairs of a labelled set with one model and gives its threshold,
TAR and AUC at each FAR, on the model's own similarity scale (:meth:`FaceModel.similarity`).  The
stored table these fill is read by :mod:`facelab.models.calibration`; ``facelab calibrate``
(:mod:`facelab.calibrate_cli`) writes it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import validate as V
from ..metrics.verification import roc_auc, tar_at_far
from ..models.calibration import FARS
from .embeddings import embed

__all__ = ["pair_indices", "pair_similarities", "calibrate_model"]


def pair_indices(labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """All genuine (same label) and impostor (different label) index pairs
    (a, b) with a < b in row-major order, (P, 2) int64 each."""
    _, codes = np.unique(np.asarray(list(labels), dtype=object).astype(str), return_inverse=True)
    a, b = np.triu_indices(len(codes), k=1)
    same = codes[a] == codes[b]
    pairs = np.stack([a, b], axis=1).astype(np.int64)
    return pairs[same], pairs[~same]


def pair_similarities(model, emb: torch.Tensor, pairs: np.ndarray, chunk: int = 1 << 16) -> torch.Tensor:
    """``model.similarity`` of every pair, a chunk at a time: LFW-sized sets
    have millions of impostor pairs, and gathering all their embeddings at
    once would take gigabytes."""
    out = [model.similarity(emb[pairs[k : k + chunk, 0]], emb[pairs[k : k + chunk, 1]])
           for k in range(0, len(pairs), chunk)]
    return torch.cat(out) if out else torch.empty(0)


def calibrate_model(model, images: torch.Tensor, labels: Sequence, fars: Sequence[float] = FARS) -> dict:
    """Thresholds, TAR and AUC of one model from all pairs of a labelled set."""
    images = V.images(images, "images")
    if len(labels) != images.shape[0]:
        raise ValueError(f"labels: one label per image is needed, got {len(labels)} for {images.shape[0]} images")
    fars = [V.number(f, "fars", low=0.0, high=1.0, high_open=True) for f in fars]
    emb = embed(model, images, batch=32).cpu()
    genuine, impostor = pair_indices(labels)
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("calibration needs at least one genuine and one impostor pair")
    g = pair_similarities(model, emb, genuine)
    i = pair_similarities(model, emb, impostor)
    out = {"metric": model.metric, "thresholds": {}, "tar": {}, "auc": round(roc_auc(g, i), 4),
           "impostor_mean": round(float(i.mean()), 4), "genuine_mean": round(float(g.mean()), 4)}
    for far in fars:
        tar, th = tar_at_far(g, i, far)
        out["thresholds"][f"{far:g}"] = round(th, 6)
        out["tar"][f"{far:g}"] = round(tar, 4)
    return out
