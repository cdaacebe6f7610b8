"""Per-model verification thresholds at stated false-accept rates.

A single threshold shared across models is wrong: impostor similarities sit
near 0.93 (cosine) for the dlib model, near 0.4 for faceres and near 0.1 for
the rest (docs/models.md).  ``facelab calibrate`` scores every genuine and
every impostor pair of a stated face set with each model and stores, per
model, the threshold at each FAR together with the data it came from.
"""
from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..cache import cache_dir
from ..metrics.verification import roc_auc, tar_at_far
from .zoo import model_device

PACKAGED = Path(__file__).with_name("thresholds.json")
FARS = (0.1, 0.01, 0.001)


class NotCalibratedError(KeyError):
    """No stored threshold for this model/FAR."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


def _files() -> list[Path]:
    return [p for p in (cache_dir() / "thresholds.json", PACKAGED) if p.exists()]


@lru_cache(maxsize=None)
def _read(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text())


def table() -> dict:
    """Merged calibration table (a user file in the cache dir overrides the packaged one)."""
    merged: dict = {"models": {}}
    for p in reversed(_files()):
        data = _read(str(p), p.stat().st_mtime)
        merged["models"].update(data.get("models", {}))
    return merged


def threshold(model: str, far: float = 0.01) -> float:
    entry = table()["models"].get(model)
    if entry is None:
        raise NotCalibratedError(
            f"model {model!r} has no calibrated threshold; run `facelab calibrate --models {model}` "
            "(it writes thresholds.json in the facelab cache)"
        )
    key = f"{far:g}"
    if key not in entry["thresholds"]:
        raise NotCalibratedError(f"{model} is calibrated at FAR {sorted(entry['thresholds'])}, not {key}")
    return float(entry["thresholds"][key])


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


@torch.no_grad()
def embed(model, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    dev = model_device(model)
    return torch.cat([model(images[k : k + batch].to(dev)).cpu() for k in range(0, len(images), batch)])


def calibrate_model(model, images: torch.Tensor, labels: Sequence, fars: Sequence[float] = FARS) -> dict:
    """Thresholds, TAR and AUC of one model from all pairs of a labelled set."""
    emb = embed(model, images)
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


def calibrate_command(args) -> int:
    """``facelab calibrate``: a clear message and exit code 1, not a traceback,
    when the data is missing (no internet for LFW, an unfetched cache)."""
    from ..cache import MissingCacheError, NeedsInternetError

    try:
        return _calibrate(args)
    except (NeedsInternetError, MissingCacheError) as e:
        import sys

        print(f"facelab calibrate: {e}", file=sys.stderr)
        return 1


def _calibrate(args) -> int:
    from ..faces import lfw, offline_set
    from . import available, load

    min_faces = getattr(args, "min_faces", 20)
    faceset = offline_set() if args.data == "offline" else lfw(min_faces_per_person=min_faces)
    names = args.models or available(include_optional=True)
    labels = list(faceset.labels)
    genuine, impostor = pair_indices(labels)
    data = {
        "set": args.data, "crop_size": int(faceset.crops.shape[-1]), "images": len(labels), "identities": len(set(labels)),
        "genuine_pairs": int(len(genuine)), "impostor_pairs": int(len(impostor)),
        "pairs": "all genuine and all impostor pairs of the set",
        "date": date.today().isoformat(),
        "command": f"facelab calibrate --data {args.data}" + (f" --min-faces {min_faces}" if args.data == "lfw" else ""),
    }
    fresh = {}
    for name in names:
        print(f"calibrating {name} …", flush=True)
        fresh[name] = calibrate_model(load(name), faceset.crops, labels) | {"data": data}
    out = Path(args.out) if args.out else cache_dir() / "thresholds.json"
    previous = json.loads(out.read_text()).get("models", {}) if out.exists() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"models": previous | fresh}, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    for name, e in fresh.items():
        print(f"{name:16s} AUC {e['auc']:.3f}  " + "  ".join(
            f"FAR {k}: th {v:+.3f} TAR {e['tar'][k]:.2f}" for k, v in e["thresholds"].items()))
    print(f"written to {out}")
    return 0
