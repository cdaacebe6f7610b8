"""TIP-IM's claims (facelab.experiments.tip_im_claims) and pages (tip_im_report) on hand-built
results dicts whose answers are known: no model runs, the per-probe outcomes are given."""
import json
import math
from pathlib import Path

import pytest

from facelab.experiments import tip_im as E
from facelab.experiments import tip_im_claims as C
from facelab.experiments import tip_im_report as R
from facelab.metrics.claims import SeedSpread, sign_test

BLACK = ("m1", "m2")
PROBES = [10, 11, 12, 13, 14]
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def row(method, gamma, model, hits, chance=0.2, psnr=None, ssim=None, box="black"):
    n = len(hits)
    psnr = psnr or [30.0] * n
    ssim = ssim or [0.8] * n
    return {"method": method, "gamma": gamma, "model": model, "box": box, "R1-T": sum(hits) / n, "R5-T": sum(hits) / n,
            "R1-UT": 0.5, "R5-UT": 0.5, "chance R1-T": chance, "chance R5-T": 0.7, "R1-T per probe": list(hits),
            "R5-T per probe": list(hits), "PSNR per probe": psnr, "SSIM per probe": ssim, "PSNR": sum(psnr) / n,
            "SSIM": sum(ssim) / n, "MMD": 0.05, "probes": n, "probe ids": list(PROBES[:n]), "gallery": 55,
            "targets": 7, "seconds": 1.5, "surrogate": "w", "data": "offline", "mode": "leave-one-out"}


def setting(method, gamma, hits_m1, hits_m2, **kw):
    return [row(method, gamma, "w", [1] * len(hits_m1), box="white", **kw),
            row(method, gamma, "m1", hits_m1, **kw), row(method, gamma, "m2", hits_m2, **kw)]


ONES, ZEROS = [1] * 5, [0] * 5


def seed_rows(g=(ONES, ONES), single=(ZEROS, ZEROS), g1=None, g2=(ONES, [0, 1, 1, 0, 1]),
              random=([0, 0, 0, 0, 0], [1, 1, 1, 1, 1]), no_div=(ZEROS, ZEROS), code=(ONES, ONES),
              chance_g=0.5, chance_single=0.1, psnr=((20.0,) * 5, (21.0,) * 5), ssim=((0.8,) * 5, (0.7,) * 5)):
    """One seed's rows.  With the defaults: G hits all 10 (model, probe) pairs, single none
    (10:0); G1 = G (no difference); G2 misses 2 pairs G hits (2:0); random hits 5, all of them
    hits of G too, so G wins 5:0; PSNR rises by exactly 1 from γ 0 to 10, SSIM falls by 0.1."""
    rows = setting("clean", float("nan"), ZEROS, ZEROS)
    rows += setting("single", 0.0, *single, chance=chance_single)
    rows += setting("random", 0.0, *random, chance=chance_g)
    rows += setting("G2", 0.0, *g2, chance=chance_g)
    rows += setting("G1", 0.0, *(g1 or g), chance=chance_g)
    rows += setting("G", 0.0, *g, chance=chance_g, psnr=list(psnr[0]), ssim=list(ssim[0]))
    rows += setting("G", 10.0, *g, chance=chance_g, psnr=list(psnr[1]), ssim=list(ssim[1]))
    rows += setting("G, no diversity", 0.0, *no_div, chance=chance_g)
    rows += setting("G, released code", 0.0, *code, chance=chance_g)
    return rows


def results(*per_seed, seeds=None, fast=False):
    seeds = list(seeds or range(len(per_seed)))
    return {"schema": E.SCHEMA, "fast": fast, "command": "python -m benchmarks tip_im", "machine": "test machine",
            "data": {"arg": "offline", "name": "offline", "credit": "", "photos": 81},
            "params": {"surrogate": "w", "black_boxes": list(BLACK), "steps": 50, "eps": 12 / 255, "alpha": 1.5 / 255,
                       "mu": 1.0, "diversity_prob": 1.0, "probes_per_identity": 4, "max_gallery_per_identity": 4,
                       "gammas": [0.0, 10.0], "settings": []},
            "seeds": seeds, "minutes": {str(s): 1.25 + s for s in seeds},
            "rows": per_seed[0], "rows of other seeds": {str(s): r for s, r in zip(seeds[1:], per_seed[1:])}}


def by_label(claims):
    return {c["label"]: c for c in claims}


def test_paired_claims_count_discordant_pairs_and_test_them_exactly():
    m = by_label(C.measure(seed_rows()))
    a = m["(a) G − single, black-box R1-T"]
    assert (a["wins"], a["losses"], a["n"]) == (10, 0, 10)
    assert a["p"] == pytest.approx(2 * 0.5 ** 10) and a["p"] == sign_test(10, 0)
    assert a["effect"] == 1.0 and a["ci"] == [1.0, 1.0]
    assert a["verdict"] == "holds (significant)"
    g1 = m["(c) G − G1, black-box R1-T"]
    assert (g1["wins"], g1["losses"], g1["effect"], g1["p"]) == (0, 0, 0.0, 1.0)
    assert g1["verdict"] == "no difference"
    g2 = m["(c) G − G2, black-box R1-T"]
    assert (g2["wins"], g2["losses"], g2["p"]) == (2, 0, 0.5)
    assert g2["effect"] == pytest.approx(0.2)
    assert g2["verdict"] == "direction holds, not significant", "p = 0.5: the direction alone"
    rnd = m["(c) G − random, black-box R1-T"]
    assert (rnd["wins"], rnd["losses"]) == (5, 0) and rnd["p"] == pytest.approx(0.0625)
    assert rnd["ci"][0] > 0 and rnd["verdict"] == "direction holds, not significant", \
        "a CI above 0 is not enough: the sign test must also give p < 0.05"


def test_reversed_claims_and_the_released_code_row_compare_in_its_own_direction():
    rows = seed_rows(no_div=(ONES, ONES), code=(ZEROS, ZEROS))
    m = by_label(C.measure(rows))
    d = m["(d) G with − without input diversity, black-box R1-T"]
    assert d["verdict"] == "no difference"
    code = m["released code − paper (G), black-box R1-T (no predicted direction)"]
    assert (code["a"], code["b"]) == ("G, released code", "G")
    assert (code["wins"], code["losses"], code["effect"]) == (0, 10, -1.0)
    assert code["verdict"] == "reversed (significant)"


def test_beyond_chance_shifts_effect_and_ci_by_the_chance_levels_and_has_no_sign_test():
    a2 = by_label(C.measure(seed_rows()))["(a′) G − single, black-box R1-T above chance"]
    # G 1.0 - 0.5 chance, single 0.0 - 0.1 chance: +0.6 over the 10 pairs, CI [1, 1] shifted by 0.4
    assert a2["p"] is None
    assert a2["effect"] == pytest.approx(0.6) and a2["ci"] == pytest.approx([0.6, 0.6])
    assert a2["above_a"] == pytest.approx(0.5) and a2["above_b"] == pytest.approx(-0.1)
    assert a2["verdict"] == "holds (significant)"
    # G at 0.3 with chance 0.5 against single at 0 with chance 0: (a) holds, (a′) is reversed
    g = ([1, 1, 0, 0, 0], [1, 0, 0, 0, 0])
    m = by_label(C.measure(seed_rows(g=g, g1=g, chance_g=0.5, chance_single=0.0)))
    assert m["(a) G − single, black-box R1-T"]["effect"] == pytest.approx(0.3)
    a2 = m["(a′) G − single, black-box R1-T above chance"]
    assert a2["effect"] == pytest.approx(-0.2) and a2["verdict"].startswith("reversed")


def test_quality_steps_pair_probes_between_consecutive_gammas():
    steps = C.quality_steps(seed_rows(psnr=((20, 21, 22, 23, 24), (21, 22, 23, 24, 25))))
    assert [(q["measure"], q["gamma_from"], q["gamma_to"]) for q in steps] == [("PSNR", 0.0, 10.0), ("SSIM", 0.0, 10.0)]
    psnr, ssim = steps
    assert psnr["effect"] == pytest.approx(1.0) and psnr["ci"] == pytest.approx([1.0, 1.0])
    assert psnr["verdict"] == "holds (significant)" and psnr["p"] is None and psnr["n"] == 5
    assert ssim["effect"] == pytest.approx(-0.1) and ssim["verdict"] == "reversed (significant)"
    with pytest.raises(ValueError, match="two or more"):
        C.quality_steps([r for r in seed_rows() if r["gamma"] != 10.0])


def test_measure_keeps_the_tables_order_and_pairs_only_matching_rows():
    labels = [c["label"] for c in C.measure(seed_rows())]
    assert labels == ["(a) G − single, black-box R1-T", "(a′) G − single, black-box R1-T above chance",
                      "(b) PSNR rises, γ 0→10 (G; change per probe)", "(b) SSIM rises, γ 0→10 (G; change per probe)",
                      "(c) G − G1, black-box R1-T", "(c) G − G2, black-box R1-T", "(c) G − random, black-box R1-T",
                      "(d) G with − without input diversity, black-box R1-T",
                      "released code − paper (G), black-box R1-T (no predicted direction)"]
    rows = seed_rows()
    for r in rows:
        if r["method"] == "single":
            r["probe ids"] = [p + 100 for p in r["probe ids"]]
    with pytest.raises(ValueError, match="not paired"):
        C.paired(rows, "G", "single")
    with pytest.raises(KeyError):
        C.pairs(rows, "G", 30.0)


def test_over_seeds_keeps_each_seeds_verdict_and_counts_them():
    # seed 1: single hits as often as G, so (a) has no difference there
    R_ = results(seed_rows(), seed_rows(single=(ONES, ONES)), seeds=[3, 7])
    rec = {r["claim"]: r for r in C.claims(R_)["over seeds"]}
    a = rec["(a) G − single, black-box R1-T"]
    assert a["seeds"] == [3, 7] and a["effects"] == [1.0, 0.0]
    assert a["verdicts"] == ["holds (significant)", "no difference"] and not a["stable"]
    assert a["p"] == [pytest.approx(2 * 0.5 ** 10), 1.0]
    assert (a["min"], a["max"], a["mean"]) == (0.0, 1.0, 0.5) and a["sd"] == pytest.approx(math.sqrt(0.5))
    assert SeedSpread.from_record(a).verdicts_summary() == "holds (significant) in 1 of 2 seeds; no difference in 1"
    b = rec["(b) PSNR rises, γ 0→10 (G; change per probe)"]
    assert b["stable"] and b["p"] == [None, None]
    assert C.probes_in_every_seed(R_) == 5
    rates = C.rates_by_setting(R_)
    assert [(r["method"], r["gamma"]) for r in rates][1:3] == [("single", 0.0), ("random", 0.0)]
    assert math.isnan(rates[0]["gamma"]) and rates[1]["per seed"] == {3: {"rate": 0.0, "chance": 0.1},
                                                                      7: {"rate": 1.0, "chance": 0.1}}


def test_over_seeds_refuses_seeds_that_measured_other_claims():
    per = {0: C.measure(seed_rows()), 1: C.measure(seed_rows())[:-1]}
    with pytest.raises(ValueError, match="other claims"):
        C.over_seeds(per)


def test_render_has_every_section_and_the_claims_modules_verdicts():
    R_ = results(seed_rows(), seed_rows(single=(ONES, ONES)), seeds=[3, 7])
    page = R.render(R_)
    assert page.startswith("# TIP-IM: the paper's qualitative claims on facelab's pool, over seeds 3, 7\n\n"
                           "Command: `python -m benchmarks tip_im`  \nMachine: test machine\n\n| claim (effect: A − B) |")
    for heading in ("## Black-box Rank-1-T per setting and seed", "## Seed 3 in detail", "## Summary per method, seed 3"):
        assert f"\n\n{heading}\n\n|" in page
    assert "Minutes per seed: seed 3 4.2, seed 7 8.2; total 12.5 min." in page
    assert "(5 of the 5 probes are probes in every seed)" in page and "same 81 photos" in page
    assert "ε = 12/255 (L∞), α = 1.5/255, μ = 1, T = 50" in page and "α = 1.5·ε/T = 0.36/255" in page
    assert "(5 probes × 2 black-box models = 10 pairs)" in page
    for rec in C.claims(R_)["over seeds"]:
        line = next(l for l in page.splitlines() if l.startswith(f"| {rec['claim']} |"))
        assert SeedSpread.from_record(rec).verdicts_summary() in line
        for v in rec["verdicts"]:
            assert f": {v} |" in line
    # (a) is a split verdict (not bold); (b) agrees in both seeds (bold)
    assert "| holds (significant) in 1 of 2 seeds; no difference in 1 |" in page
    assert "| **holds (significant) in 2 of 2 seeds** |" in page
    detail = page.split("## Seed 3 in detail")[1].split("## Summary")[0]
    assert ("| (a) multi-target G beats single-target on black-box R1-T | G 1.000 (chance 0.500) vs single 0.000 "
            "(chance 0.100) | **holds (significant)**: 1.000 vs 0.000 (n = 10; discordant 10:0; Δ 95% CI "
            "[+1.000, +1.000]; sign test p = 0.002) |") in detail
    assert "**holds (significant)**: above chance G +0.500, single -0.100; difference +0.600" in detail
    assert "SSIM: γ 0→10: -0.100 [-0.100, -0.100] reversed (significant)" in detail
    assert "| clean | — | 0.000 (0.200) | 0.000 (0.200) | 0.000 … 0.000 |" in page
    assert "smoke run" not in page
    assert "smoke run: not a result" in R.render({**R_, "fast": True}).splitlines()[2]


def test_render_is_a_function_of_the_json_alone():
    R_ = results(seed_rows(), seed_rows(g2=(ONES, ONES)), seeds=[0, 1])
    saved = json.loads(json.dumps(R_))
    assert R.render(saved) == R.render(R_)
    full = R.render_full(saved)
    assert full == R.render_full(R_)
    assert full.startswith("# TIP-IM: every model (offline set), seeds 0, 1\n\nCommand: ")
    assert full.count("| method | gamma | model | box | R1-T |") == 2 and "## Seed 1\n\n" in full
    md = R.claims_markdown(saved)
    assert R.seeds_table(saved) in md and "## Seed 0 in detail" in md and "## Summary" not in md


def test_load_results_needs_the_current_schema(tmp_path):
    assert E.load_results(tmp_path / "absent.json") is None
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"rows": []}))
    assert E.load_results(p) is None, "a file of the old layout (no schema)"
    p.write_text("not json")
    assert E.load_results(p) is None
    R_ = results(seed_rows())
    p.write_text(json.dumps(R_))
    assert E.load_results(p)["seeds"] == [0]


def test_the_committed_results_render_to_the_committed_pages():
    R_ = E.benchmark_results()
    if R_ is None:
        pytest.skip("no benchmarks/results/tip_im.json of the current schema (rerun python -m benchmarks tip_im)")
    assert R.render(R_) == (RESULTS / "tip_im.md").read_text()
    assert R.render_full(R_) == (RESULTS / "tip_im_full.md").read_text()
