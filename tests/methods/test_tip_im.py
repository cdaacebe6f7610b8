"""TIP-IM (facelab.methods.tip_im) on a real pretrained model and a real aligned face."""
import pytest
import torch
import torch.nn.functional as F

import facelab
from facelab.methods.tip_im import gain_values, tip_im
from facelab.ops import lp_norm
from facelab.ops.augment import self_augmentation
from facelab.ops.mmd import mmd

pytestmark = pytest.mark.weights

EPS = 12 / 255


@pytest.fixture(scope="module")
def model(load_model):
    return load_model("mobileface")


@pytest.fixture(scope="module")
def targets():
    """Five stand-in target 'identities' from scikit-image's sample pictures (not faces, but
    other-looking inputs with their own embeddings: enough to test the mechanics), 112²."""
    from skimage import data

    pics = [data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(), data.immunohistochemistry()]
    t = torch.stack([torch.from_numpy(p[:256, :256].copy()).permute(2, 0, 1).float() / 255 for p in pics])
    return F.interpolate(t, size=(112, 112), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("norm,eps", [("linf", EPS), ("l2", 1.0)])
@pytest.mark.parametrize("gain", ["G", "single"])
def test_budget_respected_exactly(norm, eps, gain, model, astronaut_face, targets):
    steps = list(tip_im(astronaut_face, targets, model, steps=4, eps=eps, alpha=eps / 2, norm=norm, gain=gain, gamma=5.0))
    assert [s.i for s in steps] == list(range(5))
    assert torch.equal(steps[0].x, astronaut_face)
    for s in steps:
        used = lp_norm(s.x - astronaut_face, norm)
        assert float(used.max()) <= eps + 1e-6
        assert s.x.min() >= 0 and s.x.max() <= 1
        assert torch.allclose(s.state["norm"], used)
    assert float(lp_norm(steps[-1].x - astronaut_face, norm)) > 0.9 * eps  # steps of ε/2 saturate it


def test_chosen_target_is_the_argmax_of_the_gain(model, astronaut_face, targets):
    x = torch.cat([astronaut_face, astronaut_face.flip(-1)])
    for gain in ("G", "G1", "G2"):
        steps = list(tip_im(x, targets, model, steps=1, gain=gain, mmd_batch=1))
        for s in steps[:-1]:
            gains = s.state["gains"]
            assert gains.shape == (2, targets.shape[0])
            assert (gains > 0).all()
            assert torch.equal(s.state["target"], gains.argmax(1))
        last = steps[-1]
        assert last.state["gains"] is None  # no update at the last step: the nearest target is reported
        assert torch.equal(last.state["target"], last.state["distance"].argmin(1))


def test_gain_from_the_first_step_matches_a_manual_candidate_update(model, astronaut_face, targets):
    """Alg. 1 written out for one candidate reproduces the batched gain."""
    alpha = 1.5 / 255
    first = next(tip_im(astronaut_face, targets, model, gain="G", alpha=alpha))
    with torch.no_grad():
        f_real = F.normalize(model(astronaut_face), dim=-1)
        f_t = F.normalize(model(targets), dim=-1)
    j = 2
    xa = astronaut_face.clone().requires_grad_(True)
    f = F.normalize(model(xa), dim=-1)
    loss = ((f - f_t[j]) ** 2).sum() - ((f - f_real) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, xa)
    cand = (astronaut_face + (-alpha * grad.sign()).clamp(-EPS, EPS)).clamp(0, 1)
    with torch.no_grad():
        fc = F.normalize(model(cand), dim=-1)
        delta = ((fc - f_real) ** 2).sum(-1, keepdim=True) - ((fc[:, None] - f_t[None]) ** 2).sum(-1)
    expected = torch.log1p(torch.exp(delta.max()))
    assert torch.allclose(first.state["gains"][0, j], expected, atol=2e-4)


def test_gain_functions():
    delta = torch.tensor([[0.5, -1.0, 2.0]])
    assert torch.allclose(gain_values(delta, "G"), torch.log1p(torch.exp(torch.tensor([2.0]))))
    assert torch.allclose(gain_values(delta, "G1"), torch.log1p(torch.exp(delta).sum(-1)))
    assert torch.allclose(gain_values(delta, "G2"), torch.log1p(torch.exp(torch.tensor([-1.0]))))
    with pytest.raises(ValueError):
        gain_values(delta, "G3")


def test_same_seed_same_result(model, astronaut_face, targets):
    kw = dict(steps=2, gamma=2.0, diversity_prob=0.9, mmd_batch=4)
    for gain in ("G",):
        a = facelab.run(tip_im(astronaut_face, targets, model, gain=gain, seed=3, **kw))
        b = facelab.run(tip_im(astronaut_face, targets, model, gain=gain, seed=3, **kw))
        assert torch.equal(a.x, b.x)
    r1 = [s.state["target"] for s in tip_im(astronaut_face, targets, model, gain="random", steps=8, seed=1, mmd_batch=1)]
    r2 = [s.state["target"] for s in tip_im(astronaut_face, targets, model, gain="random", steps=8, seed=2, mmd_batch=1)]
    assert torch.cat(r1[:-1]).tolist() != torch.cat(r2[:-1]).tolist()


def test_greedy_tip_im_pulls_towards_a_target(model, astronaut_face, targets):
    steps = list(tip_im(astronaut_face, targets, model, steps=8, gain="G"))
    first, last = steps[0], steps[-1]
    assert last.losses["iden"].item() < first.losses["iden"].item() - 0.5
    assert last.state["similarity"]["mobileface"].item() < first.state["similarity"]["mobileface"].item() - 0.3
    t = int(last.state["target"])
    assert last.state["distance"][0, t] < first.state["distance"][0, t] - 0.3  # pulled towards its target


def test_single_target_keeps_its_target_and_monitors_watch(model, load_model, astronaut_face, targets):
    watched = load_model("mobilefacenet")
    steps = list(tip_im(astronaut_face, targets, model, steps=3, gain="single", target_index=3, monitor=[watched]))
    assert all(s.state["target"].tolist() == [3] for s in steps[:-1])
    assert steps[0].state["gains"] is None
    assert set(steps[-1].state["similarity"]) == {"mobileface", "mobilefacenet"}
    with pytest.raises(ValueError, match="target_index"):
        next(tip_im(astronaut_face, targets, model, gain="G", target_index=0))
    with pytest.raises(ValueError, match="gain"):
        next(tip_im(astronaut_face, targets, model, gain="best"))


def test_gamma_raises_naturalness(model, astronaut_face, targets):
    kw = dict(steps=6, gain="single", target_index=0)
    plain = facelab.run(tip_im(astronaut_face, targets, model, gamma=0.0, **kw))
    natural = facelab.run(tip_im(astronaut_face, targets, model, gamma=100.0, **kw))
    mse = lambda s: (s.x - astronaut_face).pow(2).mean().item()  # noqa: E731
    assert mse(natural) < mse(plain)
    assert natural.losses["mmd"].item() < plain.losses["mmd"].item()


def test_mmd_and_self_augmentation():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    assert abs(mmd(x, x).item()) < 1e-5
    assert mmd(x, x + 4 / 255).item() > 0
    assert mmd(x, x + 4 / 255).item() < mmd(x, x + 16 / 255).item()
    aug = self_augmentation(6, 32, gen)
    y = aug(x)
    assert y.shape == (12, 3, 32, 32)
    assert torch.allclose(y[0], x[0], atol=1e-4) and torch.allclose(y[6], x[1], atol=1e-4)  # identity first
    xa = x.clone().requires_grad_(True)
    m = mmd(aug(xa + 0.05), y)
    (g,) = torch.autograd.grad(m, xa)
    assert g.abs().sum() > 0


def test_released_code_variant_holds_the_budget_and_is_seeded(model, astronaut_face, targets):
    x = torch.cat([astronaut_face, astronaut_face.flip(-1)])
    run = lambda seed: list(tip_im(x, targets, model, steps=3, variant="released_code", seed=seed))  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(p.x, q.x) for p, q in zip(a, b))
    assert not torch.equal(a[-1].x, c[-1].x)  # the diversity transforms come from the seed
    for s in a:
        assert float((s.x - x).abs().max()) <= EPS + 1e-6 and s.x.min() >= 0 and s.x.max() <= 1
    for s in a[:-1]:
        assert torch.equal(s.state["target"], s.state["gains"].argmax(1))
    paper = list(tip_im(x, targets, model, steps=3))
    assert not torch.equal(paper[-1].x, a[-1].x)


def test_variant_options_are_checked(model, astronaut_face, targets):
    with pytest.raises(ValueError, match="released_code"):
        list(tip_im(astronaut_face, targets, model, steps=1, variant="code"))
    with pytest.raises(ValueError, match="diversity_prob"):
        list(tip_im(astronaut_face, targets, model, steps=1, variant="released_code", diversity_prob=0.5))


def test_protocol_single_baseline_aims_where_it_is_scored():
    """run_protocol scores "single" against targets[0]; its settings must make it aim there too."""
    from facelab.experiments.tip_im import _settings

    assert _settings(["single", "G"], [0.0], None) == [("single", 0.0, {"target_index": 0}), ("G", 0.0, {})]
    assert _settings([], [], [("single", 1.0, {"target_index": 2, "label": "s2"})]) == [
        ("single", 1.0, {"target_index": 2, "label": "s2"})]
    with pytest.raises(ValueError, match="a setting is"):
        _settings([], [], [("G", 0.0, "x")])


def test_mmd_reported_at_the_ends_by_default_when_gamma_is_zero(model, astronaut_face, targets):
    """γ = 0: MMD is only reported; by default at the first and last Step (absent between), and
    the images are those of a run that reports it every Step."""
    thin = list(tip_im(astronaut_face, targets, model, steps=4, gain="single", target_index=1))
    full = list(tip_im(astronaut_face, targets, model, steps=4, gain="single", target_index=1, mmd_every=1))
    assert ["mmd" in s.losses for s in thin] == [True, False, False, False, True]
    assert all(bool(torch.isfinite(s.losses["mmd"])) for s in full)
    for a, b in zip(thin, full):
        assert torch.equal(a.x, b.x)
        assert torch.equal(a.losses["total"], b.losses["total"])
    assert torch.equal(thin[-1].losses["mmd"], full[-1].losses["mmd"])
    every_other = list(tip_im(astronaut_face, targets, model, steps=4, gain="single", target_index=1, mmd_every=2))
    assert ["mmd" in s.losses for s in every_other] == [True, False, True, False, True]
    with_gamma = list(tip_im(astronaut_face, targets, model, steps=2, gamma=1.0, mmd_batch=1))
    assert all(bool(torch.isfinite(s.losses["mmd"])) for s in with_gamma)
    with pytest.raises(ValueError, match="mmd_every"):
        tip_im(astronaut_face, targets, model, mmd_every=0)
