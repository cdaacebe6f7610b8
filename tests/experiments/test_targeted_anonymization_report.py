"""Targeted Anonymization's page is a pure function of its results JSON (no weights needed)."""
import pytest

from facelab.experiments import targeted_anonymization as E
from facelab.experiments.results import RESULTS_DIR
from facelab.experiments.targeted_anonymization_report import claims_markdown, render


def test_committed_page_is_the_render_of_the_committed_json():
    R = E.benchmark_results()
    if R is None:
        pytest.skip("benchmarks/results/targeted_anonymization.json is absent or of an older schema")
    page = (RESULTS_DIR / "targeted_anonymization.md").read_text()
    assert render(R) == page
    claims = claims_markdown(R)
    assert claims in page and claims.startswith("## Fig. 1")
    # every verdict the claims module computed is on the page
    for name, section in R["authorized"].items():
        for e in section["claims"]["fig1_contrast"]:
            assert f"| {name} | {e['c']:g} |" in claims and e["test"]["verdict"] in claims
