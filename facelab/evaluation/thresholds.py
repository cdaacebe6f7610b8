"""Each model's verification threshold at a false-accept rate, and where it came from.

A stored calibration (``facelab calibrate``, computed on a large labelled set) is preferred;
without one, the threshold is computed here from every impostor pair of the given face set, and
says so: on a small set a FAR below 1/#pairs cannot be resolved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..metrics.verification import threshold_at_far
from ..models.calibration import NotCalibratedError, table
from .embeddings import embed

__all__ = ["Threshold", "resolve_thresholds"]


@dataclass(frozen=True)
class Threshold:
    """``value`` at ``far``; ``source`` in words; ``impostor_pairs`` behind it (None: not recorded)."""

    value: float
    far: float
    source: str
    impostor_pairs: int | None

    def __float__(self) -> float:
        return self.value


def _calibrated(model: nn.Module, far: float) -> Threshold:
    th = float(model.threshold(far))
    data = table()["models"].get(model.name, {}).get("data", {})
    return Threshold(th, far, f"calibrated ({data.get('set', 'stored')} set)", data.get("impostor_pairs"))


def _computed(model: nn.Module, far: float, face_set, batch: int) -> Threshold:
    e = embed(model, face_set.crops, batch)
    with torch.no_grad():
        s = model.similarity(e[:, None], e[None])
    ids = torch.as_tensor(face_set.ids)
    i, j = torch.triu_indices(len(ids), len(ids), 1)
    impostor = s[i, j][ids[i] != ids[j]]
    if impostor.numel() == 0:
        raise ValueError("the face set has no impostor pair (one identity only): no threshold can be computed")
    return Threshold(threshold_at_far(impostor, far), far,
                     f"computed on this set's {impostor.numel()} impostor pairs (no stored calibration)",
                     int(impostor.numel()))


def resolve_thresholds(models: Sequence[nn.Module], far: float, face_set=None, *, batch: int = 64) -> dict[str, Threshold]:
    """Per model name, its :class:`Threshold` at ``far``: the stored calibration when the cache
    has one at this FAR, else computed on ``face_set`` (anything with ``crops`` and ``ids``,
    e.g. :func:`facelab.faces.offline_set`; default: the offline set).  Only a missing
    calibration falls back; any other error is raised."""
    out = {}
    for m in models:
        try:
            out[m.name] = _calibrated(m, far)
        except NotCalibratedError:
            if face_set is None:
                from ..faces import offline_set

                face_set = offline_set(log=lambda *a: None)
            out[m.name] = _computed(m, far, face_set, batch)
    return out
