"""The Targeted Anonymization claims' statistics on hand-built results
sections whose answers are known (no model runs: the decisions are given)."""
import math

import pytest

from facelab.experiments import targeted_anonymization_claims as C
from facelab.metrics.claims import sign_test

TARGETS = ["t1", "t2"]


def row(tar: list[int], t1: list[int], t2: list[int], far_units=(), far_n_per_trial=None, **key) -> dict:
    n = len(tar)
    per = far_n_per_trial or [10] * n
    return {**key, "n": n, "tar": sum(tar) / n, "tar_accepts": [bool(v) for v in tar],
            "targets": {"t1": sum(t1) / n, "t2": sum(t2) / n},
            "target_accepts": {"t1": [bool(v) for v in t1], "t2": [bool(v) for v in t2]},
            "target_mean": (sum(t1) + sum(t2)) / (2 * n), "far_units": list(far_units), "far_n": sum(per),
            "far_accepted": len(far_units), "far": len(far_units) / sum(per), "far_n_per_trial": per,
            "seconds": 1.0}


def tars(rows):
    return [{"d": d, "tar": t} for d, t in rows]


def test_next_baseline_d_extends_bisects_and_stops():
    ours = [{"c": 0.0, "tar": 0.6}, {"c": 1.0, "tar": 0.9}]
    # 0.9 never reached: extend the top by 4
    assert C.next_baseline_d(ours, tars([(0, 0.5), (1, 0.7), (4, 0.8)]), levels=(0.9,)) == 16.0
    # reached first at 4, with 1 below: geometric mean 2
    assert C.next_baseline_d(ours, tars([(0, 0.5), (1, 0.7), (4, 0.9)]), levels=(0.9,)) == 2.0
    # bracketed within a factor 2: nothing more for that level
    assert C.next_baseline_d(ours, tars([(0, 0.5), (2, 0.7), (4, 0.9)]), levels=(0.9,)) is None
    # reached first at the smallest non-zero d with d = 0 below: halve towards the floor, then stop
    assert C.next_baseline_d(ours, tars([(0, 0.5), (0.25, 0.9)]), levels=(0.9,)) == 0.125
    assert C.next_baseline_d(ours, tars([(0, 0.5), (1 / 16, 0.9)]), levels=(0.9,)) is None
    # d = 0 already reaches it: a grid edge, nothing to add
    assert C.next_baseline_d(ours, tars([(0, 0.9), (1, 0.9)]), levels=(0.9,)) is None
    # a level ours never reaches needs no baseline run; the highest level ours reaches is served first
    assert C.next_baseline_d(ours, tars([(0, 0.5), (1, 0.6), (16, 0.7)]), levels=(0.6, 0.7, 0.9, 1.0)) == 64.0


def _section():
    n = 10
    ones, zeros = [1] * n, [0] * n
    # ours: TAR 6/10 at c=0 and 9/10 at c=1; targets recognise 2+2 at c=0, 3+3 at c=1
    ours = [row([1] * 6 + [0] * 4, [1] * 2 + [0] * 8, [0] * 8 + [1] * 2, c=0.0, far_units=[3]),
            row([1] * 9 + [0], [1] * 3 + [0] * 7, [0] * 7 + [1] * 3, c=1.0, far_units=[3, 15])]
    base = [row([1] * 5 + [0] * 5, zeros, zeros, d=0.0, refined=False),
            row([1] * 6 + [0] * 4, [1] * 8 + [0] * 2, [0] * 2 + [1] * 8, d=1.0, refined=False),
            row(ones, ones, ones, d=4.0, refined=True)]
    return {"targets": TARGETS, "clean": row(ones, ones, ones, far_units=[3]), "ours": ours,
            "ori": row([1] * 2 + [0] * 8, zeros, zeros), "baseline": base}


def test_matched_levels_pick_the_first_setting_reaching_each_level_and_count_exactly():
    m = {e["level"]: e for e in C.matched_levels(_section(), levels=(0.6, 0.9, 1.0))}
    assert set(m) == {0.6, 0.9}, "ours never reaches 100 %"
    e = m[0.6]
    assert (e["ours"]["c"], e["baseline"]["d"], e["bracket"]["d"]) == (0.0, 1.0, 0.0)
    # targets: ours recognises 4 of 20 decisions, the baseline 16; ours' 4 are all among the baseline's
    assert (e["targets"]["ours_k"], e["targets"]["baseline_k"], e["targets"]["n"]) == (4, 16, 20)
    assert (e["test"]["wins"], e["test"]["losses"]) == (12, 0)
    assert e["test"]["p"] == pytest.approx(sign_test(12, 0))
    assert e["test"]["effect"] == pytest.approx(0.6)
    assert e["test"]["verdict"] == "holds (significant)"
    assert e["targets"]["per_target"]["t1"] == [0.2, 0.8]
    e = m[0.9]
    assert (e["ours"]["c"], e["baseline"]["d"], e["bracket"]["d"]) == (1.0, 4.0, 1.0)
    assert e["baseline"]["refined"] is True
    assert any("TAR not equal: 9 vs 10" in n for n in e["notes"])
    assert e["same_as"] is None
    (again,) = [x for x in C.matched_levels(_section(), levels=(0.7, 0.9)) if x["level"] == 0.9]
    assert again["same_as"] == 0.7, "a level picking the same (c, d) repeats that comparison"
    assert C.table1(list(m.values()))["level"] == 0.9


def test_matched_levels_say_when_a_match_sits_at_a_grid_edge_or_is_missing():
    s = _section()
    s["baseline"] = s["baseline"][:2]            # the baseline now never reaches 90 %
    s["baseline"][0]["tar"] = 0.6                # and d = 0 already gives 60 %
    m = {e["level"]: e for e in C.matched_levels(s, levels=(0.6, 0.9))}
    assert any("d grid's edge" in n for n in m[0.6]["notes"])
    assert m[0.6]["bracket"] is None
    assert m[0.9]["baseline"] is None and any("never reaches 90%" in n for n in m[0.9]["notes"])
    s["ours"][0]["tar"] = 0.8                    # ours' c = 0 overshoots 60 %
    (e,) = C.matched_levels(s, levels=(0.6,))
    assert any("c grid's edge" in n for n in e["notes"])


def test_monotonicity_counts_rises_and_falls_between_adjacent_c_values():
    s = _section()
    mid = row([1] * 4 + [0] * 6, [1] * 2 + [0] * 8, [0] * 8 + [1] * 2, c=0.5)
    s["ours"].insert(1, mid)
    m = C.monotonicity(s)
    t = m["tar"]
    assert m["cs"] == [0.0, 0.5, 1.0]
    assert t["k"] == [6, 4, 9] and t["n"] == 10
    # trials 4, 5 fall at c=0.5 then rise again; trials 4..8 rise at c=1
    assert (t["rises"], t["falls"]) == (5, 2)
    assert t["curve_steps"] == {"up": 1, "down": 1, "flat": 0}
    assert t["first_to_last_k"] == 3 and t["units_changing"] == 5
    assert t["p"] == pytest.approx(sign_test(5, 2))
    assert t["verdict"] == "direction holds, not significant"
    g = m["targets"]
    assert (g["rises"], g["falls"], g["n"]) == (2, 0, 20)


def test_fig1_contrast_and_far_check_pair_by_trial():
    s = _section()
    f = C.fig1_contrast(s)
    assert [e["c"] for e in f] == [0.0, 1.0]
    assert (f[1]["ours_k"], f[1]["ori_k"], f[1]["clean_k"]) == (9, 2, 10)
    assert (f[1]["test"]["wins"], f[1]["test"]["losses"]) == (7, 0)
    assert f[1]["test"]["verdict"] == "holds (significant)"
    far = C.far_check(s)
    assert (far[0]["accepted"], far[0]["clean_accepted"], far[0]["n"]) == (1, 1, 100)
    assert far[0]["test"]["verdict"] == "no difference"
    assert (far[1]["test"]["wins"], far[1]["test"]["losses"]) == (1, 0)
    assert far[1]["test"]["verdict"] == "direction holds, not significant"
    assert math.isclose(far[1]["test"]["effect"], 0.01)


def _results(seed: int, section: dict, levels=(0.6, 0.9)) -> dict:
    section = {**section, "claims": C.section_claims(section, levels)}
    return {"params": {"seed": seed}, "levels": list(levels), "authorized": {"A": section}}


def test_claims_over_seeds_keep_each_seeds_own_test_and_name_the_seeds_that_miss_a_level():
    s0 = _section()
    s1 = _section()
    s1["ours"][1] = row([1] * 6 + [0] * 4, [1] * 3 + [0] * 7, [0] * 7 + [1] * 3, c=1.0)  # seed 1 never reaches 90 %
    R = _results(0, s0)
    R["other seeds"] = {"1": _results(1, s1)}
    assert list(C.seed_results(R)) == [0, 1]
    rows = C.claims_over_seeds(R)
    by = {(r["claim"], r["setting"]): r for r in rows}
    assert {r["claim"] for r in rows} == {"fig1", "a", "b", "c"}
    # Fig. 1 at c = 1: seed 0 gains 7 trials over (ori) (significant), seed 1 only 4 (not)
    f = by[("fig1", "c=1")]
    assert f["seeds"] == [0, 1] and f["effects"] == pytest.approx([0.7, 0.4])
    assert f["verdicts"] == [R["authorized"]["A"]["claims"]["fig1_contrast"][1]["test"]["verdict"],
                             R["other seeds"]["1"]["authorized"]["A"]["claims"]["fig1_contrast"][1]["test"]["verdict"]]
    assert f["verdicts"] == ["holds (significant)", "direction holds, not significant"]
    assert f["summary"] == "holds (significant) in 1 of 2 seeds; direction holds, not significant in 1"
    assert f["spread"] == "+40.0 … +70.0; mean +55.0 ± 21.2 (sd)"
    # claim (a) at 90 %: measured in seed 0 only; seed 1 is named, not counted
    a = by[("a", "TAR 90%")]
    assert a["seeds"] == [0] and a["missing"] == [1]
    assert a["settings"] == {"0": "c=1/d=4", "1": "not matched"}
    assert by[("a", "TAR 60%")]["missing"] == [] and by[("a", "TAR 60%")]["effects"] == pytest.approx([0.6, 0.6])
    assert by[("b", "TAR")]["unit"] == "per unit" and len(by[("b", "targets")]["effects"]) == 2


def test_a_one_seed_results_dict_is_its_own_only_seed():
    R = _results(3, _section())
    assert list(C.seed_results(R)) == [3]
    assert all(r["seeds"] in ([3], []) for r in C.claims_over_seeds(R))
