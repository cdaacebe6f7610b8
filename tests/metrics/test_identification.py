"""Rank-N-T / Rank-N-UT on tiny hand-made galleries with known answers."""
import numpy as np
import pytest
import torch

from facelab.metrics.identification import (
    identification_rates, rank_n_targeted, rank_n_untargeted, similarity_matrix, top_n,
)

# gallery:           0      1      2      3      4
GALLERY = ["alice", "bob", "tgt1", "tgt2", "carol"]
SCORES = np.array([
    [0.9, 0.1, 0.8, 0.2, 0.3],  # probe of alice: alice first, tgt1 second
    [0.2, 0.5, 0.9, 0.1, 0.6],  # probe of bob: tgt1 first, carol second, bob third
    [0.1, 0.2, 0.3, 0.4, 0.5],  # probe of alice: carol, tgt2, tgt1, bob, alice
])
TRUE = ["alice", "bob", "alice"]
TARGETS = {"tgt1", "tgt2"}


def test_top_n_and_ties():
    assert top_n(SCORES, 2).tolist() == [[0, 2], [2, 4], [4, 3]]
    assert top_n([[0.5, 0.5, 0.1]], 1).tolist() == [[0]]  # ties: gallery order


def test_rank_n_targeted():
    assert rank_n_targeted(SCORES, GALLERY, TARGETS, 1).tolist() == [False, True, False]
    assert rank_n_targeted(SCORES, GALLERY, TARGETS, 2).tolist() == [True, True, True]
    # per-probe target sets
    per = [{"tgt2"}, {"tgt2"}, {"tgt2"}]
    assert rank_n_targeted(SCORES, GALLERY, per, 2).tolist() == [False, False, True]


def test_rank_n_untargeted():
    assert rank_n_untargeted(SCORES, GALLERY, TRUE, 1).tolist() == [False, True, True]
    assert rank_n_untargeted(SCORES, GALLERY, TRUE, 3).tolist() == [False, False, True]
    assert rank_n_untargeted(SCORES, GALLERY, TRUE, 5).tolist() == [False, False, False]


def test_rates_and_errors():
    r = identification_rates(torch.tensor(SCORES), GALLERY, TRUE, TARGETS, ns=(1, 2))
    assert r == pytest.approx({"R1-T": 1 / 3, "R1-UT": 2 / 3, "R2-T": 1.0, "R2-UT": 2 / 3})
    with pytest.raises(ValueError):
        rank_n_untargeted(SCORES, GALLERY, TRUE[:2], 1)
    with pytest.raises(ValueError):
        rank_n_targeted(SCORES, GALLERY[:4], TARGETS, 1)
    with pytest.raises(ValueError):
        top_n(np.array([[np.nan, 1.0]]), 1)


def test_similarity_matrix_uses_the_models_metric():
    class Toy(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :2]

        def similarity(self, a, b):
            return torch.nn.functional.cosine_similarity(a, b, dim=-1)

    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 2, 1, 1).expand(2, 2, 1, 1).contiguous()
    g = torch.tensor([[0.0, 2.0], [3.0, 0.0], [1.0, 1.0]]).view(3, 2, 1, 1)
    s = similarity_matrix(Toy(), p, g)
    assert s.shape == (2, 3)
    assert top_n(s, 1).ravel().tolist() == [1, 0]
