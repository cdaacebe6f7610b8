"""Your own labelled photos as an identity set: one sub-folder per person.

``folder_set("class_photos/")`` reads ``class_photos/<identity>/<photo>`` (JPEG,
PNG, WebP, BMP, TIFF; other files are ignored), aligns the *largest* face of
each photo through the same MTCNN + five-point pipeline as every other set
(:func:`facelab.faces.load_image`), and caches the aligned crops in the facelab
cache, keyed by every photo's path, size and modification time: edit the folder
and the set is rebuilt, leave it and the next call takes milliseconds.

Photos are read one at a time and only uint8 crops are kept, so memory grows
with the number of crops (about 37 KB each at 112 px), not with photo sizes.
Photos without a detectable face are skipped and listed in
``extra["dropped"]``; an unreadable file is skipped the same way, with its reason.

Use only photos of people who consented to this use (see docs/faces.md).

:func:`face_set` resolves the ``--data`` argument of every benchmark:
``offline``, ``lfw`` or ``folder:PATH``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .. import cache
from .splits import IdentitySet

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
FOLDER_CREDIT = "photos from a local folder (one sub-folder per identity)"


def _photos(root: Path) -> list[tuple[str, Path]]:
    if not root.exists():
        raise FileNotFoundError(f"folder_set: {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"folder_set: {root} is a file; pass a folder with one sub-folder per identity")
    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise ValueError(f"folder_set: {root} has no sub-folders; put each person's photos in "
                         f"{root}/<name>/ (one sub-folder per identity)")
    found = [(person.name, f) for person in people for f in sorted(person.iterdir())
             if f.is_file() and f.suffix.lower() in PHOTO_SUFFIXES]
    if not found:
        raise ValueError(f"folder_set: no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in the sub-folders of {root}")
    return found


def _fingerprint(root: Path, photos: list[tuple[str, Path]], size: int) -> str:
    h = hashlib.sha256(f"{root.resolve()}|{size}".encode())
    for label, f in photos:
        st = f.stat()
        h.update(f"{label}/{f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def folder_set(path: str | Path, size: int = 112, *, refresh: bool = False, log=print) -> IdentitySet:
    """An :class:`IdentitySet` from ``path/<identity>/<photos>`` (largest face per photo).

    Raises ``FileNotFoundError``/``NotADirectoryError`` for a missing folder or a
    file, ``ValueError`` when there are no identity sub-folders, no photos, or no
    face in any photo.
    """
    from .align import template
    from .io import ImageReadError, NoFaceError, load_image

    template(size)  # validates size before any work
    root = Path(path).expanduser()
    photos = _photos(root)

    def build() -> dict:
        crops, labels, sources, dropped = [], [], [], []
        for k, (label, f) in enumerate(photos):
            try:
                face = load_image(f, size=size, max_faces=1)
            except (NoFaceError, ImageReadError) as exc:
                dropped.append(f"{label}/{f.name}: {exc}")
                continue
            crops.append(np.round(face.crops[0].numpy() * 255).astype(np.uint8))
            labels.append(label)
            sources.append(f"{label}/{f.name}")
            if log and (k + 1) % 50 == 0:
                log(f"folder_set: aligned {k + 1}/{len(photos)} photos")
        if not crops:
            raise ValueError(f"folder_set: no face was found in any of the {len(photos)} photos under {root}")
        return {"crops": np.stack(crops), "meta": np.array(json.dumps(
            {"labels": labels, "sources": sources, "dropped": dropped}))}

    key = _fingerprint(root, photos, size)
    data = cache.load_or_build_npz(cache.cache_dir() / "faces" / f"folder-{key}.npz", build, refresh=refresh)
    meta = json.loads(str(data["meta"]))
    n = len(meta["labels"])
    if log and meta["dropped"]:
        log(f"folder_set: skipped {len(meta['dropped'])} photo(s) without a usable face: " + "; ".join(meta["dropped"][:5])
            + (" …" if len(meta["dropped"]) > 5 else ""))
    return IdentitySet(
        crops=torch.from_numpy(data["crops"].astype(np.float32) / 255.0),
        labels=list(meta["labels"]),
        sources=list(meta["sources"]),
        credits=[FOLDER_CREDIT] * n,
        timestamps=np.full(n, np.nan),
        credit=f"{FOLDER_CREDIT}: {root}",
        name=f"folder:{root.name}",
        size=int(size),
        extra={"dropped": list(meta["dropped"]), "root": str(root)},
    )


DATA_CHOICES = "offline | lfw | folder:PATH"


def face_set(spec: str, size: int = 112, log=print) -> IdentitySet:
    """The identity set a benchmark's ``--data`` names: ``offline`` (the registry
    set, works everywhere), ``lfw`` (needs the internet once; 20+ photos per
    person) or ``folder:PATH`` (:func:`folder_set`)."""
    if not isinstance(spec, str):
        raise TypeError(f"data must be a string ({DATA_CHOICES}); got {type(spec).__name__}")
    if spec == "offline":
        from .offline import offline_set

        return offline_set(size, log=log)
    if spec == "lfw":
        from .online import lfw

        return lfw(size=size, log=log)
    if spec.startswith("folder:") and len(spec) > len("folder:"):
        return folder_set(spec[len("folder:"):], size, log=log)
    raise ValueError(f"unknown data {spec!r}; valid: {DATA_CHOICES}")
