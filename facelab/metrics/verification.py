"""Verification metrics on similarity scores (higher = more alike; a pair is
accepted when its score is >= the threshold)."""
from __future__ import annotations

import numpy as np
import torch

from .. import validate as V


def _np(scores) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    a = np.asarray(scores, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("no scores given")
    if not np.isfinite(a).all():
        raise ValueError(f"scores contain {int((~np.isfinite(a)).sum())} NaN or infinite value(s); "
                         "check the embeddings they came from")
    return a


def threshold_at_far(impostor, far: float) -> float:
    """The lowest threshold accepting at most ``far`` of the impostor pairs.

    With n impostor scores, at most ⌊far·n⌋ are accepted; for ``far`` < 1/n
    the threshold sits just above the largest impostor score, so the
    requested FAR cannot be resolved more finely than 1/n — report n with it.
    """
    far = V.number(far, "far", low=0.0, high=1.0, high_open=True, hint="a false-accept rate, e.g. 0.01")
    imp = np.sort(_np(impostor))[::-1]
    k = int(np.floor(far * imp.size))
    return float(np.nextafter(imp[k], np.inf))


def tar_at_far(genuine, impostor, far: float) -> tuple[float, float]:
    """(TAR, threshold): the fraction of genuine pairs accepted at the threshold of :func:`threshold_at_far`."""
    th = threshold_at_far(impostor, far)
    return float((_np(genuine) >= th).mean()), th


def roc_auc(genuine, impostor) -> float:
    """Probability that a random genuine pair outscores a random impostor pair (ties count half)."""
    g, i = _np(genuine), _np(impostor)
    order = np.argsort(np.concatenate([g, i]), kind="mergesort")
    ranks = np.empty(order.size)
    values = np.concatenate([g, i])[order]
    # average ranks over ties (vectorised: LFW calibration has millions of pairs)
    _, start, counts = np.unique(values, return_index=True, return_counts=True)
    ranks[order] = np.repeat(start + (counts + 1) / 2, counts)
    return float((ranks[: g.size].sum() - g.size * (g.size + 1) / 2) / (g.size * i.size))
