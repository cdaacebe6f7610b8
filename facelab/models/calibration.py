"""Per-model verification thresholds at stated false-accept rates.

A single threshold shared across models is wrong: each model scores pairs with
its own metric (:meth:`FaceModel.similarity`: cosine, or −L2 distance for
faceapi-resnet, the dlib port), and even among the cosine models the mean
impostor similarity on the offline set ranges from about 0.03 (mobileface,
mobilefacenet) to about 0.4 (faceres, faceres-deep); faceapi-resnet's
impostors sit near −0.55 on its −L2 scale (docs/models.md).  ``facelab
calibrate`` scores every genuine and every impostor pair of a stated face set
with each model and stores, per model, the threshold at each FAR — on that
model's own similarity scale, named by its ``"metric"`` entry (``"euclidean"``:
thresholds are −L2 distances) — together with the data it came from.

The table is written atomically.  ``--out`` updates a thresholds file written
by facelab and refuses any other existing file unless ``--force``.
"""
from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import validate as V
from ..cache import atomic_write, cache_dir
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


WRITTEN_BY = "facelab calibrate"


@lru_cache(maxsize=None)
def _read(path: str, mtime: float) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as e:
        raise ValueError(f"the thresholds file {path} is not valid JSON ({e}); delete it or run "
                         "`facelab calibrate` again to rewrite it") from None
    if not _is_thresholds_table(data):
        raise ValueError(f"{path} is not a facelab thresholds table (no \"models\" entry with thresholds); "
                         "delete it or run `facelab calibrate` again to rewrite it")
    return data


def _is_thresholds_table(data) -> bool:
    """True for what ``facelab calibrate`` writes: {"models": {name: {"thresholds": {...}, ...}}}."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return False
    return all(isinstance(e, dict) and isinstance(e.get("thresholds"), dict) for e in data["models"].values())


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
    images = V.images(images, "images")
    if len(labels) != images.shape[0]:
        raise ValueError(f"labels: one label per image is needed, got {len(labels)} for {images.shape[0]} images")
    fars = [V.number(f, "fars", low=0.0, high=1.0, high_open=True) for f in fars]
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
    """``facelab calibrate``: one line on stderr and exit code 1, not a
    traceback, for what the user can fix: missing data (no internet for LFW,
    an unfetched or damaged cache), an unknown model, an ``--out`` file that
    facelab did not write."""
    from ..cache import MissingCacheError, NeedsInternetError

    try:
        return _calibrate(args)
    except (NeedsInternetError, MissingCacheError, FileExistsError, IsADirectoryError, NotADirectoryError, ValueError) as e:
        import sys

        print(f"facelab calibrate: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1


def _previous_table(out: Path, force: bool) -> dict:
    """The models already in ``out`` (kept and updated), or {} for a new file;
    refuses to replace a file that facelab did not write unless ``force``."""
    if not out.exists():
        return {}
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give a file name, e.g. {out / 'thresholds.json'}")
    try:
        data = json.loads(out.read_text())
    except (ValueError, UnicodeDecodeError):
        data = None
    if _is_thresholds_table(data):
        return data["models"]
    if force:
        return {}
    raise FileExistsError(f"--out {out} exists and is not a thresholds file written by facelab calibrate; "
                          "it was left untouched. Choose another --out, or pass --force to replace it")


def _calibrate(args) -> int:
    from ..faces import lfw, offline_set
    from . import available, load

    min_faces = V.integer(getattr(args, "min_faces", 20), "--min-faces")
    names = args.models or available(include_optional=True)
    known = available(include_optional=True, include_online=True)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))} in --models; available: {', '.join(known)}")
    out = Path(args.out) if args.out else cache_dir() / "thresholds.json"
    previous = _previous_table(out, getattr(args, "force", False))  # refuse before the long run, not after
    faceset = offline_set() if args.data == "offline" else lfw(min_faces_per_person=min_faces)
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
    previous = _previous_table(out, getattr(args, "force", False))  # again: it may have changed meanwhile
    atomic_write(out, json.dumps({"written_by": WRITTEN_BY, "models": previous | fresh}, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    for name, e in fresh.items():
        print(f"{name:16s} AUC {e['auc']:.3f}  " + "  ".join(
            f"FAR {k}: th {v:+.3f} TAR {e['tar'][k]:.2f}" for k, v in e["thresholds"].items()))
    print(f"written to {out}")
    return 0
