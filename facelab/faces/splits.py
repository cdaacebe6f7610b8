"""Identity sets and seeded ways to split them: gallery/probe, genuine/impostor pairs.

An :class:`IdentitySet` is what every face source returns (the offline set,
LFW, Olivetti): aligned crops plus one identity label per crop.  Identities
with a single image are *distractors*: they sit in the gallery and can be
confused with, but never match, a probe.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class IdentitySet:
    """Aligned faces with identity labels.

    ``crops`` (N, 3, S, S) float32 RGB in [0, 1]; ``labels`` N identity names;
    ``sources`` where each image came from (``package@version:member`` for the
    offline set); ``credits`` per image; ``timestamps`` seconds into the video
    for video frames, NaN for photos; ``credit`` one line to show with results.
    """

    crops: torch.Tensor
    labels: list[str]
    sources: list[str]
    credits: list[str]
    timestamps: np.ndarray
    credit: str
    name: str
    size: int
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.crops.shape[0]
        for what in ("labels", "sources", "credits", "timestamps"):
            if len(getattr(self, what)) != n:
                raise ValueError(f"IdentitySet: {what} has {len(getattr(self, what))} entries for {n} crops")

    def __len__(self) -> int:
        return self.crops.shape[0]

    @property
    def identities(self) -> list[str]:
        """Distinct identity names, in order of first appearance."""
        return list(dict.fromkeys(self.labels))

    @property
    def ids(self) -> np.ndarray:
        """Integer identity per image (index into :attr:`identities`)."""
        index = {name: i for i, name in enumerate(self.identities)}
        return np.array([index[name] for name in self.labels], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.labels))

    @property
    def distractor_mask(self) -> np.ndarray:
        """True for images whose identity has no second image in the set."""
        c = self.counts()
        return np.array([c[name] == 1 for name in self.labels])

    def subset(self, index) -> "IdentitySet":
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        return IdentitySet(
            crops=self.crops[torch.as_tensor(idx)],
            labels=[self.labels[i] for i in idx],
            sources=[self.sources[i] for i in idx],
            credits=[self.credits[i] for i in idx],
            timestamps=self.timestamps[idx],
            credit=self.credit,
            name=self.name,
            size=self.size,
            extra={k: v[idx] for k, v in self.extra.items() if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == len(self)},
        )

    def summary(self) -> str:
        c = self.counts()
        multi = {k: v for k, v in c.items() if v >= 2}
        return (
            f"{self.name}: {len(self)} faces at {self.size}x{self.size}, {len(c)} identities; "
            f"{len(multi)} with >= 2 images ({sum(multi.values())} images: "
            + ", ".join(f"{k} {v}" for k, v in sorted(multi.items(), key=lambda kv: -kv[1]))
            + f"), {len(c) - len(multi)} single-image distractors"
        )

    def gallery_probe_split(self, n_gallery: int = 1, seed: int = 0):
        return gallery_probe_split(self.ids, n_gallery=n_gallery, seed=seed)

    def verification_pairs(self, n_genuine: int, n_impostor: int, seed: int = 0):
        return verification_pairs(self.ids, n_genuine, n_impostor, seed=seed)


def _as_ids(ids) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be one label per image (1-d), got shape {arr.shape}")
    _, inverse = np.unique(arr, return_inverse=True)
    return inverse.reshape(-1)


def gallery_probe_split(ids, n_gallery: int = 1, seed: int = 0, include_distractors: bool = True):
    """Indices ``(gallery, probe)`` for closed/open-set identification.

    For every identity with more than ``n_gallery`` images, ``n_gallery`` of
    them (chosen with ``seed``) go to the gallery and the rest become probes.
    Identities with ``n_gallery`` images or fewer are distractors and go to the
    gallery whole (or nowhere, with ``include_distractors=False``).  Both index
    arrays are sorted; the same ``ids`` and ``seed`` always give the same split.
    """
    if n_gallery < 1:
        raise ValueError(f"n_gallery must be at least 1, got {n_gallery}")
    codes = _as_ids(ids)
    rng = np.random.default_rng(seed)
    gallery, probe = [], []
    for c in range(codes.max(initial=-1) + 1):
        members = np.flatnonzero(codes == c)
        if len(members) <= n_gallery:
            if include_distractors:
                gallery.extend(members.tolist())
            continue
        chosen = rng.permutation(members)
        gallery.extend(chosen[:n_gallery].tolist())
        probe.extend(chosen[n_gallery:].tolist())
    return np.array(sorted(gallery), dtype=np.int64), np.array(sorted(probe), dtype=np.int64)


def verification_pairs(ids, n_genuine: int, n_impostor: int, seed: int = 0):
    """Seeded verification pairs: ``(pairs, same)`` with ``pairs`` (M, 2) image
    indices (i < j) and ``same`` (M,) True for genuine (same identity) pairs.

    Pairs are drawn without replacement.  If fewer genuine or impostor pairs
    exist than asked for, all of them are returned (check ``same.sum()``).
    Genuine pairs come first, then impostors.
    """
    if n_genuine < 0 or n_impostor < 0:
        raise ValueError("n_genuine and n_impostor must be non-negative")
    codes = _as_ids(ids)
    n = len(codes)
    rng = np.random.default_rng(seed)
    # genuine: every within-identity pair, then a seeded sample of them
    gen = [
        m[np.stack(np.triu_indices(len(m), k=1), axis=1)]
        for m in (np.flatnonzero(codes == c) for c in range(codes.max(initial=-1) + 1))
        if len(m) >= 2
    ]
    gen = np.concatenate(gen) if gen else np.zeros((0, 2), np.int64)
    gen = gen[np.sort(rng.choice(len(gen), size=min(n_genuine, len(gen)), replace=False))]
    # impostor: enumerate when small, else rejection-sample distinct cross-identity pairs
    n_cross = (n * (n - 1) - sum(int(k) * (int(k) - 1) for k in np.bincount(codes))) // 2 if n else 0
    want = min(n_impostor, n_cross)
    if n <= 4000 or want > n_cross // 2:
        i, j = np.triu_indices(n, k=1)
        cross = np.flatnonzero(codes[i] != codes[j])
        pick = np.sort(rng.choice(cross, size=want, replace=False))
        imp = np.stack([i[pick], j[pick]], axis=1)
    else:
        seen: set[tuple[int, int]] = set()
        while len(seen) < want:
            a = rng.integers(0, n, size=2 * (want - len(seen)) + 16)
            b = rng.integers(0, n, size=len(a))
            for x, y in zip(a.tolist(), b.tolist()):
                if codes[x] != codes[y] and len(seen) < want:
                    seen.add((min(x, y), max(x, y)))
        imp = np.array(sorted(seen), dtype=np.int64).reshape(-1, 2)
    pairs = np.concatenate([gen.reshape(-1, 2), imp.reshape(-1, 2)]).astype(np.int64)
    same = np.concatenate([np.ones(len(gen), bool), np.zeros(len(imp), bool)])
    return pairs, same
