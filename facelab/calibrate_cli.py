"""``facelab calibrate``: compute every model's thresholds on a labelled face set and store them.

The offline set or LFW (online) is scored by :func:`facelab.evaluation.calibration.calibrate_model`;
the table goes to the facelab cache (or ``--out``), written atomically, and is what
:meth:`FaceModel.threshold` reads (:mod:`facelab.models.calibration`).
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from . import validate as V
from .cache import atomic_write, cache_dir
from .evaluation.calibration import calibrate_model, pair_indices
from .models.calibration import WRITTEN_BY, is_thresholds_table

__all__ = ["calibrate_command"]


def calibrate_command(args) -> int:
    """``facelab calibrate``: one line on stderr and exit code 1, not a
    traceback, for what the user can fix: missing data (no internet for LFW,
    an unfetched or damaged cache), an unknown model, an ``--out`` file that
    facelab did not write."""
    from .cache import MissingCacheError, NeedsInternetError

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
    if is_thresholds_table(data):
        return data["models"]
    if force:
        return {}
    raise FileExistsError(f"--out {out} exists and is not a thresholds file written by facelab calibrate; "
                          "it was left untouched. Choose another --out, or pass --force to replace it")


def _calibrate(args) -> int:
    from .faces import lfw, offline_set
    from .models import available, load

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
