"""Claim statistics against hand-computed cases."""
import doctest
from math import comb

import numpy as np
import pytest

from facelab.metrics import claims
from facelab.metrics.claims import chance_top_n, compare_paired, paired_bootstrap_ci, sign_test, verdict


def test_docstring_examples_run():
    assert doctest.testmod(claims).failed == 0


@pytest.mark.parametrize("wins,losses", [(18, 1), (1, 18), (3, 1), (5, 5), (0, 6), (10, 0)])
def test_sign_test_is_the_exact_binomial_tail(wins, losses):
    n, k = wins + losses, min(wins, losses)
    by_hand = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)
    assert sign_test(wins, losses) == pytest.approx(by_hand, rel=1e-9)


def test_sign_test_known_values():
    assert sign_test(18, 1) == pytest.approx(7.63e-5, rel=1e-2)  # 2·(1+19)/2^19
    assert sign_test(0, 0) == 1.0
    assert sign_test(0, 6) == pytest.approx(2 / 64)
    with pytest.raises(ValueError, match="counts"):
        sign_test(-1, 3)


@pytest.mark.parametrize("effect,ci,p,want", [
    (0.3, (0.1, 0.5), 0.01, "holds (significant)"),
    (0.3, (0.1, 0.5), 0.20, "direction holds, not significant"),   # test disagrees with the CI: not enough
    (0.3, (-0.1, 0.5), 0.01, "direction holds, not significant"),
    (0.0, (-0.1, 0.1), 1.0, "no difference"),
    (-0.3, (-0.5, 0.1), 0.30, "reversed, not significant"),
    (-0.3, (-0.5, -0.1), 0.001, "reversed (significant)"),
    (0.3, (0.1, 0.5), None, "holds (significant)"),
    (0.3, None, 0.01, "holds (significant)"),                       # a test alone decides
    (0.3, None, 0.20, "direction holds, not significant"),
    (-0.3, None, 0.20, "reversed, not significant"),
    (-0.3, None, 0.01, "reversed (significant)"),
])
def test_verdict_table(effect, ci, p, want):
    assert verdict(effect, ci, p) == want


def test_verdict_refuses_an_inverted_interval():
    with pytest.raises(ValueError, match="low, high"):
        verdict(0.1, (0.2, 0.0))


def test_verdict_needs_some_evidence():
    with pytest.raises(ValueError, match="confidence interval, a p-value"):
        verdict(0.1)


def test_bootstrap_ci_brackets_the_effect_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    a_small, b_small = rng.random(20) < 0.6, rng.random(20) < 0.4
    a_big, b_big = rng.random(2000) < 0.6, rng.random(2000) < 0.4
    e1, lo1, hi1 = paired_bootstrap_ci(a_small, b_small)
    e2, lo2, hi2 = paired_bootstrap_ci(a_big, b_big)
    assert lo1 <= e1 <= hi1 and lo2 <= e2 <= hi2
    assert (hi2 - lo2) < (hi1 - lo1)
    assert lo2 > 0.1  # 0.6 − 0.4 = 0.2 with 2000 pairs is clearly positive


def test_bootstrap_clusters_widen_the_interval_for_correlated_units():
    # 10 clusters of 20 identical units: only 10 independent observations
    d = np.repeat(np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0], dtype=float), 20)
    zero = np.zeros_like(d)
    labels = np.repeat(np.arange(10), 20)
    _, lo_iid, hi_iid = paired_bootstrap_ci(d, zero)
    _, lo_cl, hi_cl = paired_bootstrap_ci(d, zero, clusters=labels)
    assert (hi_cl - lo_cl) > 2 * (hi_iid - lo_iid)


def test_compare_paired_counts_discordant_pairs():
    a = [1, 1, 1, 0, 0, 1, 1, 0]
    b = [0, 0, 1, 0, 1, 1, 0, 0]
    c = compare_paired(a, b)
    assert (c.wins, c.losses, c.n) == (3, 1, 8)
    assert c.rate_a == pytest.approx(5 / 8) and c.rate_b == pytest.approx(3 / 8)
    assert c.p == pytest.approx(sign_test(3, 1))
    assert c.verdict == "direction holds, not significant"
    assert "n = 8" in c.summary()


def test_chance_top_n_by_hand():
    assert chance_top_n(10, 1, 1) == pytest.approx(0.1)
    assert chance_top_n(10, 2, 3) == pytest.approx(1 - comb(8, 3) / comb(10, 3))
    assert chance_top_n(5, 5, 1) == 1.0
    assert chance_top_n(5, 0, 3) == 0.0
    with pytest.raises(ValueError):
        chance_top_n(5, 6, 1)


def test_over_seeds_words_each_seed_and_counts_them():
    from facelab.metrics.claims import over_seeds

    s = over_seeds({0: (0.2, (0.1, 0.3), 0.01), 1: (-0.1, (-0.3, 0.1), 0.4), 2: (0.3, (0.2, 0.4), 0.001)})
    assert s.seeds == (0, 1, 2)
    assert s.verdicts == ("holds (significant)", "reversed, not significant", "holds (significant)")
    assert not s.stable
    assert s.counts() == {"holds (significant)": 2, "reversed, not significant": 1}
    assert s.verdicts_summary() == "holds (significant) in 2 of 3 seeds; reversed, not significant in 1"
    assert (s.low, s.high) == (-0.1, 0.3)
    assert s.mean == pytest.approx(0.4 / 3)
    assert s.sd == pytest.approx(np.std([0.2, -0.1, 0.3], ddof=1))


def test_over_seeds_does_not_pool_seeds():
    """Three seeds each too weak alone stay 'not significant' in every seed, however consistent."""
    from facelab.metrics.claims import over_seeds

    s = over_seeds({seed: (0.1, (-0.01, 0.2), 0.08) for seed in range(3)})
    assert s.stable and s.verdicts_summary() == "direction holds, not significant in 3 of 3 seeds"
    assert s.sd == pytest.approx(0.0, abs=1e-12) and s.spread() == "+0.100 … +0.100; mean +0.100 ± 0.000 (sd)"


def test_spread_scales_every_number_and_a_record_gives_the_same_spread():
    from facelab.metrics.claims import SeedSpread, over_seeds

    s = over_seeds({0: (0.025, None, 0.5), 1: (-0.05, None, 0.2)})
    assert s.spread("+.1f", scale=100) == "-5.0 … +2.5; mean -1.2 ± 5.3 (sd)"
    record = {"seeds": [0, 1], "effects": [0.025, -0.05], "verdicts": list(s.verdicts)}
    assert SeedSpread.from_record(record) == s


@pytest.mark.parametrize("kept,words", [(1, "1 of the 8 probes is a probe in every seed"),
                                        (0, "0 of the 8 probes are probes in every seed"),
                                        (5, "5 of the 8 probes are probes in every seed")])
def test_in_every_seed_agrees_in_number(kept, words):
    from facelab.metrics.claims import in_every_seed

    assert in_every_seed(kept, 8, "probes", "a probe", "probes") == words


def test_over_seeds_takes_paired_comparisons_and_one_seed():
    from facelab.metrics.claims import over_seeds

    a = [True] * 12 + [False] * 8
    b = [False] * 12 + [False] * 8
    c = compare_paired(a, b)
    s = over_seeds({7: c})
    assert s.verdicts == (c.verdict,) == ("holds (significant)",)
    assert s.effects == (pytest.approx(0.6),) and s.sd == 0.0
    assert s.verdicts_summary() == "holds (significant) in 1 of 1 seed"
    with pytest.raises(ValueError, match="at least one seed"):
        over_seeds({})


def test_discordant_counts_and_tests_the_units_where_only_one_setting_succeeded():
    from facelab.metrics.claims import discordant

    a = [True, True, True, False, False, True]
    b = [True, False, False, False, True, False]
    assert discordant(a, b) == (3, 1, pytest.approx(sign_test(3, 1)))
    assert discordant([True], [True]) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="paired"):
        discordant([True, False], [True])


def test_paired_signs_drops_ties():
    from facelab.metrics.claims import paired_signs

    higher, lower, p = paired_signs([0.5, 0.7, 0.2, 0.4], [0.4, 0.7, 0.3, 0.1])
    assert (higher, lower) == (2, 1)
    assert p == pytest.approx(sign_test(2, 1))
