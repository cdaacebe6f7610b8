"""Same seed, same numbers: the iterative methods against the golden runs in tests/fixtures/golden.

The reference was recorded before the baselines, TIP-IM and Targeted Anonymization moved onto
the method kit; each case reruns the method on one thread (as it was recorded) and must give
the same losses, state and final pixels at every Step, within float round-off.

Sign steps amplify round-off: on another CPU (another SIMD path through the convolutions) a
gradient component within round-off of zero can take the other sign and move that pixel by a step.
So a few probe pixels (``MOVED_PROBES`` of 256) may differ, and losses and state agree to
``LOSS_TOL``; a change to an algorithm moves far more than that (the control test below).
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
_spec = importlib.util.spec_from_file_location("golden_cases", HERE / "cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
REFERENCE = json.loads(cases.REFERENCE.read_text())
TOL = 1e-5
LOSS_TOL = 1e-3
MOVED_PROBES = 5


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _close(a: float, b: float, tol: float = LOSS_TOL) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _compare(name: str, got: dict) -> None:
    want = REFERENCE[name]
    assert got["shape"] == want["shape"]
    assert len(got["steps"]) == len(want["steps"]), f"{name}: number of Steps changed"
    for g, w in zip(got["steps"], want["steps"]):
        assert g["i"] == w["i"]
        for part in ("losses", "state"):
            assert set(g[part]) == set(w[part]), f"{name} step {w['i']}: {part} keys changed"
            bad = {k: (g[part][k], w[part][k]) for k in w[part] if not _close(g[part][k], w[part][k])}
            assert not bad, f"{name} step {w['i']}: {part} moved (got, reference): {bad}"
    moved = (torch.tensor(got["final_probes"]) - torch.tensor(want["final_probes"])).abs() > TOL
    assert int(moved.sum()) <= MOVED_PROBES, f"{name}: {int(moved.sum())} of {moved.numel()} probe pixels moved"
    assert _close(got["final_sum"], want["final_sum"])


def test_reference_covers_every_case():
    assert set(cases.synthetic_cases()) | {"real_mifgsm", "real_tip_im", "real_ta"} == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(cases.synthetic_cases()))
def test_synthetic_case_unchanged(name):
    _compare(name, cases.summarise(cases.synthetic_cases()[name]()))


@pytest.mark.weights
@pytest.mark.faces
@pytest.mark.parametrize("name", ["real_mifgsm", "real_tip_im", "real_ta"])
def test_real_case_unchanged(name, load_model, astronaut_face):
    _compare(name, cases.summarise(cases.real_cases(load_model, astronaut_face)[name]()))


def test_a_moved_number_is_caught():
    """The comparison is not vacuous: a case run with another step size fails it, the same call passes."""
    from facelab.methods.baselines import ifgsm

    x = cases.smooth_images(2, 0)
    m = cases._synthetic()
    default_alpha = (8 / 255) / 4
    for alpha in (1 / 255, 1.1 * default_alpha):  # a different step, and one 10 % longer
        moved = cases.summarise(ifgsm(x, m["attacked"], steps=4, alpha=alpha, monitor=[m["watched"]]))
        with pytest.raises(AssertionError):
            _compare("ifgsm", moved)
    same = cases.summarise(ifgsm(x, m["attacked"], steps=4, alpha=default_alpha, monitor=[m["watched"]]))
    _compare("ifgsm", same)
