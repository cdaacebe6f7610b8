"""PMT's claim verdicts and results page on small synthetic results dicts (no weights needed): known decisions give
known discordant counts, p-values and verdicts; the "not at comparable authorized acc" caveat, the authorized-acc
rule of claim (d) and the age direction of claim (e) are each exercised; known per-seed outcomes give known per-seed
verdicts, spreads and verdicts over seeds; render() words what the claims computed."""
import copy
import json

import pytest

from facelab.experiments import pmt as E
from facelab.experiments import pmt_claims as C
from facelab.experiments.pmt_report import EFFECT_TEXT, claims_markdown, numbers, render
from facelab.metrics.claims import VERDICTS

AUTH = "mobileface"
MODELS = ["faceres", "mobileface", "mobilefacenet"]
MR = {"MR-PMT 2": ["mobileface", "mobilefacenet"]}
N = 10  # pairs
#: one seed's entries of a results dict (everything else is the run's, shared by the seeds)
SEED_KEYS = ("seed_minutes", "resumed", "protocol", "labels", "recface_data", "clean", "clean_noisy", "settings",
             "reconstruction", "white_box_seconds", "attributes", "up", "recface")


def _dec(k: int) -> list[bool]:
    """N decisions, the first k correct."""
    return [True] * k + [False] * (N - k)


def _setting(authorized=(AUTH,), **acc) -> dict:
    """A setting whose models get the first ``acc[model]`` pairs right (authorized 9 of 10, others 0 by default)."""
    dec = {m: _dec(acc.get(m.replace("-", "_"), 9 if m in authorized else 0)) for m in MODELS}
    return {"authorized": list(authorized), "params": {}, "seconds": 3.0, "ssim": [0.05, 0.07],
            "decisions": dec, "noisy_decisions": copy.deepcopy(dec)}


def results(**settings) -> dict:
    """One seed's complete view (what ``C.seed_results`` gives): every unauthorized model recognises no PMT
    image, every clean one."""
    S = {"default": _setting(),
         "init=shuffle": _setting(faceres=8, mobilefacenet=8),
         "augment=none": _setting(),
         "aggregate=False": _setting(mobileface=0),
         "MR-PMT 2": _setting(MR["MR-PMT 2"], mobilefacenet=10)}
    S.update(settings)
    probes = [0, 1]
    return {
        "schema": E.SCHEMA, "command": "python -m benchmarks pmt --threads 2", "machine": "test machine",
        "threads": 2, "load": {"start": 0.5, "end": 0.7}, "minutes": 3.9, "fast": False,
        "data": {"faces": 20, "identities": 5}, "authorized": AUTH, "mr": MR, "far": 0.01, "server_noise": 0.1,
        "models": MODELS,
        "params": {"steps": 200, "shallow_layers": 5, "white_box_steps": 40, "recface_iterations": 200,
                   "recface_fast_iterations": 60, "one_face_steps": 200},
        "thresholds": {"faceres": 0.5, "mobileface": 0.25, "mobilefacenet": 0.3},
        "timings": {"pmt_one_face": [2.9, 3.1, 2.8], "recface_fast": 2.4},
        "seeds": [0], "seed": 0,
        "seed_minutes": 1.3, "resumed": [], "recface_data": "synthetic faces", "white_box_seconds": 2.7,
        "protocol": {"probes": probes, "pair_probe": [0] * 5 + [1] * 5, "pair_partner": list(range(2, 12)),
                     "pair_y": [1, 0, 0, 0, 0] * 2, "recon_test": [1], "recon_train": list(range(5, 20)), "note": ""},
        "labels": ["ann", "bob"],
        "clean": {m: _dec(N) for m in MODELS}, "clean_noisy": {m: _dec(8) for m in MODELS},
        "settings": S,
        "reconstruction": {f"{box}/{cond}": {"ssim": [s] * 6, "psnr": [10 * s] * 6, "cos": [c] * 6, "srra": [1.0] * 6}
                           for box in ("white", "black")
                           for cond, s, c in (("clean", 0.5, 0.6), ("pmt", 0.4, 0.5), ("random", 0.45, 0.7))},
        "attributes": {"pmt": {"emotion": [0.9] * 6, "age": [12.0] * 6},
                       "noise": {"emotion": [0.5] * 6, "age": [10.0] * 6}},
        "up": {"sigma": 0.1, "samples": 4, "pmt": [1.1] * 5 + [1.0], "original": [1.0] * 6},
        "recface": {"iterations": 200, "train_seconds": 9.2, "final_loss": 20.8},
    }


def run(*views, seeds=None) -> dict:
    """A results dict of the current schema (what the benchmark saves) from one seed view per seed."""
    seeds = list(range(len(views)) if seeds is None else seeds)
    shared = {k: v for k, v in views[0].items() if k not in SEED_KEYS and k != "seed"}
    return {**shared, "seeds": seeds, "per seed": {str(s): {k: v[k] for k in SEED_KEYS} for s, v in zip(seeds, views)}}


def _one(rows, comparison):
    (row,) = [r for r in rows if r["comparison"] == comparison]
    return row


# -- (a), (b): ablations -------------------------------------------------------------------


def test_ablation_pools_unauthorized_pairs_and_holds_when_the_default_is_lower():
    row = _one(C.ablations(results()), "default vs init=shuffle")
    assert row["claim"] == "(a) init: noise lowest unauthorized acc"
    (label, dec), (alabel, auth) = row["numbers"]
    assert (label, alabel) == ("unauthorized acc", "authorized acc")
    assert (dec["n"], dec["only_a"], dec["only_b"]) == (2 * N, 0, 16)  # faceres + mobilefacenet, 8 pairs each
    assert dec["p"] == pytest.approx(2 * 0.5 ** 16)
    assert (dec["a"], dec["b"]) == (0.0, 0.8)
    assert row["verdict"] == VERDICTS[0]


def test_ablation_reversed_when_the_alternative_is_lower():
    R = results(**{"augment=none": _setting()})
    R["settings"]["default"]["decisions"]["faceres"] = _dec(7)
    row = _one(C.ablations(R), "default vs augment=none")
    assert row["claim"] == "(b) augment=noise lowers unauthorized acc"
    assert row["numbers"][0][1]["only_a"] == 7 and row["verdict"] == VERDICTS[4]


def test_ablation_win_with_a_significantly_lower_authorized_acc_is_not_comparable():
    # the default recognises fewer unauthorized pairs (the claim's direction), but also none of the authorized
    # ones, against 10 of 10 without aggregation: a significantly lower authorized acc
    R = results(**{"aggregate=False": _setting(mobileface=10, faceres=6)})
    R["settings"]["default"]["decisions"][AUTH] = _dec(0)
    row = _one(C.ablations(R), "default vs aggregate=False")
    auth = row["numbers"][1][1]
    assert (auth["only_a"], auth["only_b"]) == (0, 10) and auth["p"] < 0.05
    assert row["verdict"] == VERDICTS[0] + C.NOT_COMPARABLE
    R["settings"]["default"]["decisions"][AUTH] = _dec(8)  # 8 vs 10: 0:2 discordant, p = 0.5
    row = _one(C.ablations(R), "default vs aggregate=False")
    assert row["numbers"][1][1]["p"] == pytest.approx(0.5) and row["verdict"] == VERDICTS[0]


def test_ablation_caveat_only_when_the_default_is_the_lower_one():
    R = results(**{"aggregate=False": _setting(mobileface=0, faceres=6)})  # the alternative's authorized acc collapses
    row = _one(C.ablations(R), "default vs aggregate=False")
    assert row["numbers"][1][1]["only_a"] == 9 and row["verdict"] == VERDICTS[0]


def test_ablations_skip_settings_not_run():
    rows = C.ablations(results())
    assert [r["comparison"] for r in rows] == ["default vs init=shuffle", "default vs augment=none",
                                               "default vs aggregate=False"]
    R = results()
    del R["settings"]["default"]
    assert C.ablations(R) == [] and C.server_noise(R) == []


def test_server_noise_claims_the_default_keeps_more_authorized_acc():
    R = results()
    R["settings"]["default"]["noisy_decisions"][AUTH] = _dec(9)
    R["settings"]["augment=none"]["noisy_decisions"][AUTH] = _dec(3)
    (row,) = C.server_noise(R)
    assert row["claim"] == "(b) augment=noise keeps authorized acc under server noise σ=0.1"
    assert row["numbers"][0][1]["only_a"] == 6 and row["verdict"] == VERDICTS[0]
    R["settings"]["augment=none"]["noisy_decisions"][AUTH] = _dec(9)
    assert C.server_noise(R)[0]["verdict"] == "no difference"


# -- (d): authorized high, unauthorized falls ---------------------------------------------------------


@pytest.mark.parametrize("k, clean, expected", [
    (9, 10, "holds (no significant drop, acc ≥ 0.8)"),
    (8, 8, "holds (no significant drop, acc ≥ 0.8)"),  # exactly the bar
    (7, 8, "no significant drop, but acc < 0.8"),
    (2, 10, "reversed: significant drop"),  # 0:8 discordant, p = 0.0078
])
def test_authorized_rule(k, clean, expected):
    R = results()
    R["settings"]["default"]["decisions"][AUTH] = _dec(k)
    R["clean"][AUTH] = _dec(clean)
    rows = C.authorized_and_unauthorized(R)
    assert _one(rows, "default: mobileface PMT vs clean")["verdict"] == expected


def test_a_significant_rise_is_no_drop():
    R = results()
    R["clean"][AUTH] = _dec(0)
    assert C.authorized_verdict(C.authorized_and_unauthorized(R)[0]["numbers"][0][1]) == \
        "holds (no significant drop, acc ≥ 0.8)"


def test_unauthorized_falls_for_single_and_mr_pmt():
    rows = C.authorized_and_unauthorized(results())
    assert [r["comparison"] for r in rows] == [
        "default: mobileface PMT vs clean", "default: faceres, mobilefacenet PMT vs clean",
        "MR-PMT 2: mobileface PMT vs clean", "MR-PMT 2: mobilefacenet PMT vs clean", "MR-PMT 2: faceres PMT vs clean"]
    single = rows[1]["numbers"][0][1]
    assert (single["n"], single["only_a"], single["only_b"]) == (20, 0, 20) and rows[1]["verdict"] == VERDICTS[0]
    mr = rows[4]["numbers"][0][1]
    assert mr["n"] == N and mr["p"] == pytest.approx(2 * 0.5 ** 10)
    assert rows[3]["verdict"].startswith("holds")  # mobilefacenet 10 of 10 as on clean images


# -- (c), (e), UP -----------------------------------------------------------------------------------


def test_reconstructions_directions():
    rows = C.reconstructions(results())
    assert [r["claim"] for r in rows][:3] == [
        "(c) white-box: SSIM to the original lower from PMT features",
        "(c) white-box: PSNR to the original lower from PMT features",
        "(c) white-box: COS stays high (PMT above the random-noise features)"]
    ssim, psnr, cos = rows[:3]
    s = ssim["numbers"][0][1]
    assert (s["a_higher"], s["b_higher"], s["n"]) == (6, 0, 6) and s["p"] == pytest.approx(2 / 64)
    assert s["diff"] == pytest.approx(0.1) and ssim["verdict"] == VERDICTS[0] and ssim["digits"] == 3
    assert psnr["digits"] == 2 and psnr["verdict"] == VERDICTS[0]
    assert cos["numbers"][0][1]["diff"] == pytest.approx(-0.2) and cos["verdict"] == VERDICTS[4]
    assert [r["claim"].split(":")[0] for r in rows[3:]] == ["(c) black-box"] * 3


def test_attributes_lower_cossim_but_higher_age_difference_is_the_claim():
    emotion, age = C.attributes(results())
    assert emotion["claim"] == "(e) attribute CosSim lower for PMT(x)" and emotion["verdict"] == VERDICTS[4]
    assert age["claim"] == "(e) attribute age difference (years) higher for PMT(x)" and age["verdict"] == VERDICTS[0]
    assert (emotion["digits"], age["digits"]) == (3, 2)
    assert age["comparison"] == "age: PMT(x) vs x + N(0, 0.3²)"


def test_utility_privacy_summary():
    s = C.utility_privacy(results())
    assert (s["a_higher"], s["b_higher"]) == (5, 0) and s["p"] == pytest.approx(2 / 32)
    assert s["diff"] == pytest.approx(0.5 / 6)


def test_claims_order():
    rows = C.claims(results())
    first = [r["claim"][:3] for r in rows]
    assert first == ["(a)"] + ["(b)"] * 3 + ["(d)"] * 5 + ["(c)"] * 6 + ["(e)"] * 2


# -- the page ---------------------------------------------------------------------------------------


def test_numbers_cell_wording():
    row = _one(C.ablations(results()), "default vs init=shuffle")
    assert numbers(row) == ("unauthorized acc 0.000 vs 0.800 (0:16 discordant of 20, p = 3.05e-05); "
                            "authorized acc 0.900 vs 0.900 (0:0 discordant of 10, p = 1)")
    (age,) = [r for r in C.attributes(results()) if r["comparison"].startswith("age")]
    assert numbers(age) == "12.00 vs 10.00, diff +2.00 [+2.00, +2.00] (sign 6:0 of 6, p = 0.0312)"


def test_render_has_every_section_and_the_computed_verdicts():
    V = results()
    R = run(V)  # a single-seed run still renders
    page = render(R)
    for heading in ("# PMT: the paper's claims on facelab's pool over seed 0, and timings", "## Data and settings",
                    "## Claims over seed 0", "## Claims, seed 0 in detail",
                    "## Strict accuracy (Eq. 10) per setting and model, seed 0", "## Reconstructions (Table 6), seed 0",
                    "## Attributes (Table 8) and UP (Eq. 9), seed 0", "## Timings"):
        assert f"\n{heading}\n" in "\n" + page
    for r in C.claims(V):
        assert f"| {r['claim']} | {r['comparison']} | {numbers(r)} | {r['verdict']} |" in page
    assert claims_markdown(R) in page
    assert "| claim | comparison | seed 0: effect, p, verdict | spread over seeds (min … max; mean ± sd) | " \
           "verdict over seeds |" in page
    assert ("| (a) init: noise lowest unauthorized acc | default vs init=shuffle | +0.800, p = 3.05e-05: holds "
            "(significant) | +0.800 … +0.800; mean +0.800 ± 0.000 (sd) | **holds (significant) in 1 of 1 seed** |") in page
    assert "Minutes per seed: seed 0 1.3; total 1.3 min" in page
    assert "| one seed of the protocol (5 settings, reconstructions, RecFace, attributes, UP) | seed 0 1.3 min |" in page
    assert page.endswith("on 2 idle cores.\n")
    assert "Command: `python -m benchmarks pmt --threads 2`  \n" in page
    assert "2 probes of 2 identities; 10 pairs (2 genuine, 8 impostor); reconstruction test: 1 probes" in page
    assert "| default | 0.000 | **0.900** | 0.000 | 0.900 | 0.060 | 3 |" in page
    assert "| MR-PMT 2 | 0.000 | **0.900** | **1.000** | 0.950 | 0.060 | 3 |" in page
    assert "| clean x | 1.000 | 1.000 | 1.000 | 0.800 | 1.000 | — |" in page
    assert "| white-box | pmt | 0.400 | 4.00 | 0.500 | 1.00 | 6 |" in page
    assert "| age (abs. difference, years) | 12.000 | 10.000 |" in page
    assert "UP(σ = 0.1, κ = 0.250) on mobileface" in page
    assert "| one face, `pmt(x, mobileface)` with defaults (200 steps) | 2.9 s median (2.9, 3.1, 2.8) | 3 runs |" in page
    assert "| RecFace training, 200 iterations (teaching scale) | seed 0 9 s (final loss 20.80) | 1 per seed |" in page
    assert "shared machine" not in page and "resumed" not in page


def test_render_says_when_the_machine_was_busy_or_settings_were_resumed():
    R = run(results(), results())
    R["load"]["end"] = 2.6
    R["per seed"]["1"]["resumed"] = ["default", "init=shuffle"]
    page = render(R)
    assert "at the end 2.6 (a shared machine: other jobs ran alongside; timings are upper bounds)" in page
    assert ("Total run time: 3.9 min (resumed from an interrupted run with the same sizes and seed, so their seconds "
            "are from that run and their seed's minutes leave them out: seed 1: default, init=shuffle)") in page


def test_render_is_a_function_of_the_json():
    R = run(results(), results(**{"init=shuffle": _setting(faceres=1)}), seeds=[0, 4])
    assert render(json.loads(json.dumps(R))) == render(R)
    saved = {**R, "claims over seeds": C.claims_over_seeds(R)["over seeds"]}  # as the benchmark saves it
    assert render(json.loads(json.dumps(saved))) == render(R)


def test_load_results(tmp_path):
    p = tmp_path / "pmt.json"
    assert E.load_results(p) is None
    p.write_text("{not json")
    assert E.load_results(p) is None
    p.write_text(json.dumps({"protocol": {}}))  # written before the schema
    assert E.load_results(p) is None
    single = {k: v for k, v in results().items() if k not in ("seeds", "seed")}
    p.write_text(json.dumps({**single, "schema": "facelab.pmt/1"}))  # one seed at the top level
    assert E.load_results(p) is None
    p.write_text(json.dumps(run(results())))
    assert E.load_results(p) == run(results())


def test_committed_page_is_the_render_of_the_committed_json():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("benchmarks/results/pmt.json is absent or of an older schema")
    from pathlib import Path

    page = Path(E.__file__).resolve().parents[2] / "benchmarks" / "results" / "pmt.md"
    assert render(R) == page.read_text()


def test_the_page_names_the_face_set_it_ran_on():
    offline = render(run(results()))  # results made before --data existed hold no name: the offline set's
    assert "- Offline set (20 aligned 112-px faces" in offline and "near-duplicates" in offline
    R = run(results())
    R["data"] = {"faces": 20, "identities": 5, "name": "folder:class", "arg": "folder:/data/class"}
    page = render(R)
    assert "- Face set folder:class (20 aligned 112-px faces" in page
    assert "Offline set" not in page and "near-duplicates" not in page  # the offline set's video subjects only


# -- over seeds ---------------------------------------------------------------------------------------


def _three_seeds():
    """init=shuffle's claim holds (significant) in seed 0, holds in direction only in seed 1, is reversed in seed 2."""
    v0 = results()  # 0:16 discordant, effect +0.8
    v1 = results(**{"init=shuffle": _setting(faceres=1)})  # 0:1, effect +0.05, p = 1
    v2 = results(**{"init=shuffle": _setting()})
    v2["settings"]["default"]["decisions"]["faceres"] = _dec(8)  # 8:0, effect -0.4, p = 0.0078
    v2["protocol"] = {**v2["protocol"], "probes": [0, 3]}
    v2["seed_minutes"] = 1.6
    return run(v0, v1, v2)


def test_every_row_says_its_effect_in_the_claimed_direction():
    V = results(**{"init=shuffle": _setting(faceres=1)})
    V["attributes"]["pmt"]["emotion"] = [0.9] * 5 + [0.6]  # a CI that is not one point
    rows = C.claims(V)
    assert [r["effect"] for r in rows if r["comparison"] == "default vs init=shuffle"] == [pytest.approx(0.05)]
    for r in rows:
        base = r["verdict"].replace(C.NOT_COMPARABLE, "")
        if base in VERDICTS and base != "no difference":
            assert (r["effect"] > 0) == base.startswith(("holds", "direction holds")), r
        if r["ci"] is not None:
            assert r["ci"][0] <= r["effect"] <= r["ci"][1], r
    (emotion,) = [r for r in rows if r["comparison"].startswith("emotion")]
    assert emotion["effect"] == pytest.approx(-0.35) and emotion["ci"][0] < emotion["ci"][1] < 0


def test_seed_results_is_one_seeds_view():
    v0, v1 = results(), results(**{"init=shuffle": _setting(faceres=1)})
    R = run(v0, v1, seeds=[5, 2])
    assert C.seeds(R) == [5, 2]
    assert C.seed_results(R, 2) == {**v1, "seeds": [5, 2], "seed": 2}
    with pytest.raises(KeyError, match="seed 0 is not one of"):
        C.seed_results(R, 0)
    with pytest.raises(TypeError, match="seed_results"):
        C.claims(R)


def test_known_per_seed_outcomes_give_known_verdicts_and_summary():
    out = C.claims_over_seeds(_three_seeds())
    per = {s: _one(rows, "default vs init=shuffle")
           for s, rows in out["per seed"].items()}
    assert [per[s]["verdict"] for s in (0, 1, 2)] == [VERDICTS[0], VERDICTS[1], VERDICTS[4]]
    assert [per[s]["p"] for s in (0, 1, 2)] == [pytest.approx(2 * 0.5 ** 16), 1.0, pytest.approx(2 * 0.5 ** 8)]
    (rec,) = [r for r in out["over seeds"] if r["comparison"] == "default vs init=shuffle"]
    assert rec["seeds"] == [0, 1, 2] and rec["effects"] == pytest.approx([0.8, 0.05, -0.4])
    assert (rec["min"], rec["max"], rec["mean"]) == (pytest.approx(-0.4), pytest.approx(0.8), pytest.approx(0.15))
    assert rec["sd"] == pytest.approx(0.60622, abs=1e-5) and not rec["stable"]
    assert rec["summary"] == ("holds (significant) in 1 of 3 seeds; direction holds, not significant in 1; "
                              "reversed (significant) in 1")
    (stable,) = [r for r in out["over seeds"] if r["comparison"] == "default vs augment=none"
                 and r["claim"].startswith("(b) augment=noise keeps authorized acc")]
    assert stable["stable"] and stable["summary"] == "no difference in 3 of 3 seeds" and stable["sd"] == 0


def test_summary_lists_verdicts_best_first_whatever_the_seed_order():
    v0 = results()
    for m in ("faceres", "mobilefacenet"):  # 20 of 20 against init=shuffle's 16: 4:0 discordant, p = 0.125
        v0["settings"]["default"]["decisions"][m] = _dec(10)
    (rec,) = [r for r in C.claims_over_seeds(run(v0, results()))["over seeds"]
              if r["comparison"] == "default vs init=shuffle"]
    assert rec["verdicts"][0].startswith("reversed") and rec["verdicts"][1] == VERDICTS[0]
    assert rec["summary"] == "holds (significant) in 1 of 2 seeds; reversed, not significant in 1"


def test_the_not_comparable_caveat_and_the_authorized_rule_survive_over_seeds():
    seeds = []
    for auth, k, clean in ((0, 9, 10), (8, 7, 8), (9, 2, 10)):
        V = results(**{"aggregate=False": _setting(mobileface=10, faceres=6)})
        V["settings"]["default"]["decisions"][AUTH] = _dec(auth)
        V["settings"]["MR-PMT 2"]["decisions"][AUTH] = _dec(k)
        V["clean"][AUTH] = _dec(clean)
        seeds.append(V)
    R = run(*seeds)
    recs = {r["comparison"]: r for r in C.claims_over_seeds(R)["over seeds"]}
    agg = recs["default vs aggregate=False"]
    assert agg["verdicts"] == [VERDICTS[0] + C.NOT_COMPARABLE, VERDICTS[0], VERDICTS[0]]
    assert agg["summary"] == ("holds (significant) in 2 of 3 seeds; "
                              "holds (significant) but not at comparable authorized acc in 1")
    mr = recs["MR-PMT 2: mobileface PMT vs clean"]
    assert mr["summary"] == ("holds (no significant drop, acc ≥ 0.8) in 1 of 3 seeds; "
                             "no significant drop, but acc < 0.8 in 1; reversed: significant drop in 1")
    page = render(R)
    assert "| +0.300, p = 0.0312: holds (significant) but not at comparable authorized acc |" in page
    assert f"| {VERDICTS[0] + C.NOT_COMPARABLE} |" in page  # seed 0's details keep the caveat in full
    assert "| holds (no significant drop, acc ≥ 0.8) in 1 of 3 seeds; no significant drop, but acc < 0.8 in 1; " \
           "reversed: significant drop in 1 |" in page


def test_seeds_that_measured_other_claims_are_not_matched():
    v1 = results()
    del v1["settings"]["augment=none"]
    with pytest.raises(ValueError, match="seed 1 measured other claims than seed 0"):
        C.claims_over_seeds(run(results(), v1))


def test_page_shows_the_spread_and_the_verdicts_over_seeds():
    R = _three_seeds()
    page = render(R)
    assert "# PMT: the paper's claims on facelab's pool over seeds 0, 1, 2, and timings" in page
    assert ("| (a) init: noise lowest unauthorized acc | default vs init=shuffle "
            "| +0.800, p = 3.05e-05: holds (significant) | +0.050, p = 1: direction holds, not significant "
            "| -0.400, p = 0.00781: reversed (significant) | -0.400 … +0.800; mean +0.150 ± 0.606 (sd) "
            "| holds (significant) in 1 of 3 seeds; direction holds, not significant in 1; reversed (significant) in 1 |"
            ) in page
    assert ("| (c) white-box: SSIM to the original lower from PMT features | clean features vs PMT features "
            "| +0.100 [+0.100, +0.100], p = 0.0312: holds (significant) |") in page
    for rec in C.claims_over_seeds(R)["over seeds"]:  # every claim's headline verdict is its summary over seeds
        bold = "**" if rec["stable"] else ""
        assert f"| {bold}{rec['summary']}{bold} |" in page
    assert EFFECT_TEXT in page
    assert "1 of the 2 probes is a probe in every seed" in page
    assert "What a seed s changes" in page and "Fixed across seeds" in page
    assert "RecFace is still retrained in every seed (200 iterations)" in page
    assert "Minutes per seed: seed 0 1.3, seed 1 1.3, seed 2 1.6; total 4.2 min" in page
    assert "- Seed 2's split: 2 probes of 2 identities" in page
    assert "## Claims, seed 0 in detail" in page and "## Strict accuracy (Eq. 10) per setting and model, seed 0" in page


def test_the_details_are_the_first_seeds():
    v3 = results()
    v3["settings"]["default"]["seconds"] = 77.0
    R = run(v3, results(), seeds=[3, 1])
    page = render(R)
    assert "## Claims over seeds 3, 1" in page and "| seed 3: effect, p, verdict | seed 1: effect, p, verdict |" in page
    assert "## Claims, seed 3 in detail" in page and "## Reconstructions (Table 6), seed 3" in page
    assert "| default | 0.000 | **0.900** | 0.000 | 0.900 | 0.060 | 77 |" in page
