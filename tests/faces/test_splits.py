"""Seeded gallery/probe splits and verification pairs."""
from __future__ import annotations

import numpy as np
import pytest

from facelab.faces import gallery_probe_split, verification_pairs

IDS = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d", "e", "f"])


def test_gallery_probe_split_covers_and_is_deterministic():
    g, p = gallery_probe_split(IDS, n_gallery=1, seed=3)
    g2, p2 = gallery_probe_split(IDS, n_gallery=1, seed=3)
    assert np.array_equal(g, g2) and np.array_equal(p, p2)
    assert set(g) | set(p) == set(range(len(IDS))) and not set(g) & set(p)
    # one gallery image per identity with probes; single-image identities are distractors
    for name in "abc":
        assert sum(IDS[i] == name for i in g) == 1
    for name in "def":
        assert all(IDS[i] != name for i in p)
    assert {IDS[i] for i in p} <= {"a", "b", "c"}
    assert len(p) == 4 + 2 + 1


def test_gallery_probe_split_seed_changes_choice():
    picks = {tuple(gallery_probe_split(IDS, seed=s)[0]) for s in range(10)}
    assert len(picks) > 1


def test_gallery_probe_split_options():
    g, p = gallery_probe_split(IDS, n_gallery=2, seed=0, include_distractors=False)
    assert {IDS[i] for i in g} == {"a", "b"} and len(p) == 3 + 1
    with pytest.raises(ValueError):
        gallery_probe_split(IDS, n_gallery=0)


def test_verification_pairs():
    pairs, same = verification_pairs(IDS, n_genuine=6, n_impostor=20, seed=1)
    assert pairs.shape == (26, 2) and same.sum() == 6
    assert np.all(pairs[:, 0] < pairs[:, 1])
    assert np.array_equal(IDS[pairs[:, 0]] == IDS[pairs[:, 1]], same)
    assert len({tuple(x) for x in pairs}) == len(pairs)
    p2, s2 = verification_pairs(IDS, n_genuine=6, n_impostor=20, seed=1)
    assert np.array_equal(pairs, p2) and np.array_equal(same, s2)


def test_verification_pairs_caps_at_what_exists():
    pairs, same = verification_pairs(IDS, n_genuine=1000, n_impostor=5, seed=0)
    assert same.sum() == 10 + 3 + 1  # all within-identity pairs


def test_verification_pairs_large_set_samples():
    ids = np.repeat(np.arange(3000), 2)
    pairs, same = verification_pairs(ids, n_genuine=50, n_impostor=500, seed=0)
    assert same.sum() == 50 and (~same).sum() == 500
    assert np.array_equal(ids[pairs[:, 0]] == ids[pairs[:, 1]], same)
