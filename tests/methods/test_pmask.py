"""PMask (facelab.methods.pmask) and the Fawkes-style cloak on real pretrained models and real faces."""
import math

import pytest
import torch

from facelab.methods.fawkes import fawkes
from facelab.methods.pmask import dist, features, next_kappa, pmask
from facelab.metrics import ssim

pytestmark = pytest.mark.weights

OMEGA = 0.017


@pytest.fixture(scope="module")
def team(load_model):
    return [load_model("mobileface"), load_model("faceapi-resnet")]


@pytest.fixture(scope="module")
def person(offline):
    """Two of Obama's photos (ℓ's gallery) and every single-photo identity (the other people)."""
    own = [i for i, l in enumerate(offline.labels) if l == "obama"][:2]
    others = [i for i, m in enumerate(offline.distractor_mask) if m]
    return offline.crops[own], offline.crops[others]


@pytest.fixture(scope="module")
def run(person, team):
    x, others = person
    return list(pmask(x, others, team, delta=0.25, max_steps=150))


def test_converges_with_eq4_zero_for_every_team_model(run, person, team):
    x, others = person
    last = run[-1]
    assert bool(last.state["converged"].all())
    assert torch.equal(last.losses["rev_triplet"], torch.zeros(2))
    # Eq. 4 recomputed from scratch on the final photos: every own gallery photo is now farther
    # than DIST to the nearest other person + the margin, for every team model
    with torch.no_grad():
        for m in team:
            f_x0, f_x, f_o = features(m, x), features(m, last.x), features(m, others)
            d_n = dist(f_x0, f_o).amin(1)
            assert (dist(f_x, f_x0).amin(1) >= (1 + 0.25) * d_n - 1e-4).all()
            assert torch.allclose(last.state["required"][m.name], (1 + 0.25) * d_n, atol=1e-4)


def test_ssim_bound_holds_at_convergence(run, person):
    x, _ = person
    last = run[-1]
    assert (last.state["ssim"] >= 1 - 2 * OMEGA).all()
    assert (ssim(last.x, x) >= 1 - 2 * OMEGA - 1e-4).all()  # the evaluation metric agrees
    assert torch.equal(last.losses["impercept"], torch.zeros(2))


def test_stops_early_and_converged_photos_stop_changing(run):
    assert run[-1].i < 150  # stopped on convergence, not at max_steps
    assert [s.i for s in run] == list(range(len(run)))
    at = run[-1].state["converged_at"]
    assert (at >= 0).all()
    for j in range(2):
        c = int(at[j])
        assert not bool(run[c - 1].state["converged"][j]) and bool(run[c].state["converged"][j])
        for s in run[c:]:
            assert torch.equal(s.x[j], run[c].x[j])


def test_easier_margin_stops_sooner(person, team):
    x, others = person
    easy = list(pmask(x[:1], others, team[:1], delta=0.05, max_steps=150))
    hard = list(pmask(x[:1], others, team[:1], delta=0.5, max_steps=150))
    assert bool(easy[-1].state["converged"][0])
    assert easy[-1].i < hard[-1].i


def test_state_and_losses_carry_what_the_paper_names(run, team):
    s = run[0]
    assert set(s.losses) >= {"rev_triplet", "impercept", "total"}
    for key in ("converged", "kappa", "ssim", "margin", "distance", "required"):
        assert key in s.state
    assert set(s.state["distance"]) == {m.name for m in team}
    assert torch.allclose(s.state["kappa"], torch.ones(2))  # κ starts at 1.0
    for name, m in s.state["margin"].items():
        assert torch.allclose(s.state["required"][name], m / 0.25 + m)  # m = δ·DIST(x^G, 𝒩(x^G))


def test_kappa_follows_fawkes_rule_on_the_quality_weight():
    k, side = torch.ones(4), torch.tensor([0, 0, 1, -1])
    d = torch.tensor([0.5, 2.0, 0.5, 2.0]) * OMEGA  # below, above, below-after-above, above-after-below
    k2, s2 = next_kappa(k * 4, side, d, OMEGA)
    assert k2.tolist() == [2.0, 8.0, 1.0, 1.0]  # halve, double, reset on crossing (×2)
    assert s2.tolist() == [-1, 1, -1, 1]
    k3, s3 = next_kappa(torch.tensor([4.0]), torch.tensor([1]), torch.tensor([OMEGA]), OMEGA)
    assert k3.tolist() == [1.0] and s3.tolist() == [0]  # inside the band
    big, _ = next_kappa(torch.tensor([256.0]), torch.tensor([1]), torch.tensor([2 * OMEGA]), OMEGA)
    small, _ = next_kappa(torch.tensor([1 / 256]), torch.tensor([-1]), torch.tensor([0.0]), OMEGA)
    assert big.tolist() == [256.0] and small.tolist() == [1 / 256]  # Fawkes' 129 / (1/129) bounds


def test_monitor_models_are_watched_not_attacked(person, team, load_model):
    x, others = person
    watched = load_model("mobilefacenet")
    steps = list(pmask(x[:1], others, team[:1], delta=0.25, max_steps=2, monitor=[watched]))
    assert "mobilefacenet" in steps[-1].state["distance"]
    assert steps[-1].state["team"] == ("mobileface",)


@pytest.mark.parametrize("kw,match", [
    (dict(x=torch.zeros(0, 3, 112, 112)), "^x:"),
    (dict(others=torch.zeros(0, 3, 112, 112)), "^others:"),
    (dict(others=None), "^others:"),
    (dict(team=[]), "^team:"),
    (dict(omega=0.0), "^omega:"),
    (dict(omega=1.5), "^omega:"),
    (dict(delta=-0.5), "^delta:"),
    (dict(delta=math.inf), "^delta:"),
    (dict(kappa=0.0), "^kappa:"),
])
def test_bad_input_names_the_argument(kw, match, person, team):
    x, others = person
    args = dict(x=x[:1], others=others, team=team)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        next(pmask(args.pop("x"), args.pop("others"), args.pop("team"), **args))


def test_fawkes_runs_its_fixed_iterations_within_budget(person, team):
    x, others = person
    steps = list(fawkes(x[:1], others[:1], team[:1], max_step=12))
    assert [s.i for s in steps] == list(range(13))  # fixed iterations, no early stop
    d_end = float(steps[-1].state["target_distance"]["mobileface"])
    assert d_end < float(steps[0].state["target_distance"]["mobileface"])  # moved toward the target
    assert float((1 - ssim(steps[-1].x, x[:1])) / 2) <= 1.1 * OMEGA + 1e-4  # the kept best is inside 1.1·th
