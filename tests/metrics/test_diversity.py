"""Focal diversity (PMask §5, Eq. 9–10 as cited) against cases worked out by hand."""
import math

import numpy as np
import pytest

from facelab.metrics import focal_diversity
from facelab.metrics.diversity import (focal_negative_correlation, generalized_diversity, negative_samples,
                                       rank_teams)

# 3 models × 6 samples; sample 4 is failed by every model (removed from every NS)
POOL = np.array([
    [1, 1, 0, 0, 1, 1],
    [1, 0, 1, 0, 1, 0],
    [0, 0, 0, 1, 1, 0],
], dtype=bool)


def test_generalized_diversity_by_hand():
    # per-sample failure counts 1, 2, 1, 1: p_1 = 3/4, p_2 = 1/4
    # p(1) = ½·¾ + 1·¼ = 5/8, p(2) = 1·¼ = ¼, GD = 1 − (¼)/(5/8) = 3/5
    f = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], dtype=bool)
    assert generalized_diversity(f) == pytest.approx(3 / 5)


def test_coincident_failures_have_no_diversity_and_disjoint_ones_full():
    assert generalized_diversity(np.ones((2, 3), bool)) == pytest.approx(0.0)
    assert generalized_diversity(np.array([[1, 0], [0, 1]], bool)) == pytest.approx(1.0)
    assert math.isnan(generalized_diversity(np.zeros((3, 4), bool)))


def test_negative_samples_drop_what_every_model_fails():
    ns = negative_samples(POOL)
    assert not ns[:, 4].any()
    assert ns[0].tolist() == [True, True, False, False, False, True]


def test_focal_negative_correlation_by_hand():
    # team (0, 1), focal 0 on NS = {0, 1, 5}: counts 2, 1, 1 -> p(1) = 2/3, p(2) = 1/3, λ = 1/2
    assert focal_negative_correlation(POOL, (0, 1), 0) == pytest.approx(1 / 2)
    # focal 1 on NS = {0, 2}: counts 2, 1 -> p(1) = 3/4, p(2) = 1/2, λ = 2/3
    assert focal_negative_correlation(POOL, (0, 1), 1) == pytest.approx(2 / 3)


def test_focal_diversity_by_hand():
    assert focal_diversity(POOL, (0, 1)) == pytest.approx(((1 - 1 / 2) + (1 - 2 / 3)) / 2)  # 5/12
    assert focal_diversity(POOL, (0, 2)) == pytest.approx(1.0)
    # team of three: λ = 1/4 (focal 0), 1/3 (focal 1), 0 (focal 2) -> (3/4 + 2/3 + 1)/3 = 29/36
    assert focal_diversity(POOL, (0, 1, 2)) == pytest.approx(29 / 36)


def test_focal_diversity_lies_in_unit_interval_where_the_printed_eq9_cannot():
    rng = np.random.default_rng(0)
    for _ in range(50):
        f = rng.random((5, 40)) < 0.3
        for team in ((0, 1), (1, 2, 3), (0, 2, 3, 4)):
            d = focal_diversity(f, team)
            assert 0.0 <= d <= 1.0
            focal = team[0]
            ns = negative_samples(f)[focal]
            if ns.any():
                counts = f[list(team)][:, ns].sum(0)
                s = len(team)
                p = np.bincount(counts, minlength=s + 1) / ns.sum()
                i = np.arange(s + 1)
                p1, p2 = (i / s * p).sum(), (i * (i - 1) / (s * (s - 1)) * p).sum()
                if p2 > 0:
                    assert p1 / p2 >= 1.0  # the printed Eq. 9: never inside [0, 1) as the text claims


def test_focal_model_without_negative_samples_is_left_out():
    f = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 1]], bool)
    assert math.isnan(focal_negative_correlation(f, (0, 1), 1))
    # only focal 0 counts: on NS(0) = {0, 1} model 1 never fails -> λ = 0 -> d = 1
    assert focal_diversity(f, (0, 1)) == pytest.approx(1.0)


def test_rank_teams_by_hand():
    ranked = rank_teams(POOL, 2, names=["a", "b", "c"])
    assert [t for t, _ in ranked] == [("a", "c"), ("b", "c"), ("a", "b")]
    assert [d for _, d in ranked] == pytest.approx([1.0, 1.0, 5 / 12])
    assert rank_teams(POOL, 3)[0] == ((0, 1, 2), pytest.approx(29 / 36))


@pytest.mark.parametrize("team,match", [((0,), "at least 2"), ((0, 0), "repeated"), ((0, 7), "not rows")])
def test_bad_teams_are_named(team, match):
    with pytest.raises(ValueError, match=match):
        focal_diversity(POOL, team)


def test_bad_failure_matrices_are_named():
    with pytest.raises(ValueError, match="failures"):
        focal_diversity(np.zeros(5, bool), (0, 1))
    with pytest.raises(ValueError, match="failures"):
        focal_diversity(np.full((2, 3), 0.5), (0, 1))
    with pytest.raises(ValueError, match="size"):
        rank_teams(POOL, 1)
