"""Baselines on a real pretrained model and a real aligned face."""
import pytest
import torch

import facelab
from facelab.methods import fgsm, ifgsm, mifgsm, pgd
from facelab.ops import lp_norm

pytestmark = pytest.mark.weights

EPS = 8 / 255


@pytest.fixture(scope="module")
def model(load_model):
    return load_model("mobileface")


@pytest.mark.parametrize(
    "make",
    [
        lambda x, m: fgsm(x, m),
        lambda x, m: ifgsm(x, m, steps=5),
        lambda x, m: pgd(x, m, steps=5),
        lambda x, m: pgd(x, m, steps=5, norm="l2", eps=1.0, alpha=0.3),
        lambda x, m: mifgsm(x, m, steps=5),
        lambda x, m: mifgsm(x, m, steps=5, diversity_prob=0.7, ti_kernel=7),
    ],
    ids=["fgsm", "ifgsm", "pgd-linf", "pgd-l2", "mifgsm", "di-ti-mifgsm"],
)
def test_dodging_lowers_similarity_to_the_source_within_budget(make, model, astronaut_face):
    steps = list(make(astronaut_face, model))
    assert all(isinstance(s, facelab.Step) for s in steps)
    assert [s.i for s in steps] == list(range(len(steps)))
    first, last = steps[0], steps[-1]
    assert last.losses["sim/mobileface"].item() < first.losses["sim/mobileface"].item() - 0.05
    for s in steps:
        assert s.x.min() >= 0 and s.x.max() <= 1
        assert s.x.shape == astronaut_face.shape


@pytest.mark.parametrize("norm,eps", [("linf", EPS), ("l2", 0.5)])
def test_pgd_budget_holds_exactly_and_is_used(norm, eps, model, astronaut_face):
    last = facelab.run(pgd(astronaut_face, model, steps=8, norm=norm, eps=eps, alpha=eps / 2))
    used = lp_norm(last.x - astronaut_face, norm).item()
    assert used <= eps + 1e-6
    assert used > 0.9 * eps  # sign/normalised steps of ε/2 saturate the budget
    assert torch.allclose(last.state["norm"], lp_norm(last.x - astronaut_face, norm))


def test_fgsm_is_one_full_sign_step(model, astronaut_face):
    steps = list(fgsm(astronaut_face, model))
    assert len(steps) == 2
    changed = (steps[1].x - astronaut_face).abs()
    interior = (astronaut_face > EPS) & (astronaut_face < 1 - EPS)
    assert torch.allclose(changed[interior], torch.full_like(changed[interior], EPS), atol=1e-6)


def test_impersonation_raises_similarity_to_the_target(model, astronaut_face):
    target = torch.flip(astronaut_face, dims=[-1]).roll(7, dims=-2)
    with torch.no_grad():
        before = model.similarity(model(astronaut_face), model(target)).item()
    last = facelab.run(mifgsm(astronaut_face, model, objective="impersonation", target=target, steps=10))
    with torch.no_grad():
        after = model.similarity(model(last.x), model(target)).item()
    assert after > before + 0.1
    with pytest.raises(ValueError, match="target"):
        next(pgd(astronaut_face, model, objective="impersonation"))


def test_same_seed_same_result_and_different_seed_differs(model, astronaut_face):
    kw = dict(steps=3, diversity_prob=0.9)
    a = facelab.run(pgd(astronaut_face, model, seed=1, **kw)).x
    b = facelab.run(pgd(astronaut_face, model, seed=1, **kw)).x
    c = facelab.run(pgd(astronaut_face, model, seed=2, **kw)).x
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_monitored_models_are_watched_not_attacked(model, load_model, astronaut_face):
    other = load_model("faceres")
    steps = list(mifgsm(astronaut_face, model, steps=2, monitor=[other]))
    assert set(steps[-1].state["similarity"]) == {"mobileface", "faceres"}
    assert "sim/faceres" not in steps[-1].losses
    assert steps[0].state["similarity"]["faceres"].item() == pytest.approx(1.0, abs=1e-5)


def test_ensemble_attacks_every_member(model, load_model, astronaut_face):
    other = load_model("mobilefacenet")
    first, *_, last = mifgsm(astronaut_face, [model, other], steps=6)
    for name in ("mobileface", "mobilefacenet"):
        assert last.losses[f"sim/{name}"].item() < first.losses[f"sim/{name}"].item() - 0.05


def test_bad_inputs_are_refused_with_clear_errors(model, astronaut_face):
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        next(pgd(astronaut_face * 255, model))
    with pytest.raises(ValueError, match="shape"):
        next(pgd(astronaut_face[0], model))
    with pytest.raises(ValueError, match="eps"):
        next(pgd(astronaut_face, model, eps=0))
    with pytest.raises(TypeError, match="FaceModel"):
        next(pgd(astronaut_face, torch.nn.Identity()))
