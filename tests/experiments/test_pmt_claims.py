"""PMT's claim verdicts and results page on small synthetic results dicts (no weights needed): known decisions give
known discordant counts, p-values and verdicts; the "not at comparable authorized acc" caveat, the authorized-acc
rule of claim (d) and the age direction of claim (e) are each exercised; render() words what the claims computed."""
import copy
import json

import pytest

from facelab.experiments import pmt as E
from facelab.experiments import pmt_claims as C
from facelab.experiments.pmt_report import claims_markdown, numbers, render
from facelab.metrics.claims import VERDICTS

AUTH = "mobileface"
MODELS = ["faceres", "mobileface", "mobilefacenet"]
MR = {"MR-PMT 2": ["mobileface", "mobilefacenet"]}
N = 10  # pairs


def _dec(k: int) -> list[bool]:
    """N decisions, the first k correct."""
    return [True] * k + [False] * (N - k)


def _setting(authorized=(AUTH,), **acc) -> dict:
    """A setting whose models get the first ``acc[model]`` pairs right (authorized 9 of 10, others 0 by default)."""
    dec = {m: _dec(acc.get(m.replace("-", "_"), 9 if m in authorized else 0)) for m in MODELS}
    return {"authorized": list(authorized), "params": {}, "seconds": 3.0, "ssim": [0.05, 0.07],
            "decisions": dec, "noisy_decisions": copy.deepcopy(dec)}


def results(**settings) -> dict:
    """A complete results dict: every unauthorized model recognises no PMT image, every clean one."""
    S = {"default": _setting(),
         "init=shuffle": _setting(faceres=8, mobilefacenet=8),
         "augment=none": _setting(),
         "aggregate=False": _setting(mobileface=0),
         "MR-PMT 2": _setting(MR["MR-PMT 2"], mobilefacenet=10)}
    S.update(settings)
    probes = [0, 1]
    return {
        "schema": E.SCHEMA, "command": "python -m benchmarks pmt --threads 2", "machine": "test machine",
        "threads": 2, "load": {"start": 0.5, "end": 0.7}, "minutes": 3.9, "resumed": [], "fast": False,
        "data": {"faces": 20, "identities": 5}, "authorized": AUTH, "mr": MR, "far": 0.01, "server_noise": 0.1,
        "models": MODELS,
        "params": {"steps": 200, "shallow_layers": 5, "white_box_steps": 40, "recface_iterations": 200,
                   "recface_fast_iterations": 60, "recface_data": "synthetic faces", "one_face_steps": 200},
        "protocol": {"probes": probes, "pair_probe": [0] * 5 + [1] * 5, "pair_partner": list(range(2, 12)),
                     "pair_y": [1, 0, 0, 0, 0] * 2, "recon_test": [1], "recon_train": list(range(5, 20)), "note": ""},
        "labels": ["ann", "bob"], "thresholds": {"faceres": 0.5, "mobileface": 0.25, "mobilefacenet": 0.3},
        "clean": {m: _dec(N) for m in MODELS}, "clean_noisy": {m: _dec(8) for m in MODELS},
        "settings": S,
        "reconstruction": {f"{box}/{cond}": {"ssim": [s] * 6, "psnr": [10 * s] * 6, "cos": [c] * 6, "srra": [1.0] * 6}
                           for box in ("white", "black")
                           for cond, s, c in (("clean", 0.5, 0.6), ("pmt", 0.4, 0.5), ("random", 0.45, 0.7))},
        "attributes": {"pmt": {"emotion": [0.9] * 6, "age": [12.0] * 6},
                       "noise": {"emotion": [0.5] * 6, "age": [10.0] * 6}},
        "up": {"sigma": 0.1, "samples": 4, "pmt": [1.1] * 5 + [1.0], "original": [1.0] * 6},
        "recface": {"iterations": 200, "train_seconds": 9.2, "final_loss": 20.8},
        "timings": {"pmt_one_face": [2.9, 3.1, 2.8], "recface_fast": 2.4, "white_box": 2.7},
    }


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
    R = results()
    page = render(R)
    for heading in ("# PMT: the paper's claims on facelab's pool, and timings", "## Data and settings", "## Claims",
                    "## Strict accuracy (Eq. 10) per setting and model", "## Reconstructions (Table 6)",
                    "## Attributes (Table 8) and UP (Eq. 9)", "## Timings"):
        assert f"\n{heading}\n" in "\n" + page
    for r in C.claims(R):
        assert f"| {r['claim']} | {r['comparison']} | {numbers(r)} | {r['verdict']} |" in page
    assert claims_markdown(R) in page
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
    assert "shared machine" not in page and "resumed" not in page


def test_render_says_when_the_machine_was_busy_or_settings_were_resumed():
    R = results()
    R["load"]["end"] = 2.6
    R["resumed"] = ["default", "init=shuffle"]
    page = render(R)
    assert "at the end 2.6 (a shared machine: other jobs ran alongside; timings are upper bounds)" in page
    assert "Total run time: 3.9 min (settings default, init=shuffle were resumed from an interrupted run" in page


def test_render_is_a_function_of_the_json():
    R = results()
    assert render(json.loads(json.dumps(R))) == render(R)


def test_load_results(tmp_path):
    p = tmp_path / "pmt.json"
    assert E.load_results(p) is None
    p.write_text("{not json")
    assert E.load_results(p) is None
    p.write_text(json.dumps({"protocol": {}}))  # written before the schema
    assert E.load_results(p) is None
    p.write_text(json.dumps(results()))
    assert E.load_results(p) == results()


def test_committed_page_is_the_render_of_the_committed_json():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("benchmarks/results/pmt.json is absent or of an older schema")
    from pathlib import Path

    page = Path(E.__file__).resolve().parents[2] / "benchmarks" / "results" / "pmt.md"
    assert render(R) == page.read_text()


def test_the_page_names_the_face_set_it_ran_on():
    offline = render(results())  # results made before --data existed hold no name: the offline set's
    assert "- Offline set (20 aligned 112-px faces" in offline and "near-duplicates" in offline
    R = results()
    R["data"] = {"faces": 20, "identities": 5, "name": "folder:class", "arg": "folder:/data/class"}
    page = render(R)
    assert "- Face set folder:class (20 aligned 112-px faces" in page
    assert "Offline set" not in page and "near-duplicates" not in page  # the offline set's video subjects only
