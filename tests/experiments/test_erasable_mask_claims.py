"""ErasableMask's claim verdicts and page, on small synthetic results dicts (no weights needed)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from facelab.experiments import erasable_mask as E
from facelab.experiments import erasable_mask_claims as C
from facelab.experiments.erasable_mask_report import claims_markdown, render
from facelab.metrics.claims import VERDICTS

HOLDS, DIRECTION, NO_DIFF, REVERSED, REVERSED_SIG = VERDICTS
WHITE, BLACK = ["w1", "w2"], ["b1", "b2", "b3"]


def faces_of(n_faces: int) -> list[int]:
    return list(range(n_faces)) * 2  # each face twice (own and flipped attributes), as units() orders them


def setting(protected_match, restored_match, models=(*WHITE, *BLACK), psnr=(20.0, 22.0, 0.6)) -> dict:
    """One setting's evaluation where every model gives the same per-unit outcomes."""
    n = len(protected_match)
    rate = lambda xs: sum(xs) / n  # noqa: E731
    return {"n": n, "psnr_protected": psnr[0], "psnr_restored": psnr[1], "ssim_restored": psnr[2],
            "models": {m: {"threshold": 0.3, "asr": 1 - rate(protected_match), "esr": rate(restored_match),
                           "match_edited": 0.5} for m in models},
            "outcomes": {m: {"protected_match": list(protected_match), "restored_match": list(restored_match)}
                         for m in models}}


def variant(protected_match, restored_match, psnr_restored, *, jpeg=False) -> dict:
    n = len(protected_match)
    out = {"clean": setting(protected_match, restored_match)}
    if jpeg:
        out["jpeg75"] = setting(protected_match, restored_match)
    out["per_unit"] = {"psnr_restored": list(psnr_restored), "psnr_protected": [20.0] * n, "l2_change": [10.0] * n}
    return out


def results(n_faces: int = 6, variants: dict | None = None, **over) -> dict:
    n = 2 * n_faces
    if variants is None:
        good = variant([False] * n, [True] * n, [23.0] * n, jpeg=True)
        variants = {"erasable_mask": good, "erasable_mask-ensemble": copy.deepcopy(good),
                    "erasable_mask-gamma0": copy.deepcopy(good), "erasable_mask-nocurriculum": copy.deepcopy(good),
                    "erasable_mask-nonoise": copy.deepcopy(good)}
    R = {"schema": E.SCHEMA, "fast": False, "threads": 1, "command": "python -m benchmarks erasable_mask --threads 1",
         "machine": "x86_64, 2 cores, torch 0, 1 torch threads, device cpu", "load_average": 1.0, "cpu_count": 2,
         "data": "a synthetic set", "n_faces": n_faces, "faces": faces_of(n_faces), "far": 0.01, "white": WHITE,
         "black": BLACK, "variants": dict(E.VARIANTS), "distortions": ["jpeg75"],
         "missing": [v for v in E.VARIANTS if v not in variants], "results": variants,
         "baselines": [{"attack": "PGD", "norm": "linf", "eps": 8 / 255, "asr": {m: 0.25 for m in (*WHITE, *BLACK)},
                        "psnr": 32.71, "ssim": 0.8814},
                       {"attack": "PGD", "norm": "l2", "eps": 10.9234, "asr": {m: 1.0 for m in (*WHITE, *BLACK)},
                        "psnr": 22.3, "ssim": 0.557}],
         "speed": {"protect_erase_seconds": 0.011, "repeats": 20},
         "provenance": {"erasable_mask": {"train_seconds": 1540.1, "iterations": 680, "train": {"epochs": [40, 30, 15]},
                                          "threads": 1, "command": "python -m facelab.methods.erasable_mask.train"}},
         "seconds": 19.4}
    R.update(over)
    return R


def by_id(R: dict) -> dict:
    return {c["id"]: c for c in C.claim_results(R)}


# --- binary claims: known counts -> known p and verdict ---------------------------------------------------------

def test_binary_claim_every_face_better_is_significant_with_six_faces():
    f = faces_of(6)
    a = setting([False] * 12, [True] * 12)   # never matched: ASR 100 %
    b = setting([True] * 12, [True] * 12)    # always matched: ASR 0 %
    c = C.binary_claim(a, b, BLACK, "asr", f)
    assert (c["rate_a"], c["rate_b"], c["n"], c["faces"]) == (1.0, 0.0, 36, 6)
    assert (c["wins"], c["losses"]) == (6, 0)
    assert c["p"] == pytest.approx(2 / 2 ** 6)
    assert c["ci"] == [1.0, 1.0]
    assert c["verdict"] == HOLDS


def test_binary_claim_needs_the_sign_test_too_five_faces_all_better_is_not_significant():
    f = faces_of(5)
    c = C.binary_claim(setting([False] * 10, [True] * 10), setting([True] * 10, [True] * 10), BLACK, "asr", f)
    assert c["ci"] == [1.0, 1.0]                      # the CI excludes 0 ...
    assert c["p"] == pytest.approx(2 / 2 ** 5)        # ... but p = 0.0625
    assert c["verdict"] == DIRECTION


def test_binary_claim_reversed_and_no_difference():
    f = faces_of(6)
    good, bad = setting([False] * 12, [True] * 12), setting([True] * 12, [True] * 12)
    rev = C.binary_claim(bad, good, BLACK, "asr", f)
    assert (rev["wins"], rev["losses"], rev["verdict"]) == (0, 6, REVERSED_SIG)
    same = C.binary_claim(good, good, (*WHITE, *BLACK), "esr", f)
    assert (same["wins"], same["losses"], same["p"], same["verdict"]) == (0, 0, 1.0, NO_DIFF)
    one = setting([False] * 12, [True] * 12)
    worse = setting([False] * 12, [False] + [True] * 11)   # face 0 restored once less
    r = C.binary_claim(worse, one, BLACK, "esr", f)
    assert (r["wins"], r["losses"], r["p"], r["verdict"]) == (0, 1, 1.0, REVERSED)


def test_binary_claim_counts_faces_not_units():
    # face 0: unit 0 better under a, unit 6 (its flipped twin) worse -> per-face mean equal: a tie, not 1:1
    # face 1: both units better under a -> one win
    f = faces_of(6)
    a = setting([True] * 12, [False] * 12)
    b = setting([True] * 12, [False] * 12)
    a["outcomes"] = {m: {"protected_match": [False, False] + [True] * 5 + [False] + [True] * 4,
                         "restored_match": [False] * 12} for m in BLACK}
    b["outcomes"] = {m: {"protected_match": [True] * 6 + [False] + [True] * 5, "restored_match": [False] * 12}
                     for m in BLACK}
    c = C.binary_claim(a, b, BLACK, "asr", f)
    assert (c["wins"], c["losses"]) == (1, 0)
    assert c["n"] == 36 and c["rate_a"] == pytest.approx(9 / 36) and c["rate_b"] == pytest.approx(3 / 36)
    assert c["verdict"] == DIRECTION


def test_flags_are_model_major_and_reject_other_outcomes():
    r = {"outcomes": {"x": {"protected_match": [True, False], "restored_match": [False, False]},
                      "y": {"protected_match": [False, False], "restored_match": [True, False]}}}
    assert C.flags(r, ["x", "y"], "asr").tolist() == [False, True, True, True]
    assert C.flags(r, ["y", "x"], "esr").tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="asr"):
        C.flags(r, ["x"], "psnr")


# --- continuous claims --------------------------------------------------------------------------------------------

def test_continuous_claim_known_effect():
    f = faces_of(6)
    c = C.continuous_claim([23.0] * 12, [22.0] * 12, f)
    assert (c["mean_a"], c["mean_b"], c["effect"]) == (23.0, 22.0, 1.0)
    assert c["ci"] == [1.0, 1.0] and (c["wins"], c["losses"]) == (6, 0)
    assert c["p"] == pytest.approx(1 / 32) and c["verdict"] == HOLDS
    c5 = C.continuous_claim([23.0] * 10, [22.0] * 10, faces_of(5))
    assert c5["verdict"] == DIRECTION                   # p = 0.0625 with five faces


def test_continuous_claim_signs_per_face_means():
    f = faces_of(3)                                     # units 0..2 then their twins 3..5
    a = [1.0, 0.0, 0.0, -0.5, 0.0, -1.0]
    b = [0.0] * 6
    c = C.continuous_claim(a, b, f)
    # face 0: +1 and -0.5 -> +0.25 (win); face 1: 0 (tie); face 2: 0 and -1 -> -0.5 (loss)
    assert (c["wins"], c["losses"], c["p"]) == (1, 1, 1.0)
    assert c["effect"] == pytest.approx(-0.5 / 6)
    assert c["verdict"] == REVERSED
    assert C.continuous_claim([1.0] * 6, [1.0] * 6, f)["verdict"] == NO_DIFF


# --- which claims, which settings, when not run -------------------------------------------------------------------

def test_claims_compare_the_right_checkpoint_setting_and_models():
    n = 12
    R = results()
    R["results"]["erasable_mask-ensemble"]["clean"] = setting([True] * n, [True] * n)   # ablation never protects
    R["results"]["erasable_mask-nocurriculum"]["per_unit"]["psnr_restored"] = [22.0] * n
    R["results"]["erasable_mask-nonoise"]["jpeg75"] = setting([False] * n, [False] * n)  # under JPEG: no erasure
    got = by_id(R)
    assert [c["id"] for c in C.claim_results(R)] == ["a", "b", "b′", "c", "c′", "d", "d′"]
    assert got["a"]["n"] == 3 * n and got["a"]["verdict"] == HOLDS          # black-box models only
    assert got["b"]["n"] == 5 * n and got["b"]["verdict"] == NO_DIFF        # all five models
    assert got["c"]["verdict"] == HOLDS and got["c"]["effect"] == 1.0
    assert got["c′"]["verdict"] == NO_DIFF
    assert got["d"]["verdict"] == NO_DIFF and got["d′"]["verdict"] == HOLDS  # compared under jpeg75, not clean
    assert all(c["status"] == "run" for c in got.values())


def test_missing_checkpoints_make_claims_not_run():
    R = results()
    del R["results"]["erasable_mask-gamma0"]
    got = by_id(R)
    assert got["b"]["status"] == got["b′"]["status"] == "no ablation"
    assert got["b"]["missing"] == "erasable_mask-gamma0" and "verdict" not in got["b"]
    assert got["a"]["status"] == "run"
    del R["results"]["erasable_mask"]
    assert {c["status"] for c in C.claim_results(R)} == {"no base"}
    assert {c["missing"] for c in C.claim_results(R)} == {"erasable_mask"}


def test_unknown_claim_kind_is_an_error():
    with pytest.raises(ValueError, match="kind"):
        C.claim_result(results(), {"id": "z", "other": "erasable_mask-gamma0", "kind": "ordinal"})


def test_helpers():
    assert C.needs_distortions("erasable_mask") and C.needs_distortions("erasable_mask-nonoise")
    assert not C.needs_distortions("erasable_mask-ensemble")
    assert C.machine_was_shared(2.6, 2) and not C.machine_was_shared(2.5, 2) and C.machine_was_shared(1.6, None)
    R = results()
    assert C.model_group(R, "all") == (*WHITE, *BLACK) and C.model_group(R, "black") == tuple(BLACK)


# --- the page ------------------------------------------------------------------------------------------------------

def test_render_has_every_section_and_the_computed_verdicts():
    R = results()
    R["results"]["erasable_mask-nocurriculum"]["per_unit"]["psnr_restored"] = [22.0] * 12
    page = render(R)
    for heading in ("# ErasableMask (teaching scale)", "## Protection and erasure",
                    "## Gradient baselines on the same faces (no erasure)", "## Speed", "## Claims"):
        assert f"\n{heading}\n" in f"\n{page}"
    assert "Command: `python -m benchmarks erasable_mask --threads 1`  \n" in page
    assert "smoke run" not in page and "machine was shared" not in page
    assert "Evaluated on the 6 held-out faces × 2 target attribute vectors" in page and "= 12 protected faces" in page
    assert "| variant | distortion | ASR white | ASR black | ESR (all 5) | PSNR prot. | PSNR rest. | SSIM rest. |" in page
    assert "| erasable_mask | jpeg75 | 100% / 100% | 100% / 100% / 100% | 100% / 100% / 100% / 100% / 100% |" in page
    assert "| PGD L∞ 8/255 | 25% / 25% | 25% / 25% / 25% | — | 32.7 | 0.881 |" in page
    assert "| PGD L2 10.92 (ErasableMask's mean L2 change) |" in page
    assert "- protect + erase of one 64-px face: 11.0 ms (minimum of 20 runs;" in page
    assert "- training (from the checkpoint's provenance): 1540 s for 680 iterations, epochs [40, 30, 15]," in page
    for c in C.claim_results(R):
        assert f"**{c['verdict']}**" in next(line for line in page.splitlines() if line.startswith(f"- ({c['id']})"))
    assert ("- (c) the curriculum ends better than all losses from the start — restored PSNR: 23.00 vs 22.00 dB "
            "(Δ +1.00, face-bootstrap 95 % CI [+1.00, +1.00]; sign test on per-face means 6:0, p = 0.031) — "
            "**holds (significant)**") in page
    assert ("- (a) meta-auxiliary attack transfers better to black-box models than a plain ensemble loss (same data, "
            "epochs and surrogates) — black-box ASR: 100.0% vs 100.0% (n = 36 outcomes from 6 faces; face-bootstrap "
            "95 % CI of Δ [+0.000, +0.000]; sign test on per-face means 0:0, p = 1) — **no difference**") in page
    assert "(6 faces), not the training's." in page
    assert page.endswith("Variants not trained here: none.\n\nBenchmark wall time: 19 s.\n")
    assert claims_markdown(R) in page


def test_render_smoke_shared_and_not_run_wording():
    R = results(fast=True, command="FACELAB_FAST=1 python -m benchmarks erasable_mask --threads 1", load_average=3.1)
    del R["results"]["erasable_mask-nonoise"]
    R["missing"] = ["erasable_mask-nonoise"]
    page = render(R)
    assert "— **FACELAB_FAST=1 smoke run: not a result**  \n" in page
    assert "load average at start 3.1 (more runnable work than cores: the machine was shared" in page
    assert ("- (d) the noise pool keeps ASR under JPEG q = 75 — ASR on all five models: **not run** (no "
            "`erasable_mask-nonoise` checkpoint; train it with `python -m facelab.methods.erasable_mask --threads 1 "
            "--no-noise --name erasable_mask-nonoise`)") in page
    assert "Variants not trained here: erasable_mask-nonoise." in page


def test_render_without_the_default_checkpoint():
    R = results(variants={}, baselines=[], speed=None, provenance={})
    page = render(R)
    assert "**Not run**: no `erasable_mask` checkpoint in the facelab cache." in page
    assert "## Speed" not in page and "## Gradient baselines" not in page and "Match rate" not in page
    assert "| variant | distortion |" in page                                   # the empty table keeps its header
    assert page.count("**not run** (no `erasable_mask` checkpoint; train it with "
                      "`python -m facelab.methods.erasable_mask --threads 1`)") == 7


def test_render_shows_the_editor_ablation_only_when_it_ran():
    def editor(shortcuts, epochs, match):
        return {"shortcut_layers": shortcuts, "stage1_epochs": epochs, "psnr": 22.79, "ssim": 0.6512,
                "match": {m: match for m in (*WHITE, *BLACK)}, "matched": {}}
    R = results(editors={"erasable_mask": editor(3, 40, 0.75), "erasable_mask-editor-shortcut1": editor(1, 40, 0.0)})
    page = render(R)
    assert "\n## Editor ablation: AttGAN's shortcuts\n" in page
    assert "on the same 12 units (6 faces × 2 targets)" in page
    assert "| checkpoint | shortcut layers | stage-1 epochs | x_b matched | PSNR x_b | SSIM x_b |" in page
    assert "| erasable_mask | 3 | 40 | 75% / 75% / 75% / 75% / 75% | 22.8 | 0.651 |" in page
    assert "| erasable_mask-editor-shortcut1 | 1 | 40 | 0% / 0% / 0% / 0% / 0% | 22.8 | 0.651 |" in page
    assert "Editor ablation" not in render(results())          # a results file from before the ablation
    assert "Editor ablation" not in render(results(editors={}))


def test_render_is_a_function_of_the_json():
    R = results()
    assert render(json.loads(json.dumps(R))) == render(R)


# --- the results file -----------------------------------------------------------------------------------------------

def test_load_results(tmp_path: Path):
    p = tmp_path / "em.json"
    assert E.load_results(p) is None
    p.write_text("{not json")
    assert E.load_results(p) is None
    p.write_text(json.dumps({"faces": [0], "results": {}}))          # the schema before the report moved here
    assert E.load_results(p) is None
    p.write_text(json.dumps(results()))
    assert E.load_results(p)["n_faces"] == 6


def test_committed_page_is_the_render_of_the_committed_json():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("no committed erasable_mask.json of the current schema (the lead's rerun writes one)")
    md = Path(E.__file__).resolve().parents[2] / "benchmarks" / "results" / "erasable_mask.md"
    assert render(R) == md.read_text()


def test_training_time_says_how_loaded_the_machine_was():
    page = render(results())  # a checkpoint trained before facelab recorded the load
    assert "1 thread(s); machine load not recorded (trained before facelab recorded it) (budget: 20 min" in page
    R = results()
    R["provenance"]["erasable_mask"].update(cpu_seconds=1000.0, load_average=1.95)
    page = render(R)
    assert ("1540 s for 680 iterations, epochs [40, 30, 15], 1 thread(s); 1000 s of CPU (0.65 of the wall time); "
            "1-min load average 1.95 on 2 cores when it ended (budget: 20 min on 2 cores)") in page


# --- over training seeds -------------------------------------------------------------------------------------------

def with_seeds(R: dict, others: dict) -> dict:
    """``R`` as seed 0 plus each other seed's own evaluation (``others``: seed -> its ``results``)."""
    R = copy.deepcopy(R)
    R["seeds"] = [0, *others]
    R["other seeds"] = {str(s): {"data": f"… (seed {s})", "n_faces": R["n_faces"], "faces": R["faces"],
                                 "results": res, "missing": [E.seed_checkpoint(v, s) for v in E.VARIANTS if v not in res],
                                 "provenance": {}} for s, res in others.items()}
    return R


def test_claims_over_seeds_test_each_seed_alone_and_name_the_seeds_a_checkpoint_is_missing_from():
    n = 12
    base = results()
    seed1 = copy.deepcopy(base["results"])
    seed1["erasable_mask-nocurriculum"]["per_unit"]["psnr_restored"] = [22.0] * n  # curriculum wins in seed 1 only
    seed2 = copy.deepcopy(base["results"])
    del seed2["erasable_mask-gamma0"]
    R = with_seeds(base, {1: seed1, 2: seed2})
    assert list(C.seed_views(R)) == [0, 1, 2] and C.seed_views(R)[1]["results"] is R["other seeds"]["1"]["results"]
    rows = {r["id"]: r for r in C.claims_over_seeds(R)}
    c = rows["c"]
    assert c["seeds"] == [0, 1, 2] and c["effects"] == pytest.approx([0.0, 1.0, 0.0])
    assert c["verdicts"] == [by_id(v)["c"]["verdict"] for v in C.seed_views(R).values()] == [NO_DIFF, HOLDS, NO_DIFF]
    assert c["summary"] == "holds (significant) in 1 of 3 seeds; no difference in 2"
    assert c["spread"] == "+0.00 … +1.00; mean +0.33 ± 0.58 (sd)"
    assert rows["b"]["seeds"] == [0, 1] and rows["b"]["missing"] == [2]
    page = render(R)
    assert "## Claims (training seed 0)" in page and "## Claims over training seeds 0, 1, 2" in page
    assert "| (c) | default vs nocurriculum | restored PSNR (dB) | +0.00 / +1.00 / +0.00 |" in page
    assert "no difference in 2 of 2 seeds; not run in seed 2" in page
    assert "erasable_mask-gamma0-seed2" in page and "Claims holding (significant) in every seed: 0 of 7." in page
    assert claims_markdown(R) in page


def test_a_one_seed_file_is_its_own_seed_0_and_has_no_seeds_section():
    R = results()
    assert list(C.seed_views(R)) == [0]
    assert all(r["seeds"] == [0] for r in C.claims_over_seeds(R))
    assert "over training seeds" not in render(R)
