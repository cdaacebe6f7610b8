"""Training faces for ErasableMask: the offline set (or LFW, or a folder) with attribute pseudo-labels.

No labelled attribute dataset (CelebA) is reachable offline, so the n-bit
labels come from facelab's pretrained attribute models, thresholded:

* ``male``    — faceres gender head, P(male) ≥ 0.5
* ``young``   — faceres expected age < 30 years
* ``smiling`` — emotion model, P(happy) ≥ 0.5

(``gear`` has gender/age/race heads but no glasses; no model here sees
glasses, so that CelebA attribute is left out.)  Labels are computed once on
the 112-px aligned crops and cached next to them in the facelab cache.  The
data card in docs/erasable_mask.md says what this set can and cannot teach.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ... import cache
from ...faces.offline import manifest_digest, offline_set
from .nets import DEFAULT_ATTRIBUTES

LABEL_VERSION = "v1"


@dataclass
class FaceData:
    """Aligned faces (N, 3, S, S) in [0,1] with 0/1 attribute labels (N, n),
    split into ``train`` / ``test`` index arrays (seeded, fixed per seed)."""

    faces: torch.Tensor
    labels: torch.Tensor
    attributes: tuple[str, ...]
    identities: list[str]
    train: np.ndarray
    test: np.ndarray
    description: str

    @property
    def size(self) -> int:
        return int(self.faces.shape[-1])

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = {"train": self.train, "test": self.test}[which]
        return self.faces[idx], self.labels[idx]


def pseudo_labels(x112: torch.Tensor, batch: int = 16) -> np.ndarray:
    """(N, 3) float 0/1 labels [male, young, smiling] from the attribute models."""
    from ...models.attributes import load_attribute_model

    faceres, emotion = load_attribute_model("faceres"), load_attribute_model("emotion")
    rows = []
    with torch.no_grad():
        for k in range(0, x112.shape[0], batch):
            x = x112[k:k + batch]
            fr = faceres(x)
            ages = torch.arange(fr["faceres/age"].shape[1], dtype=torch.float32)
            age = (fr["faceres/age"] * ages).sum(1)
            happy = emotion(x)["emotion/emotion"][:, 3]
            rows.append(torch.stack([(fr["faceres/gender"][:, 0] >= 0.5).float(), (age < 30).float(),
                                     (happy >= 0.5).float()], 1))
    return torch.cat(rows).numpy()


def offline_faces(size: int = 64, test_fraction: float = 0.2, seed: int = 0, log=print) -> FaceData:
    """The offline identity set at ``size`` px with pseudo-labels and a seeded
    train/test split over images (``test_fraction`` held out)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    s = offline_set(112, log=log)
    path = cache.cache_dir() / "faces" / f"attributes-{LABEL_VERSION}-112-{manifest_digest()}.npz"
    labels = cache.load_or_build_npz(path, lambda: {"labels": pseudo_labels(s.crops)})["labels"]
    faces = s.crops if size == 112 else F.interpolate(s.crops, size=(size, size), mode="bilinear",
                                                       align_corners=False, antialias=size < 112).clamp(0, 1)
    n = len(s)
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test_fraction * n))
    counts = labels.mean(0)
    desc = (f"offline set: {n} faces of {len(s.identities)} identities at {size}px "
            f"(from 112px ArcFace-aligned crops); pseudo-label rates "
            + ", ".join(f"{a} {c:.0%}" for a, c in zip(DEFAULT_ATTRIBUTES, counts))
            + f"; {n - n_test} train / {n_test} test images (seed {seed})")
    return FaceData(faces.contiguous(), torch.from_numpy(labels).float(), DEFAULT_ATTRIBUTES, list(s.labels),
                    np.sort(order[n_test:]), np.sort(order[:n_test]), desc)


def _labelled_set(spec: str, size: int, log):
    """Every face of the set ``spec`` names (:func:`facelab.faces.face_set`) at ``size`` px with its
    pseudo-labels, and a description head."""
    from ...faces import face_set

    s = face_set(spec, 112, log=log)
    labels = pseudo_labels(s.crops)
    faces = s.crops if size == 112 else F.interpolate(s.crops, size=(size, size), mode="bilinear",
                                                       align_corners=False, antialias=size < 112).clamp(0, 1)
    counts = labels.mean(0)
    desc = (f"{s.name}: {len(s)} faces of {len(s.identities)} identities at {size}px (from 112px "
            "ArcFace-aligned crops); pseudo-label rates "
            + ", ".join(f"{a} {c:.0%}" for a, c in zip(DEFAULT_ATTRIBUTES, counts)))
    return faces.contiguous(), torch.from_numpy(labels).float(), list(s.labels), desc


def training_faces(spec: str = "offline", size: int = 64, test_fraction: float = 0.2, seed: int = 0,
                   log=print) -> FaceData:
    """Faces to *train* on: the offline set (:func:`offline_faces`), or every face of another set named as
    in :func:`facelab.faces.face_set` (``lfw`` where the internet exists: 3,023 photos of 62 people;
    ``folder:PATH``: a class's own consented photos), pseudo-labelled the same way, with the same seeded
    split over images (``test_fraction`` held out)."""
    if spec == "offline":
        return offline_faces(size, test_fraction, seed, log=log)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    faces, labels, identities, desc = _labelled_set(spec, size, log)
    n = faces.shape[0]
    n_test = max(1, round(test_fraction * n))
    if n - n_test < 2:
        raise ValueError(f"{spec} has {n} faces: training needs at least 2 besides the {n_test} held out")
    order = np.random.default_rng(seed).permutation(n)
    return FaceData(faces, labels, DEFAULT_ATTRIBUTES, identities, np.sort(order[n_test:]), np.sort(order[:n_test]),
                    desc + f"; {n - n_test} train / {n_test} test images (seed {seed})")


def held_out_faces(spec: str, size: int = 64, log=print) -> FaceData:
    """Faces to *evaluate* trained checkpoints on: the offline set's seeded test split for ``"offline"``
    (:func:`offline_faces`), or every face of another set named as in :func:`facelab.faces.face_set`
    (``lfw``, ``folder:PATH``), pseudo-labelled the same way.  The benchmark's checkpoints were trained on
    the offline set only, so every face of another set is held out (``train`` is empty)."""
    if spec == "offline":
        return offline_faces(size, log=log)
    faces, labels, identities, desc = _labelled_set(spec, size, log)
    return FaceData(faces, labels, DEFAULT_ATTRIBUTES, identities, np.zeros(0, dtype=np.int64),
                    np.arange(faces.shape[0]), desc + "; all held out (the checkpoints were trained on the offline set)")


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 3, jitter: float = 0.1) -> torch.Tensor:
    """Seeded augmentation of a batch: horizontal flip (p = ½), a shift of up
    to ``max_shift`` px (reflect padding), brightness and contrast × U(1 ± jitter)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if max_shift:
        padded = F.pad(x, (max_shift,) * 4, mode="reflect")
        dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen).tolist()
        dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen).tolist()
        x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    bright = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    contrast = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean * bright).clamp(0, 1)


class Batches:
    """Endless seeded mini-batches over the training images; an epoch is one
    pass in a fresh random order (the last partial batch is dropped unless
    the set is smaller than a batch)."""

    def __init__(self, faces: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 augmentation: bool = True):
        if faces.shape[0] < 2:
            raise ValueError("training needs at least 2 faces")
        self.faces, self.labels = faces, labels
        self.batch_size = min(batch_size, faces.shape[0])
        self.gen = torch.Generator().manual_seed(seed)
        self.augmentation = augmentation

    @property
    def per_epoch(self) -> int:
        return max(1, self.faces.shape[0] // self.batch_size)

    def epoch(self):
        order = torch.randperm(self.faces.shape[0], generator=self.gen)
        for k in range(self.per_epoch):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            x = self.faces[idx]
            yield (augment(x, self.gen) if self.augmentation else x), self.labels[idx]
