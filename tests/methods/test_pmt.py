"""PMT (facelab.methods.pmt), its shallow models and the attacks it is evaluated
against, on real pretrained models and a real aligned face."""
import math

import pytest
import torch

import facelab
from facelab.methods import recface as R
from facelab.methods.pmt import augment_pair, initial_images, pmt, ti_kernel
from facelab.methods.reconstruction import total_variation, white_box_reconstruction
from facelab.metrics.privacy import attribute_cossim, strict_accuracy
from facelab.metrics.quality import ssim

pytestmark = [pytest.mark.weights, pytest.mark.faces]


@pytest.fixture(scope="module")
def authorized(load_model):
    return load_model("mobileface")


@pytest.fixture(scope="module")
def obfuscation(authorized, load_model, astronaut_face):
    """One PMT run with the paper's defaults (fewer steps), watching an unauthorized model."""
    return facelab.history(pmt(astronaut_face, authorized, steps=100, monitor=[load_model("faceres")], monitor_every=25),
                           keep_every=25)


# -- shallow models -------------------------------------------------------------------------


def test_shallow_model_is_the_first_layers(authorized, astronaut_face):
    s = authorized.shallow(5)
    feats = s.features(astronaut_face)
    assert len(feats) == 5 and all(f.ndim == 4 for f in feats)
    assert torch.equal(s(astronaut_face), feats[-1])
    assert s.layer_names == authorized.shallow(6).layer_names[:5]
    x = astronaut_face.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(s(x).square().sum(), x)
    assert g.abs().sum() > 0  # gradients reach the pixels


@pytest.mark.parametrize("name", ["mobilefacenet", "faceapi-resnet", "facenet-casia"])
def test_every_graph_type_has_layers(name, load_model, astronaut_face):
    m = load_model(name)
    s = m.shallow(3)
    assert [f.shape[0] for f in s.features(astronaut_face)] == [1, 1, 1]
    with pytest.raises(ValueError, match=rf"beyond {name}'s depth: it has {s.depth} layers"):
        m.shallow(s.depth + 1)


# -- the method -------------------------------------------------------------------------------


def test_obfuscated_face_serves_only_the_authorized_model(obfuscation, authorized, load_model, astronaut_face):
    first, last = obfuscation.steps[0], obfuscation.last
    assert [s.i for s in obfuscation.steps][-1] == 100
    assert last.x.min() >= 0 and last.x.max() <= 1
    assert float(ssim(last.x, astronaut_face)) < 0.3  # visually far from the original
    sim = last.state["similarity"]
    assert float(sim["mobileface"]) >= authorized.threshold(0.01)  # the authorized model still matches
    assert float(sim["faceres"]) < load_model("faceres").threshold(0.01)  # an unauthorized one does not
    assert float(first.state["similarity"]["mobileface"]) < authorized.threshold(0.01)  # it started from noise
    assert float(last.losses["loss"]) < 0.2 * float(first.losses["loss"])
    assert obfuscation.state_curves["ssim"][-1] == pytest.approx(float(last.state["ssim"]))


def test_seeded_and_stepwise(authorized, astronaut_face):
    a = list(pmt(astronaut_face, authorized, steps=3, seed=5))
    b = list(pmt(astronaut_face, authorized, steps=3, seed=5))
    assert [s.i for s in a] == [0, 1, 2, 3]
    assert all(torch.equal(s.x, t.x) for s, t in zip(a, b))
    assert not torch.equal(a[0].x, next(iter(pmt(astronaut_face, authorized, steps=3, seed=6))).x)
    assert float(ssim(a[0].x, astronaut_face)) < 0.1  # step 0 is the noise start
    assert set(a[1].state) >= {"distance", "similarity", "ssim", "alpha", "authorized"}
    # by default the full models run only at the first and last step (Alg. 1 needs the shallow models alone)
    assert [sorted(s.state["similarity"]) for s in a] == [["mobileface"], [], [], ["mobileface"]]
    every = list(pmt(astronaut_face, authorized, steps=3, seed=5, monitor_every=1))
    assert all(sorted(s.state["similarity"]) == ["mobileface"] for s in every)
    assert torch.equal(every[-1].x, a[-1].x)  # monitoring never changes the result


@pytest.mark.parametrize("option", [{"init": "shuffle"}, {"init": "blur"}, {"augment": "none"}, {"augment": "affine"},
                                    {"augment": "mix"}, {"aggregate": False}, {"kernel": "linear"}, {"kernel": "none"}])
def test_every_option_runs_and_descends(option, authorized, astronaut_face):
    steps = list(pmt(astronaut_face, authorized, steps=2, **option))
    assert len(steps) == 3 and steps[-1].x.shape == astronaut_face.shape
    assert not torch.equal(steps[0].x, steps[-1].x)


def test_initial_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    shuffled = initial_images(x, "shuffle", g)
    # the same pixels (colour triples) in another order
    px = lambda t: sorted(map(tuple, t[0].flatten(1).T.tolist()))  # noqa: E731
    assert px(shuffled) == px(x) and not torch.equal(shuffled, x)
    blurred = initial_images(x, "blur", g)
    assert blurred.std() < x.std()


def test_augmentation_is_one_transform_for_both():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for kind in ("noise", "affine", "mix"):
        tx, ty = augment_pair(x, x.clone(), kind, g)
        assert torch.allclose(tx, ty) and not torch.allclose(tx, x)


def test_kernels_follow_section_5_3():
    lin = ti_kernel("linear", 1)
    assert torch.allclose(lin, torch.tensor([[.25, .5, .25], [.5, 1, .5], [.25, .5, .25]]) / 4)
    gau = ti_kernel("gaussian", 2)
    sigma = 2 / math.sqrt(3)
    assert gau.shape == (5, 5) and float(gau.sum()) == pytest.approx(1.0)
    assert float(gau[2, 3] / gau[2, 2]) == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert ti_kernel("none") is None


def test_mr_pmt_fits_every_authorized_model(authorized, load_model, astronaut_face):
    other = load_model("mobilefacenet")
    steps = list(pmt(astronaut_face, [authorized, other], steps=40, monitor_every=40))
    first, last = steps[0], steps[-1]
    assert set(last.state["distance"]) == {"mobileface", "mobilefacenet"}
    for name in ("mobileface", "mobilefacenet"):  # Eq. 8: every authorized model's features move towards x's
        assert float(last.state["distance"][name]) < 0.5 * float(first.state["distance"][name])
        assert float(last.state["similarity"][name]) > float(first.state["similarity"][name])
    # 40 steps bring mobileface's embedding well towards x; mobilefacenet's full embedding lags behind
    # its shallow features (+0.05 when written), see benchmarks/results/pmt.md for 100 steps
    assert float(last.state["similarity"]["mobileface"]) > float(first.state["similarity"]["mobileface"]) + 0.2


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("kw,match", [({"init": "zeros"}, "init must be one of 'noise', 'shuffle', 'blur'"),
                                      ({"augment": "jpeg"}, "augment must be one of 'none', 'noise', 'affine', 'mix'"),
                                      ({"kernel": "gauss"}, "did you mean 'gaussian'"),
                                      ({"n_layers": 99}, "beyond mobileface's depth"),
                                      ({"alpha": 4}, "looks like 0–255 units")])
def test_bad_options_are_named(kw, match, authorized, astronaut_face):
    with pytest.raises(ValueError, match=match):
        next(pmt(astronaut_face, authorized, **kw))


def test_bad_authorized_and_images(authorized, astronaut_face):
    with pytest.raises(ValueError, match="authorized is empty"):
        next(pmt(astronaut_face, []))
    with pytest.raises(TypeError, match="authorized"):
        next(pmt(astronaut_face, "mobileface"))
    with pytest.raises(ValueError, match=r"x must have values in \[0,1\]"):
        next(pmt(astronaut_face * 255, authorized))
    with pytest.raises(ValueError, match="y must hold one 0/1 label per pair"):
        strict_accuracy(authorized, astronaut_face, astronaut_face, astronaut_face, [1, 0])


# -- the attacks ------------------------------------------------------------------------------


def test_white_box_reconstruction_recovers_structure(authorized, astronaut_face):
    s = authorized.shallow(5)
    with torch.no_grad():
        z = s(astronaut_face)
    steps = list(white_box_reconstruction(z, s, steps=60, original=astronaut_face))
    first, last = steps[0], steps[-1]
    assert float(last.losses["feature"]) < 0.5 * float(first.losses["feature"])

    def grey_correlation(u, v):  # Pearson correlation of the grey images: ~0 for the flat start
        u, v = u.mean(1).flatten(), v.mean(1).flatten()
        u, v = u - u.mean(), v - v.mean()
        return float((u * v).sum() / (u.norm() * v.norm()))

    assert abs(grey_correlation(first.x, astronaut_face)) < 0.05
    assert grey_correlation(last.x, astronaut_face) > 0.2  # the face's structure comes back (0.37 when written)
    with torch.no_grad():  # and the authorized model recognises the reconstruction (SRRA)
        assert float(authorized.similarity(authorized(last.x), authorized(astronaut_face))) >= authorized.threshold(0.01)
    with pytest.raises(TypeError, match="shallow model"):
        next(white_box_reconstruction(z, authorized))


def test_total_variation_is_eq3():
    x = torch.zeros(1, 3, 4, 4)
    assert float(total_variation(x)) == pytest.approx(0.0, abs=1e-6)
    x[..., :, 2:] = 1.0  # one vertical edge: |dx| = 1 on one of the three columns
    assert float(total_variation(x, beta=2.0)) == pytest.approx(1 / 3, rel=1e-4)


def test_recface_trains_and_caches(authorized, astronaut_face, tmp_path, monkeypatch):
    s = authorized.shallow(5)
    faces = torch.cat([astronaut_face, astronaut_face.flip(-1), astronaut_face.flip(-2), astronaut_face.roll(5, -1)])
    steps = list(R.train_recface(s, faces, iterations=3, batch_size=4, preview=2))
    assert [st.i for st in steps] == [0, 1, 2, 3]
    assert steps[-1].x.shape == (2, 3, 112, 112) and 0 <= float(steps[-1].x.min()) and float(steps[-1].x.max()) <= 1
    assert math.isfinite(float(steps[-1].losses["loss"])) and steps[-1].state["epoch"] == pytest.approx(3.0)
    first = steps[0].state["recface"]
    assert first is steps[-1].state["recface"] and not first.training

    path = tmp_path / "recface.pt"
    monkeypatch.setattr(R, "checkpoint_path", lambda *a: path)
    net, prov = R.load_or_train(s, faces, data="4 astronaut variants", iterations=2, batch_size=4, command="pytest",
                                progress=False)
    assert path.exists() and not list(tmp_path.glob(".tmp-*"))  # written atomically, no leftovers
    assert {"command", "data", "seed", "facelab_version", "final_loss"} <= set(prov) and prov["command"] == "pytest"
    again, prov2 = R.load_or_train(s, faces, data="4 astronaut variants", iterations=2, batch_size=4, progress=False)
    assert prov2["created"] == prov["created"]  # loaded, not retrained
    with torch.no_grad():
        z = s(faces)
        assert torch.allclose(net(z), again(z), atol=1e-6)


def test_attribute_cossim_and_strict_accuracy(authorized, astronaut_face):
    cs = attribute_cossim(astronaut_face, astronaut_face)
    assert set(cs) == {"emotion", "race", "gender", "age"}
    for k in ("emotion", "race", "gender"):
        assert float(cs[k]) == pytest.approx(1.0, abs=1e-5)
    assert float(cs["age"]) == pytest.approx(0.0, abs=1e-4)
    x = astronaut_face.repeat(2, 1, 1, 1)
    other = torch.rand_like(astronaut_face)
    ok = strict_accuracy(authorized, x, x, torch.cat([astronaut_face, other]), [1, 0])
    assert ok.tolist() == [True, True]
    wrong = strict_accuracy(authorized, x, x, torch.cat([astronaut_face, other]), [0, 1])
    assert wrong.tolist() == [False, False]
