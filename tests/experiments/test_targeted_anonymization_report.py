"""Targeted Anonymization's page is a pure function of its results JSON (no weights needed)."""
import pytest

from facelab.experiments import targeted_anonymization as E
from facelab.experiments import targeted_anonymization_claims as C
from facelab.experiments.results import RESULTS_DIR
from facelab.experiments.targeted_anonymization_report import claims_markdown, render


def test_committed_page_is_the_render_of_the_committed_json():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("benchmarks/results/targeted_anonymization.json is absent or of an older schema")
    page = (RESULTS_DIR / "targeted_anonymization.md").read_text()
    assert render(R) == page
    claims = claims_markdown(R)
    assert claims in page and claims.startswith("## Every claim over seeds" if R.get("other seeds") else "## Fig. 1")
    # every verdict the claims module computed is on the page
    for name, section in R["authorized"].items():
        for e in section["claims"]["fig1_contrast"]:
            assert f"| {name} | {e['c']:g} |" in claims and e["test"]["verdict"] in claims


def test_a_multi_seed_page_leads_with_every_claim_over_seeds_and_a_one_seed_page_has_none():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("benchmarks/results/targeted_anonymization.json is absent or of an older schema")
    seeds = list(C.seed_results(R))
    if len(seeds) == 1:
        page = render(R)
        assert "## Every claim over seeds" not in page and f"**One seed ({seeds[0]}).**" in page
        return
    page = render(R)
    head = page.index("## Every claim over seeds")
    assert head < page.index("## Fig. 1") and claims_markdown(R).startswith("## Every claim over seeds")
    assert all(f"seed {s}: " in page for s in seeds)
    one = {k: v for k, v in R.items() if k not in ("other seeds", "seeds")}
    assert "## Every claim over seeds" not in render(one)
    # every seed's own Fig. 1 verdict at c = 1 is counted in its row
    for a in R["authorized"]:
        row = next(r for r in C.claims_over_seeds(R) if r["claim"] == "fig1" and r["authorized"] == a
                   and r["setting"] == "c=1")
        for s, res in C.seed_results(R).items():
            v = next(e["test"]["verdict"] for e in res["authorized"][a]["claims"]["fig1_contrast"] if e["c"] == 1.0)
            assert row["verdicts"][row["seeds"].index(s)] == v
        assert f"| {a} | 1 | " in page
