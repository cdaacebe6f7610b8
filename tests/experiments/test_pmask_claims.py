"""PMask's claim verdicts and report on small synthetic results dicts (no weights needed): known counts give
known p-values and verdicts, known per-seed outcomes give known per-seed verdicts and the right verdict over
seeds, and every caveat (unmatched SSIM, the step cap, a run cut short) is worded."""
import copy
import json

import pytest

from facelab.experiments import pmask as E
from facelab.experiments import pmask_claims as C
from facelab.experiments.pmask_report import claims_markdown, render
from facelab.metrics.claims import VERDICTS, SeedSpread

MODELS = ["a", "b", "c", "d"]  # team a + b; median team a + c; black box c, d; in neither team: d


def _run(protected: dict, ssim, seconds, iterations, converged=None) -> dict:
    return {"outcomes": {m: list(protected.get(m, [0] * 12)) for m in MODELS}, "ssim": list(ssim),
            "psnr": [35.0] * len(ssim), "iterations": list(iterations), "seconds": list(seconds),
            "converged": [] if converged is None else list(converged)}


def seed_entry(probes=range(12), elapsed=60.0, **runs) -> dict:
    """One seed's part of a results dict; PMask protects every black-box probe, Fawkes none, unless ``runs``
    say otherwise."""
    all_ones, none = [1] * 12, [0] * 12
    base = {
        "pmask": _run({"c": all_ones, "d": all_ones}, [0.95] * 4, [2.0] * 4, [30] * 4, [True] * 4),
        "fawkes": _run({"c": none, "d": none}, [0.95] * 4, [5.0] * 4, [150] * 4),
        "tip_im": _run({}, [0.90] * 4, [1.0] * 4, [50] * 4),
        "pmask δ=0.5": _run({"d": [1] * 6 + [0] * 6}, [0.97] * 4, [1.0] * 4, [20] * 4, [True] * 4),
        "pmask median team": _run({"d": [1] * 2 + [0] * 10}, [0.95] * 4, [2.0] * 4, [30] * 4, [True] * 4),
    }
    base.update(runs)
    return {"split": "4 masked photos, 12 probes", "probes": list(probes), "faces": list(range(4)),
            "clean": {m: [0] * 12 for m in MODELS}, "runs": base, "elapsed": elapsed}


def results(*entries, seeds=None) -> dict:
    """A results dict with one ``seed_entry`` per seed (default: one complete seed 0)."""
    entries = entries or (seed_entry(),)
    seeds = list(range(len(entries))) if seeds is None else list(seeds)
    return {"schema": E.SCHEMA, "fast": False, "threads": 2, "command": "python -m benchmarks pmask --threads 2",
            "machine": "test machine", "load_start": "0.1/0.1/0.1", "load_end": "0.2/0.1/0.1", "busy": False,
            "data": "synthetic", "models": MODELS, "team": ["a", "b"], "median_team": ["a", "c"],
            "settings": {"omega": 0.017, "deltas": [0.5, 1.0], "steps": 200, "lr": 0.005, "init_noise": 1 / 255,
                         "fawkes_steps": 150, "tip_steps": 50, "eps": 12 / 255, "n_targets": 3},
            "diversity": {"ranking": [[["a", "b"], 0.9], [["a", "c"], 0.5], [["b", "d"], 0.1]], "failures": [1, 2, 3, 4],
                          "n_pairs": 10, "tied": 1, "best": 0.9},
            "elapsed": 12.0 + sum(e["elapsed"] for e in entries), "seeds": seeds,
            "per seed": {str(s): e for s, e in zip(seeds, entries)}}


def one(**runs) -> dict:
    """One seed's flat view (what the claim functions read)."""
    return C.for_seed(results(seed_entry(**runs)), 0)


def record(R: dict, label_start: str) -> dict:
    return next(r for r in C.claims(R)["over seeds"] if r["label"].startswith(label_start))


def test_claim_a_counts_black_box_pairs_and_holds_at_matched_ssim():
    a = C.claim_a(one())
    assert a["black"] == ["c", "d"] and a["n"] == 24
    assert (a["pmask_only"], a["fawkes_only"]) == (24, 0)
    assert a["p"] == pytest.approx(2 * 0.5 ** 24)
    assert a["ssim_matched"] and a["verdict"] == VERDICTS[0]


def test_claim_a_is_not_established_when_pmask_spent_more_of_the_ssim_budget():
    R = one()
    R["runs"]["pmask"]["ssim"] = [0.90] * 4  # 0.05 below Fawkes
    a = C.claim_a(R)
    assert a["psr_verdict"] == VERDICTS[0]
    assert a["verdict"].startswith("not established at matched SSIM (PMask's SSIM is 0.050 lower")
    R["runs"]["pmask"]["ssim"] = [0.99] * 4  # higher SSIM and more protection: the claim stands
    assert C.claim_a(R)["verdict"] == VERDICTS[0]


def test_claim_b_pairs_faces_and_words_the_step_cap():
    rows = {(r["what"], r["other"]): r for r in C.claim_b(one())}
    it = rows[("iterations", "Fawkes")]
    assert (it["better"], it["worse"]) == (4, 0) and it["p"] == pytest.approx(0.125)
    assert it["verdict"] == VERDICTS[1]  # 4 of 4 faces cannot reach p < 0.05
    assert rows[("SSIM", "TIP-IM")]["verdict"] == VERDICTS[1]
    R = one()
    R["runs"]["pmask"]["converged"] = [True, False, True, True]  # one face capped: fewer iterations is a lower bound
    rows = {(r["what"], r["other"]): r for r in C.claim_b(R)}
    assert rows[("iterations", "Fawkes")]["verdict"].startswith("not established: PMask hit its 30-step cap on 1 of 4")
    assert rows[("iterations", "Fawkes")]["caveat"] == C.CAPPED
    assert rows[("SSIM", "Fawkes")]["verdict"] == VERDICTS[2]  # SSIM is measured, the cap does not bias it
    R["runs"]["pmask"]["seconds"] = [9.0] * 4  # slower than TIP-IM and capped: the caveat says it is worse still
    assert C.claim_b(R)[-1]["verdict"] == f"{VERDICTS[3]} (PMask hit its 30-step cap on 1 of 4 faces: its " \
                                                  "true cost there is higher still)"
    assert C.claim_b(R)[-1]["note"] == C.CAP_NOTE and C.claim_b(R)[-1]["caveat"] is None


def test_claim_c_compares_the_teams_on_the_models_in_neither():
    c = C.claim_c(one())
    assert c["common"] == ["d"] and c["n"] == 12
    assert (c["top_only"], c["median_only"]) == (10, 0) and c["p"] == pytest.approx(2 * 0.5 ** 10)
    assert (c["d_top"], c["d_median"]) == (0.9, 0.5) and c["verdict"] == VERDICTS[0]


def test_claim_d_larger_delta_protects_more_and_costs_ssim_and_time():
    d = C.claim_d(one())
    assert (d["protection"]["larger_only"], d["protection"]["smaller_only"]) == (6 + 12, 0)
    assert d["protection"]["n"] == 4 * 12 and d["ssim_lower"]["n"] == 4
    assert d["protection"]["verdict"] == VERDICTS[0]
    assert (d["ssim_lower"]["lower"], d["time_longer"]["longer"]) == (4, 4)
    assert [r["delta"] for r in d["rows"]] == [0.5, 1.0] and d["rows"][1]["psr_black"] == 1.0


def test_speed_against_the_target():
    assert C.speed(one())["met"]
    R = one()
    R["runs"]["pmask"]["seconds"] = [10.2, 10.4, 10.3, 9.0]
    s = C.speed(R)
    assert s["median"] == pytest.approx(10.25) and not s["met"]


def test_a_seed_view_is_the_shared_fields_with_the_seeds_own():
    R = results(seed_entry(), seed_entry(probes=range(1, 13), elapsed=30.0), seeds=[5, 7])
    V = C.for_seed(R, 7)
    assert V["seed"] == 7 and V["probes"] == list(range(1, 13)) and V["elapsed"] == 30.0
    assert V["team"] == ["a", "b"] and "per seed" not in V and V["runs"] is R["per seed"]["7"]["runs"]
    assert C.seed_list(R) == C.measured_seeds(R) == [5, 7]
    assert C.kept_in_every_seed(R, "probes") == (11, 12) and C.kept_in_every_seed(R, "faces") == (4, 4)


def test_measure_gives_one_row_per_comparison_with_the_net_share_as_effect():
    rows = C.measure(one())
    assert [r["claim"] for r in rows] == ["a"] + ["b"] * 6 + ["c"] + ["d"] * 3
    a = rows[0]
    assert (a["for"], a["against"], a["n"], a["effect"]) == (24, 0, 24, 1.0)  # = PSR 100% − 0%
    c = rows[7]
    assert c["effect"] == pytest.approx(10 / 12) and c["verdict"] == VERDICTS[0]
    assert all(r["verdict"] in VERDICTS for r in rows)


def test_known_per_seed_outcomes_give_known_verdicts_and_the_summary_over_seeds():
    none = [0] * 12
    R = results(
        seed_entry(),  # (a) 24:0, p ≈ 1e-7: holds (significant)
        seed_entry(pmask=_run({"c": [1] * 3 + [0] * 9, "d": none}, [0.95] * 4, [2.0] * 4, [30] * 4, [True] * 4)),
        seed_entry(fawkes=_run({"c": [1] * 12, "d": [1] * 12}, [0.95] * 4, [5.0] * 4, [150] * 4),
                   pmask=_run({"c": [1] * 12, "d": [1] * 6 + [0] * 6}, [0.95] * 4, [2.0] * 4, [30] * 4, [True] * 4)),
        seeds=[0, 1, 2])
    a = record(R, "(a)")
    assert a["seeds"] == [0, 1, 2]
    assert a["verdicts"] == [VERDICTS[0], VERDICTS[1], VERDICTS[4]]  # 24:0; 3:0 (p = 0.25); 0:6 (p = 0.031)
    assert a["effects"] == pytest.approx([1.0, 3 / 24, -6 / 24])
    assert (a["min"], a["max"]) == pytest.approx((-0.25, 1.0)) and a["mean"] == pytest.approx((1 + 0.125 - 0.25) / 3)
    assert a["headline"] == ("holds (significant) in 1 of 3 seeds; direction holds, not significant in 1; "
                             "reversed (significant) in 1")
    assert not a["stable"]
    c = record(R, "(c)")  # on model d: top 12:0 … 0:2 … 6 vs median's 2 of 12 (4:0, p = 0.125)
    assert c["verdicts"] == [VERDICTS[0], VERDICTS[3], VERDICTS[1]]
    assert c["headline"] == ("holds (significant) in 1 of 3 seeds; direction holds, not significant in 1; "
                             "reversed, not significant in 1")
    assert record(R, "(b) SSIM: PMask higher than TIP-IM")["stable"]  # the same SSIMs in every seed


def test_the_matched_ssim_caveat_leads_the_verdict_over_seeds():
    R = results(seed_entry(), seed_entry(), seed_entry(), seeds=[0, 1, 2])
    R["per seed"]["1"]["runs"]["pmask"]["ssim"] = [0.90] * 4
    a = record(R, "(a)")
    assert a["caveats"] == [None, C.NOT_MATCHED, None] and a["verdicts"] == [VERDICTS[0]] * 3
    assert a["headline"] == ("not established at matched SSIM in 1 of 3 seeds (seed 1); on PSR alone: "
                             "holds (significant) in 3 of 3 seeds")
    assert not a["stable"]
    for s in ("0", "2"):
        R["per seed"][s]["runs"]["pmask"]["ssim"] = [0.90] * 4
    a = record(R, "(a)")
    assert a["stable"] and a["headline"].startswith("not established at matched SSIM in 3 of 3 seeds; on PSR alone")


def test_the_step_cap_is_carried_into_the_verdict_over_seeds():
    R = results(seed_entry(), seed_entry(), seeds=[0, 1])
    R["per seed"]["1"]["runs"]["pmask"]["converged"] = [True, False, True, True]
    it = record(R, "(b) iterations: PMask fewer than Fawkes")
    assert it["caveats"] == [None, C.CAPPED]
    assert it["headline"] == ("not established: PMask hit its step cap in 1 of 2 seeds (seed 1); counting the "
                              "capped faces as they are: direction holds, not significant in 2 of 2 seeds")
    for s in ("0", "1"):  # slower than TIP-IM and capped in both seeds: the verdict stands, with the note
        R["per seed"][s]["runs"]["pmask"]["converged"] = [True, False, True, True]
        R["per seed"][s]["runs"]["pmask"]["seconds"] = [9.0] * 4
    sec = record(R, "(b) seconds/face: PMask fewer than TIP-IM")
    assert sec["headline"] == f"{VERDICTS[3]} in 2 of 2 seeds; in 2 of 2 seeds {C.CAP_NOTE}" and sec["stable"]


def test_a_verdict_that_does_not_follow_from_its_effect_is_refused():
    rows = C.measure(one())
    rows[0] = {**rows[0], "effect": -rows[0]["effect"]}
    with pytest.raises(ValueError, match="does not follow"):
        C.over_seeds({0: rows})


def test_page_shows_every_seed_the_spread_and_the_verdicts_over_seeds():
    R = results(seed_entry(), seed_entry(probes=range(1, 13), elapsed=90.0),
                seed_entry(pmask=_run({"c": [1] * 12, "d": [0] * 12}, [0.90] * 4, [12.0] * 4, [200] * 4, [False] * 4)),
                seeds=[0, 1, 2])
    page = render(R)
    assert page.startswith("# PMask: the paper's claims on facelab's pool, over seeds 0, 1, 2")
    for rec in C.claims(R)["over seeds"]:  # the table's last two columns: the spread, the verdict over seeds
        bold = "**" if rec["stable"] else ""
        assert f"| {SeedSpread.from_record(rec).spread()} | {bold}{rec['headline']}{bold} |" in page
    for title in ("## The claims over seeds 0, 1, 2", "## Focal diversity", "## PSR per intruder model, seed 0",
                  "## Seconds per face", "## (a)", "## (b)", "## (c)", "## (d)"):
        assert title in page
    assert "| claim (effect: net share for − against) | seed 0 | seed 1 | seed 2 |" in page
    assert "+1.000 (24:0 of 24, p = 1.2e-07): holds (significant)" in page  # seed 0's cell of (a)
    assert "not established at matched SSIM (PMask's SSIM 0.050 lower)" in page  # seed 2's cell of (a)
    assert "not pooled" in page and "Minutes per seed: seed 0 1.0, seed 1 1.5, seed 2 1.0" in page
    assert "79 of the 12 probes" not in page and "11 of the 12 probes are probes in every seed" in page
    assert "Target met in 2 of 3 seeds" in page
    a = record(R, "(a)")
    # the (a) section leads with its verdict over seeds
    assert f"Verdict over seeds 0, 1, 2: {a['headline']} (effect {SeedSpread.from_record(a).spread()})" in page
    assert f"Verdict, seed 0: {C.claim_a(C.for_seed(R, 0))['verdict']}." in page
    cm = claims_markdown(R)
    assert all(part in page for part in cm.split("\n\n## ")) and a["headline"] in cm
    assert "## Focal diversity" not in cm and "## (a)" in cm


def test_a_single_seed_run_renders():
    R = results(seeds=[4])
    page = render(R)
    assert "over seeds 4" in page and "| seed 4 |" in page and "seed 0" not in page and "seed 1" not in page
    assert "**holds (significant) in 1 of 1 seed**" in page
    assert "| +1.000 … +1.000; mean +1.000 ± 0.000 (sd) | **holds (significant) in 1 of 1 seed** |" in page


def test_the_page_is_a_function_of_the_json():
    R = results(seed_entry(), seed_entry(probes=range(1, 13)), seeds=[0, 1])
    saved = json.loads(json.dumps(R, ensure_ascii=False))
    assert render(saved) == render(R) == render(copy.deepcopy(R))
    stored = {**saved, "claims over seeds": [{"headline": "stale"}]}  # the page recomputes, never reads this
    assert render(stored) == render(saved)
    saved["per seed"]["1"]["runs"]["fawkes"]["outcomes"]["c"] = [1] * 12  # other outcomes, another page
    assert render(saved) != render(R)


def test_a_run_cut_short_renders_what_it_measured():
    R = results(seed_entry(), seed_entry(), seeds=[0, 1, 2])
    R["per seed"]["1"]["runs"] = {k: R["per seed"]["1"]["runs"][k] for k in ("pmask", "fawkes")}
    page = render(R)
    assert "not measured (run cut short)" in page and "The run stopped before seed 2" in page
    assert record(R, "(a)")["seeds"] == [0, 1] and record(R, "(c)")["seeds"] == [0]
    R["per seed"] = {"0": R["per seed"]["0"]}
    R["per seed"]["0"]["runs"] = {k: R["per seed"]["0"]["runs"][k] for k in ("pmask", "fawkes")}
    page = render(R)
    assert "## (a)" in page and "## (b)" not in page and "## (d)" not in page
    assert "## (c) Top team vs median team\n\nNot measured yet" in page
    R["per seed"]["0"]["runs"] = {}
    assert "## PSR per intruder model" not in render(R)
    R["per seed"] = {}
    assert "## Focal diversity" in render(R) and "## The claims over seeds" not in render(R)


def test_load_results_takes_only_the_current_schema(tmp_path):
    path = tmp_path / "pmask.json"
    assert E.load_results(path) is None
    path.write_text(json.dumps(results()))
    assert E.load_results(path) == json.loads(json.dumps(results()))
    path.write_text(json.dumps({**results(), "schema": 2}))  # one draw, its runs at the top
    assert E.load_results(path) is None
    path.write_text(json.dumps({"pmask": {}, "team": ["a"]}))  # the schema before: no "schema" key
    assert E.load_results(path) is None


def test_committed_results_have_the_current_schema():
    from facelab.experiments.results import RESULTS_DIR

    if not (RESULTS_DIR / "pmask.json").is_file():
        pytest.skip("no benchmarks/results/pmask.json beside this facelab")
    assert json.loads((RESULTS_DIR / "pmask.json").read_text())["schema"] == E.SCHEMA, \
        "benchmarks/results/pmask.json is of an older schema: rerun python -m benchmarks pmask"


def test_committed_page_is_the_render_of_the_committed_json():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("benchmarks/results/pmask.json is absent or of an older schema (rerun python -m benchmarks pmask)")
    from facelab.experiments.results import RESULTS_DIR

    assert render(R) == (RESULTS_DIR / "pmask.md").read_text()
