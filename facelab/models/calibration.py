"""Per-model verification thresholds at stated false-accept rates: the stored table.

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

This module only reads the stored table (what :meth:`FaceModel.threshold`
needs).  Computing thresholds from labelled faces is
:mod:`facelab.evaluation.calibration`; the ``facelab calibrate`` command that
writes the table (atomically; ``--out`` updates a thresholds file written by
facelab and refuses any other existing file unless ``--force``) is
:mod:`facelab.calibrate_cli`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..cache import cache_dir

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
    if not is_thresholds_table(data):
        raise ValueError(f"{path} is not a facelab thresholds table (no \"models\" entry with thresholds); "
                         "delete it or run `facelab calibrate` again to rewrite it")
    return data


def is_thresholds_table(data) -> bool:
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
