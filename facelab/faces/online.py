"""Real identity datasets through scikit-learn: LFW and Olivetti (need the internet once).

Both go through scikit-learn's fetchers, which download into ``data_home``
(default ``~/scikit_learn_data``) and reuse that copy afterwards, so a
populated scikit-learn cache works offline.  LFW is re-aligned with MTCNN like
every other face in facelab; the aligned crops are cached under the facelab
cache so the (slow) alignment happens once per setting.

Without the internet (and without a populated scikit-learn cache) both raise
:class:`NeedsInternetError`; offline, use :func:`facelab.faces.offline_set`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .. import cache
from ..cache import NeedsInternetError
from .splits import IdentitySet

LFW_CREDIT = (
    "Labeled Faces in the Wild (G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller, UMass Amherst, 2007), "
    "via scikit-learn; news photos of public figures collected from the web"
)
OLIVETTI_CREDIT = "Olivetti faces (AT&T Laboratories Cambridge, 1992-1994), via scikit-learn"


def _needs_internet(what: str, size_hint: str, data_home, exc: BaseException) -> NeedsInternetError:
    where = data_home or os.environ.get("SCIKIT_LEARN_DATA") or "~/scikit_learn_data"
    return NeedsInternetError(
        f"facelab.faces.{what}() needs the internet the first time: scikit-learn downloads {size_hint} into "
        f"{where} and could not ({type(exc).__name__}: {exc}). Run it where the internet is reachable "
        "(Colab, Binder, a laptop), or copy a populated scikit_learn_data folder here and pass data_home=. "
        "Offline, use facelab.faces.offline_set() instead."
    )


def _call_fetcher(fetch, what: str, size_hint: str, data_home, **kwargs):
    try:
        return fetch(data_home=data_home, **kwargs)
    except OSError as exc:  # URLError, HTTPError, socket timeouts, "data not found" with download_if_missing=False
        raise _needs_internet(what, size_hint, data_home, exc) from exc


def _align_batch(images, size: int, name: str, log=print):
    """Align one face per image (the detection nearest the image centre).

    Returns uint8 crops (M, 3, S, S), the kept indices and the landmarks.
    """
    from .align import similarity_transform, warp_crop
    from .detect import detect_faces

    crops, kept, lms = [], [], []
    for i, img in enumerate(images):
        arr = np.ascontiguousarray(img, dtype=np.float32)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        dets = detect_faces(arr, min_score=0.9)
        if len(dets) == 0:
            continue
        h, w = arr.shape[:2]
        c = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
        k = int(np.argmin(np.hypot(c[:, 0] - (w - 1) / 2, c[:, 1] - (h - 1) / 2)))
        t = similarity_transform(dets.landmarks[k], size, (h, w))
        crop = warp_crop(torch.from_numpy(arr).permute(2, 0, 1), t).clamp(0, 1)
        crops.append(np.round(crop.numpy() * 255).astype(np.uint8))
        kept.append(i)
        lms.append(dets.landmarks[k])
        if (i + 1) % 500 == 0:
            log(f"{name}: aligned {i + 1}/{len(images)}")
    if not crops:
        return np.zeros((0, 3, size, size), np.uint8), np.zeros(0, np.int64), np.zeros((0, 5, 2), np.float32)
    return np.stack(crops), np.array(kept, dtype=np.int64), np.stack(lms).astype(np.float32)


def _cached(key: str, build) -> dict:
    return cache.load_or_build_npz(cache.cache_dir() / "faces" / f"{key}.npz", build)


def lfw(
    min_faces_per_person: int = 20,
    size: int = 112,
    *,
    data_home: str | Path | None = None,
    download_if_missing: bool = True,
    log=print,
) -> IdentitySet:
    """Labeled Faces in the Wild, full 250x250 colour images re-aligned with MTCNN.

    Calls ``sklearn.datasets.fetch_lfw_people(color=True, resize=1.0, slice_=None,
    min_faces_per_person=min_faces_per_person)``.  With the default of 20 that
    is 62 people and 3023 images (scikit-learn holds them all as float32 in
    memory, about 2.3 GB; lower values need much more).  Images where MTCNN
    finds no face are dropped (their count is in ``extra["dropped"]``).
    Raises :class:`NeedsInternetError` when the data is neither cached nor downloadable.
    """
    from sklearn.datasets import fetch_lfw_people

    from .align import template

    template(size)
    data = _call_fetcher(
        fetch_lfw_people,
        "lfw",
        "LFW (about 200 MB, from figshare)",
        data_home,
        color=True,
        resize=1.0,
        slice_=None,
        min_faces_per_person=min_faces_per_person,
        download_if_missing=download_if_missing,
    )
    names = np.asarray(data.target_names)
    target = np.asarray(data.target)
    fingerprint = hashlib.sha256(names.astype(str).tobytes() + target.tobytes()).hexdigest()[:12]

    def build():
        imgs = data.images
        if imgs.max() > 1.0 + 1e-6:  # older scikit-learn returned 0..255 floats
            imgs = imgs / 255.0
        crops, kept, lms = _align_batch(imgs, size, "lfw", log=log)
        return {"crops": crops, "kept": kept, "landmarks": lms}

    out = _cached(f"lfw-{min_faces_per_person}-{size}-{fingerprint}", build)
    kept = out["kept"]
    labels = [str(names[target[i]]) for i in kept]
    return IdentitySet(
        crops=torch.from_numpy(out["crops"].astype(np.float32) / 255.0),
        labels=labels,
        sources=[f"sklearn.fetch_lfw_people(min_faces_per_person={min_faces_per_person})[{i}]" for i in kept],
        credits=[LFW_CREDIT] * len(kept),
        timestamps=np.full(len(kept), np.nan),
        credit=LFW_CREDIT,
        name="lfw",
        size=int(size),
        extra={"landmarks": out["landmarks"], "index": kept, "dropped": np.array(len(target) - len(kept))},
    )


def olivetti(
    size: int = 112,
    *,
    align: bool = True,
    data_home: str | Path | None = None,
    download_if_missing: bool = True,
    log=print,
) -> IdentitySet:
    """Olivetti faces: 40 people x 10 images, 64x64 grey, replicated to RGB.

    ``align=True`` re-aligns them with MTCNN like every other set (images where
    no face is found are dropped, count in ``extra["dropped"]``); ``align=False``
    just resizes the (already roughly centred) images to ``size``, which does
    *not* match the ArcFace template geometry the models expect.
    Raises :class:`NeedsInternetError` when the data is neither cached nor downloadable.
    """
    from sklearn.datasets import fetch_olivetti_faces

    from .align import template

    template(size)
    data = _call_fetcher(
        fetch_olivetti_faces,
        "olivetti",
        "the Olivetti faces (about 4 MB)",
        data_home,
        shuffle=False,
        download_if_missing=download_if_missing,
    )
    images = np.asarray(data.images, dtype=np.float32)  # (400, 64, 64) in [0, 1]
    target = np.asarray(data.target)
    if align:
        def build():
            crops, kept, lms = _align_batch(images, size, "olivetti", log=log)
            return {"crops": crops, "kept": kept, "landmarks": lms}

        out = _cached(f"olivetti-{size}", build)
        crops = torch.from_numpy(out["crops"].astype(np.float32) / 255.0)
        kept = out["kept"]
    else:
        t = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1)
        crops = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        crops = crops.clamp(0, 1).contiguous()
        kept = np.arange(len(images))
    return IdentitySet(
        crops=crops,
        labels=[f"olivetti-{int(target[i]):02d}" for i in kept],
        sources=[f"sklearn.fetch_olivetti_faces()[{i}]" for i in kept],
        credits=[OLIVETTI_CREDIT] * len(kept),
        timestamps=np.full(len(kept), np.nan),
        credit=OLIVETTI_CREDIT,
        name="olivetti",
        size=int(size),
        extra={"index": np.asarray(kept), "dropped": np.array(len(images) - len(kept)), "aligned": np.array(align)},
    )
