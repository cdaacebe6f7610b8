"""The method kit's own contract (facelab.methods.kit), on a seeded synthetic model."""
import pytest
import torch

from facelab.methods import kit
from facelab.models.synthetic import synthetic_model


@pytest.fixture(scope="module")
def model():
    return synthetic_model(seed=1)


def _x(n=2):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_budget_checks_once_at_the_door():
    x = _x()
    b = kit.Budget.checked(x, eps=8 / 255, alpha=None, default_alpha=lambda e: e / 10)
    assert (b.eps, b.alpha, b.norm) == (8 / 255, 8 / 2550, "linf")
    with pytest.raises(ValueError, match="0–255"):
        kit.Budget.checked(x, eps=8, alpha=None, default_alpha=lambda e: e)
    with pytest.raises(ValueError, match="norm"):
        kit.Budget.checked(x, eps=0.1, alpha=None, norm="l1", default_alpha=lambda e: e)
    with pytest.raises(ValueError, match="larger than any L2 distance"):
        kit.Budget.checked(x, eps=1000.0, alpha=None, norm="l2", default_alpha=lambda e: e)


def test_momentum_step_stays_in_the_ball_and_the_box():
    x = _x()
    b = kit.Budget.checked(x, eps=4 / 255, alpha=3 / 255, default_alpha=lambda e: e)
    step = kit.MomentumStep(b, mu=1.0)
    x_i = x
    for _ in range(5):
        x_i = step(x_i, torch.randn(x.shape), x)
    assert float((x_i - x).abs().max()) <= 4 / 255 + 1e-7 and 0 <= float(x_i.min()) and float(x_i.max()) <= 1
    assert not x_i.requires_grad
    # μ = 0: plain gradient sign steps, one α each
    plain = kit.MomentumStep(kit.Budget(1.0, 0.01, "linf"), mu=0.0)
    g = torch.randn(x.shape)
    moved = plain(x.clamp(0.1, 0.9), g, x.clamp(0.1, 0.9)) - x.clamp(0.1, 0.9)
    assert torch.allclose(moved, -0.01 * g.sign(), atol=1e-7)


def test_iterate_merges_watched_models_and_refuses_a_missing_update(model):
    x = _x()
    other = synthetic_model("watched", seed=5)
    targets = other(_x(3))
    watch = kit.Watch([other], [other(x)], [targets])
    b = kit.Budget(8 / 255, 2 / 255, "linf")

    def evaluate(x_i, i, update):
        return kit.Evaluation({"zero": torch.zeros(())}, {"similarity": {"mine": torch.ones(2)}},
                              grad=torch.ones_like(x_i) if update else None)

    steps = list(kit.iterate(x, evaluate, steps=2, update=kit.MomentumStep(b, 0.0), watch=watch))
    assert [s.i for s in steps] == [0, 1, 2]
    assert set(steps[1].state["similarity"]) == {"mine", "watched"}
    with torch.no_grad():
        e = other(steps[1].x)
        assert torch.allclose(steps[1].state["similarity"]["watched"], other.similarity(e, other(x)))
        assert torch.allclose(steps[1].state["target_similarity"]["watched"],
                              other.similarity(e[:, None], targets[None]).amax(1))
    assert torch.allclose(steps[2].state["norm"], torch.full((2,), 4 / 255), atol=1e-6)

    def broken(x_i, i, update):
        return kit.Evaluation({"zero": torch.zeros(())})

    with pytest.raises(RuntimeError, match="neither a gradient nor a next point"):
        list(kit.iterate(x, broken, steps=1, update=kit.MomentumStep(b, 0.0)))


def test_a_jump_replaces_the_update_and_its_momentum():
    x = _x()
    b = kit.Budget(8 / 255, 2 / 255, "linf")
    step = kit.MomentumStep(b, 1.0)
    target, g = (x + 1 / 255).clamp(0, 1), torch.full_like(x, 3.0)

    def evaluate(x_i, i, update):
        return kit.Evaluation({}, jump=(target, g) if update else None)

    steps = list(kit.iterate(x, evaluate, steps=1, update=step))
    assert torch.equal(steps[1].x, target) and torch.equal(step.momentum(x), g)
