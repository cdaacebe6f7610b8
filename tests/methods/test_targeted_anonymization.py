"""Targeted Anonymization (boundary walking) and its baseline on real pretrained
models and a real aligned face: budget, Eq. 4/5 bookkeeping, determinism."""
import pytest
import torch

import facelab
from facelab.methods.targeted_anonymization import (
    average_features, targeted_anonymization, targeted_anonymization_baseline,
)

pytestmark = pytest.mark.weights

EPS = 8 / 255


@pytest.fixture(scope="module")
def victim(load_model):
    return load_model("mobileface")


@pytest.fixture(scope="module")
def authorized(load_model):
    return load_model("faceapi-resnet")  # Euclidean metric: J = −L2, the harder case for the bookkeeping


@pytest.fixture(scope="module")
def user(astronaut_face):
    """Four photos of 'the user': the face itself and three small variations of it."""
    x = astronaut_face
    return torch.cat([x, torch.flip(x, dims=[-1]), x.roll(3, dims=-1), (x * 0.9 + 0.05)])


def _clean_sim(model, x, user):
    with torch.no_grad():
        return model.similarity(model(x), average_features(model, user)).item()


def _run(x, user, victim, authorized, **kw):
    kw.setdefault("th_old", _clean_sim(authorized, x, user) - 0.05)
    kw.setdefault("n", 10)
    return list(targeted_anonymization(x, user, victim=victim, authorized=authorized, **kw))


def test_budget_holds_exactly_for_ours_and_the_baseline(victim, authorized, user, astronaut_face):
    runs = {
        "ours": _run(astronaut_face, user, victim, authorized, c=0.5),
        "baseline": list(targeted_anonymization_baseline(astronaut_face, victim=victim, authorized=authorized, d=1.0, n=10)),
    }
    for name, steps in runs.items():
        assert [s.i for s in steps] == list(range(11)), name
        assert torch.equal(steps[0].x, astronaut_face)
        for s in steps:
            linf = (s.x - astronaut_face).abs().max().item()
            assert linf <= EPS + 1e-6, (name, s.i, linf * 255)
            assert s.x.min() >= 0 and s.x.max() <= 1
            assert torch.allclose(s.state["norm"], (s.x - astronaut_face).abs().flatten(1).amax(1))
        assert (steps[-1].x - astronaut_face).abs().max().item() > 0.5 * EPS, f"{name} must use the budget"


def test_bd_is_exactly_eq5_at_every_step_and_switches(victim, authorized, user, astronaut_face):
    # c = 1: th_new is the clean photo's own similarity, so the first victim step crosses it
    th_old = _clean_sim(authorized, astronaut_face, user) - 0.3
    steps = _run(astronaut_face, user, victim, authorized, c=1.0, th_old=th_old, n=12, d=5.0)
    f_a = average_features(authorized, user)
    j0 = _clean_sim(authorized, astronaut_face, user)
    bds = []
    for s in steps:
        with torch.no_grad():
            j = authorized.similarity(authorized(s.x), f_a)
        assert torch.allclose(s.state["sim_authorized"], j, atol=1e-5)
        th = s.state["th_new"]
        assert th.item() == pytest.approx(1.0 * j0 + 0.0 * th_old, abs=1e-5)  # Eq. 4, clean reading
        expect = (s.state["sim_authorized"] < th).float()
        assert torch.equal(s.state["bd"], expect), s.i  # Eq. 5, exactly
        # the loss of this step used this bd (Alg. 1 line 4)
        assert torch.allclose(s.losses["loss"], s.losses["victim"] - s.state["bd"] * 5.0 * s.losses["authorized"], atol=1e-5)
        bds.append(int(s.state["bd"].item()))
    assert bds[0] == 0, "the clean photo is on the authorized side"
    assert 1 in bds, "the walk must cross the boundary"
    assert any(a == 1 and b == 0 for a, b in zip(bds, bds[1:])), f"bd never switched back: {bds}"


def test_c_moves_th_new_between_th_old_and_the_clean_similarity(victim, authorized, user, astronaut_face):
    j0 = _clean_sim(authorized, astronaut_face, user)
    th_old = j0 - 0.2
    for c in (0.0, 0.3, 1.0):
        s0 = next(targeted_anonymization(astronaut_face, user, victim=victim, authorized=authorized, c=c, th_old=th_old, n=2))
        assert s0.state["th_new"].item() == pytest.approx(c * j0 + (1 - c) * th_old, abs=1e-5)


def test_literal_eq4_makes_c_cancel(victim, authorized, user, astronaut_face):
    """th_new = c·J(current) + (1−c)·th_old  ⇒  bd ⇔ J < th_old for every c < 1."""
    kw = dict(threshold_from="current", th_old=_clean_sim(authorized, astronaut_face, user) - 0.1, n=8, seed=3)
    a = _run(astronaut_face, user, victim, authorized, c=0.2, **kw)
    b = _run(astronaut_face, user, victim, authorized, c=0.8, **kw)
    assert torch.equal(a[-1].x, b[-1].x)
    assert [s.state["bd"].item() for s in a] == [s.state["bd"].item() for s in b]


def test_same_seed_same_result_and_different_seed_differs(victim, authorized, user, astronaut_face):
    kw = dict(c=0.5, n=5, p=0.9)
    a = _run(astronaut_face, user, victim, authorized, seed=1, **kw)[-1]
    b = _run(astronaut_face, user, victim, authorized, seed=1, **kw)[-1]
    c = _run(astronaut_face, user, victim, authorized, seed=2, **kw)[-1]
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.state["bd"], b.state["bd"])
    assert not torch.equal(a.x, c.x)
    base = lambda s: facelab.run(targeted_anonymization_baseline(  # noqa: E731
        astronaut_face, victim=victim, authorized=authorized, n=5, p=0.9, seed=s)).x
    assert torch.equal(base(4), base(4))


def test_victim_ensemble_batch_and_monitor(victim, authorized, load_model, user, astronaut_face):
    other = load_model("mobilefacenet")
    x = torch.cat([astronaut_face, torch.flip(astronaut_face, dims=[-1])])
    th_old = _clean_sim(authorized, astronaut_face, user) - 0.1
    steps = list(targeted_anonymization(x, [user, user], victim=[victim, other], authorized=authorized, c=0.5,
                                        th_old=th_old, n=4, monitor=[load_model("mobilefacenet")]))
    last = steps[-1]
    assert last.x.shape == x.shape and last.state["bd"].shape == (2,) and last.state["th_new"].shape == (2,)
    assert set(last.state["similarity"]) == {"mobileface", "mobilefacenet", "faceapi-resnet"}
    assert last.state["similarity"]["mobileface"].mean() < steps[0].state["similarity"]["mobileface"].mean()
    # baseline: bd ≡ 1, the victim's similarity to the original falls
    b = list(targeted_anonymization_baseline(astronaut_face, victim=victim, authorized=authorized, d=1.0, n=6))
    assert all(s.state["bd"].item() == 1.0 for s in b)
    assert b[-1].state["similarity"]["mobileface"].item() < b[0].state["similarity"]["mobileface"].item() - 0.05


def test_bad_arguments(victim, authorized, user, astronaut_face):
    with pytest.raises(ValueError, match="c must be"):
        next(targeted_anonymization(astronaut_face, user, victim=victim, authorized=authorized, c=1.5, th_old=0.0))
    with pytest.raises(ValueError, match="threshold_from"):
        next(targeted_anonymization(astronaut_face, user, victim=victim, authorized=authorized, th_old=0.0,
                                    threshold_from="moving"))
    with pytest.raises(ValueError, match="one per image"):
        next(targeted_anonymization(astronaut_face.repeat(2, 1, 1, 1), [user], victim=victim, authorized=authorized,
                                    th_old=0.0))


def test_paired_sign_test_counts_discordant_decisions_exactly():
    from facelab.experiments.targeted_anonymization import paired_sign_test

    ours = {"target_accepts": {"m1": [False] * 6 + [True] * 4, "m2": [True, False]}}
    base = {"target_accepts": {"m1": [True] * 6 + [True] * 4, "m2": [True, False]}}
    t = paired_sign_test(ours, base)
    assert (t["only_a"], t["only_b"], t["n"]) == (0, 6, 12)
    assert t["p"] == pytest.approx(2 / 2**6)  # all 6 discordant pairs on one side
    base["target_accepts"]["m1"][0] = False
    assert paired_sign_test(ours, base)["p"] == pytest.approx(2 / 2**5)  # 0.0625: not significant
    assert paired_sign_test(ours, ours) == {"only_a": 0, "only_b": 0, "n": 12, "p": 1.0}


@pytest.mark.parametrize("baseline", [False, True])
def test_victims_reported_at_the_ends_by_default(astronaut_face, user, victim, authorized, baseline):
    """With input diversity the victims' similarity on the image itself costs a forward: by default it is
    reported at the first and last Step only; the images and every other entry are those of a run that
    reports it every Step."""
    if baseline:
        run = lambda **kw: list(targeted_anonymization_baseline(astronaut_face, victim=victim,  # noqa: E731
                                                                authorized=authorized, n=4, **kw))
    else:
        run = lambda **kw: list(targeted_anonymization(astronaut_face, user, victim=victim,  # noqa: E731
                                                       authorized=authorized, n=4, th_old=-0.5, **kw))
    thin, full = run(), run(monitor_every=1)
    assert [victim.name in s.state["similarity"] for s in thin] == [True, False, False, False, True]
    assert all(victim.name in s.state["similarity"] for s in full)
    for a, b in zip(thin, full):
        assert torch.equal(a.x, b.x)
        assert torch.equal(a.state["similarity"][authorized.name], b.state["similarity"][authorized.name])
        assert torch.equal(a.losses["loss"], b.losses["loss"])
    assert torch.equal(thin[-1].state["similarity"][victim.name], full[-1].state["similarity"][victim.name])
    no_diversity = run(p=0.0)
    assert all(victim.name in s.state["similarity"] for s in no_diversity)  # free: the gradient pass sees x itself
    with pytest.raises(ValueError, match="monitor_every"):
        run(monitor_every=0)
