"""ErasableMask: training through the three stages on real surrogate weights,
checkpoints that refuse damage, inference input checks, and learning.

One short training (fast-scale networks, a few epochs per stage, ~20 s of CPU)
is shared by the module.  What a run this short can show is tested on it:
the restorer brings protected faces closer to the clean ones (PSNR), the
attack lowers the surrogates' similarity below the attribute edit's, every
stage's main loss falls.  Whether the *teaching-scale* checkpoint erases
(ESR above the protected faces' match rate) and protects (ASR) is tested on
that checkpoint; when the facelab cache has none, the test trains it first,
exactly as ``python -m facelab.methods.erasable_mask`` would (about 4 min on
2 cores), and stores it there with its provenance naming this test.
"""
from __future__ import annotations

import json

import pytest
import torch

import facelab
from facelab.methods import erasable_mask as em
from facelab.methods.erasable_mask.checkpoint import MAGIC
from facelab.methods.erasable_mask.losses import NOISES

pytestmark = pytest.mark.weights

SURROGATES = ("mobileface", "faceapi-resnet")
EPOCHS = (3, 4, 3)


@pytest.fixture(scope="module")
def faces64():
    return em.offline_faces(64)


@pytest.fixture(scope="module")
def surrogates(load_model):
    return {n: load_model(n) for n in SURROGATES}


@pytest.fixture(scope="module")
def trained(faces64, surrogates):
    torch.set_num_threads(1)
    net, cfg = em.configs("fast", epochs=EPOCHS, n_preview=3)
    torch.manual_seed(0)
    model = em.ErasableMask(net)
    hist = facelab.history(em.train(model, faces64, surrogates, cfg), keep_every=1, max_kept=None)
    model.provenance = {"command": "pytest", "seed": 0, "final_losses": hist.last.scalars()}
    return model, hist


def _stage_indices(hist, stage):
    return [k for k, s in enumerate(hist.steps) if s.state["stage"] == stage and k > 0]


def test_training_runs_through_three_stages_as_steps(trained, faces64):
    model, hist = trained
    per_epoch = len(faces64.train) // 8
    assert hist.steps[0].i == 0 and hist.steps[0].losses == {}
    assert [s.i for s in hist.steps] == list(range(len(hist.steps)))
    stages = [s.state["stage"] for s in hist.steps[1:]]
    assert stages == sorted(stages) and set(stages) == {1, 2, 3}
    for stage, epochs in zip((1, 2, 3), EPOCHS):
        idx = _stage_indices(hist, stage)
        assert len(idx) == epochs * per_epoch
        assert sorted({hist.steps[k].state["epoch"] for k in idx}) == list(range(epochs))
    expected = {1: {"rec", "cls", "gan", "d_adv", "d_gp", "d_cls", "total"},
                2: {"pert", "adv", "restore", "cls_p", "gan_p", "d_adv", "d_gp", "d_cls", "total",
                    *(f"adv/{n}" for n in SURROGATES)},
                3: {"restore", "total"}}
    for stage, names in expected.items():
        for k in _stage_indices(hist, stage):
            step = hist.steps[k]
            assert set(step.losses) == names, (stage, sorted(step.losses))
            assert all(torch.isfinite(v).all() for v in step.losses.values())
            assert set(step.state["weights"]) == set(SURROGATES)
            assert step.state["lr"] and all(v > 0 for v in step.state["lr"].values())
            assert step.x.shape == (4 * 3, 3, 64, 64) and step.state["rows"] == em.ROWS
            if stage > 1:
                assert step.state["noise"] in NOISES
    # meta-auxiliary attack: the surrogates take turns as primary
    primaries = {hist.steps[k].state["primary"] for k in _stage_indices(hist, 2)}
    assert primaries == set(SURROGATES)
    # self-adaptive weights (Eq. 11) move away from 1 after two epochs and keep their sum K
    last_w = hist.steps[_stage_indices(hist, 2)[-1]].state["weights"]
    assert sum(last_w.values()) == pytest.approx(len(SURROGATES))
    assert any(abs(w - 1) > 1e-6 for w in last_w.values())
    rows = em.preview_rows(hist.last)
    assert list(rows) == list(em.ROWS)
    assert torch.equal(rows["clean"], hist.steps[0].x[:3])


def test_every_stage_main_loss_falls(trained):
    _, hist = trained
    for stage, name in ((1, "rec"), (2, "restore"), (3, "restore")):
        series = [float(hist.steps[k].losses[name]) for k in _stage_indices(hist, stage)]
        q = max(2, len(series) // 4)
        first, last = sum(series[:q]) / q, sum(series[-q:]) / q
        assert last < first, (stage, name, first, last)


def test_short_training_restores_and_attacks(trained, faces64, surrogates):
    model, _ = trained
    x, a = faces64.split("test")
    b = 1 - a
    r = em.evaluate(model, x, b, surrogates)
    # the restorer undoes part of the protection (16 held-out faces)
    assert r["psnr_restored"] > r["psnr_protected"] + 0.5, r
    # the perturbation encoder lowered the surrogates' similarity below the attribute edit alone
    with torch.no_grad():
        drop = []
        for m in surrogates.values():
            e = m(x)
            sim_edit = torch.nn.functional.cosine_similarity(m(model.edit(x, b)), e).mean()
            sim_prot = torch.nn.functional.cosine_similarity(m(model.protect(x, b)), e).mean()
            drop.append(float(sim_edit - sim_prot))
    assert sum(drop) / len(drop) > 0, drop


def test_checkpoint_round_trip_keeps_weights_and_provenance(trained, faces64, tmp_path):
    model, _ = trained
    path = em.save(model, path=tmp_path / "m.ckpt")
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically, nothing left behind
    back = em.load(path)
    assert back.provenance == json.loads(json.dumps(model.provenance))
    assert back.cfg == model.cfg
    x, a = faces64.split("test")
    assert torch.equal(back.protect(x[:2], a[:2]), model.eval().protect(x[:2], a[:2]))
    assert torch.equal(back.erase(x[:2]), model.erase(x[:2]))


def test_damaged_foreign_or_other_version_checkpoint_is_refused(trained, tmp_path):
    model, _ = trained
    good = em.save(model, path=tmp_path / "good.ckpt").read_bytes()

    flipped = bytearray(good)
    flipped[-100] ^= 0xFF
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    with pytest.raises(em.CheckpointError, match="damaged"):
        em.load(tmp_path / "flipped.ckpt")

    (tmp_path / "short.ckpt").write_bytes(good[:-1000])
    with pytest.raises(em.CheckpointError, match="damaged"):
        em.load(tmp_path / "short.ckpt")

    torch.save({"G": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(em.CheckpointError, match="not a facelab ErasableMask checkpoint"):
        em.load(tmp_path / "foreign.ckpt")

    header_end = good.index(b"\n", len(MAGIC))
    header = json.loads(good[len(MAGIC):header_end])
    header["facelab_version"] = "0.0.1"
    (tmp_path / "old.ckpt").write_bytes(MAGIC + json.dumps(header).encode() + good[header_end:])
    with pytest.raises(em.CheckpointError, match="facelab 0.0.1"):
        em.load(tmp_path / "old.ckpt")

    header = json.loads(good[len(MAGIC):header_end])
    header["config"]["channels"] = [8, 16, 32, 128]  # weights no longer fit
    (tmp_path / "shape.ckpt").write_bytes(MAGIC + json.dumps(header).encode() + good[header_end:])
    with pytest.raises(em.CheckpointError, match="do not fit"):
        em.load(tmp_path / "shape.ckpt")

    with pytest.raises(FileNotFoundError, match="python -m facelab.methods.erasable_mask"):
        em.load(tmp_path / "missing.ckpt")


def test_bad_inputs_get_clear_errors(trained, faces64):
    model, _ = trained
    x, a = faces64.split("test")
    with pytest.raises(ValueError, match="64x64"):
        model.protect(torch.rand(1, 3, 112, 112), a[:1])
    with pytest.raises(ValueError, match="64x64"):
        model.erase(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="length 3"):
        model.protect(x[:1], [1.0, 0.0])
    with pytest.raises(ValueError, match="missing"):
        model.protect(x[:1], {"male": 1, "young": 0})
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        model.protect(x[:1], [2.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="rows"):
        model.protect(x[:2], a[:3])
    with pytest.raises(ValueError, match="kappa"):
        em.TrainConfig(kappa=30.0)
    with pytest.raises(ValueError, match="attack"):
        em.TrainConfig(attack="pgd")
    with pytest.raises(ValueError, match=r"shortcut_layers must be in 1 … 3"):
        em.NetConfig(shortcut_layers=4)
    with pytest.raises(ValueError, match="shortcut_layers"):
        em.NetConfig(shortcut_layers=0)
    # a dict naming every attribute and one shared row work
    assert model.protect(x[:2], {"male": 1, "young": 0, "smiling": 1}).shape == (2, 3, 64, 64)
    assert model.protect(x[:2], [1, 0, 1]).shape == (2, 3, 64, 64)


def test_editor_ablation_scores_the_edit_alone(trained, faces64, surrogates):
    from facelab.experiments.erasable_mask import evaluate_editor
    from facelab.metrics.quality import psnr

    model, _ = trained
    x, a = faces64.split("test")
    e = evaluate_editor(model, x, 1 - a, surrogates)
    r = em.evaluate(model, x, 1 - a, surrogates)
    assert e["shortcut_layers"] == 3 and e["stage1_epochs"] is None  # the fixture's provenance names no epochs
    for name in SURROGATES:
        assert len(e["matched"][name]) == x.shape[0]
        assert e["match"][name] == pytest.approx(r["models"][name]["match_edited"])
    with torch.no_grad():
        assert e["psnr"] == pytest.approx(float(psnr(model.edit(x, 1 - a), x).mean()), abs=1e-4)


def test_step_method_is_the_trained_protector(trained, faces64, surrogates):
    """``erasable_mask(x, protector=…)``, the registry's one-shot method, gives exactly the model's
    protect and erase, with the real surrogates' similarities; bad inputs get clear errors."""
    model, _ = trained
    x, a = faces64.split("test")
    x, a = x[:3], a[:3]
    steps = list(em.erasable_mask(x, protector=model, attributes=a, monitor=list(surrogates.values())))
    assert [s.i for s in steps] == [0, 1] and torch.equal(steps[0].x, x)
    x_p = model.protect(x, a).clamp(0, 1)
    assert torch.equal(steps[1].x, x_p)
    assert torch.equal(steps[1].state["restored"], model.erase(x_p).clamp(0, 1))
    for name, m in surrogates.items():
        want = m.similarity(m(x_p), m(x))
        torch.testing.assert_close(steps[1].state["similarity"][name], want)
        assert torch.allclose(steps[0].state["similarity"][name], m.similarity(m(x), m(x)))
    own = em.own_attributes(x)  # the default b = a, read by the real attribute models
    assert own.shape == (3, 3) and set(own.unique().tolist()) <= {0.0, 1.0}
    default = list(em.erasable_mask(x, protector=model))
    assert torch.equal(default[1].state["attributes"], own)
    with pytest.raises(TypeError, match="protector must be"):
        next(em.erasable_mask(x, protector=3))
    with pytest.raises(ValueError, match="64x64"):
        next(em.erasable_mask(torch.rand(1, 3, 32, 32), protector=model))


def test_teaching_checkpoint_protects_and_erases(faces64, load_model):
    """On the teaching-scale checkpoint (trained here first when the cache has none), on the two
    surrogates and the three held-out (black-box) models."""
    if not em.exists():
        em.train_and_save("teaching", command="pytest tests/methods/test_erasable_mask.py (the same training as "
                                              "python -m facelab.methods.erasable_mask)")
    model = em.load()
    face_models = {n: load_model(n) for n in (*SURROGATES, "mobilefacenet", "facenet-casia", "faceres")}
    x, a = faces64.split("test")
    r = em.evaluate(model, x, 1 - a, face_models)
    assert r["psnr_restored"] > r["psnr_protected"] + 1.0, r
    ms = r["models"]
    # on every model the restorer gives the identity back: restored faces match their owner clearly more
    # often than protected ones (16 faces, so 0.25 is four faces)
    assert all(m["esr"] >= (1 - m["asr"]) + 0.25 for m in ms.values()), ms
    # the protected faces fool the surrogates at least half the time, and every held-out model sometimes
    assert all(ms[n]["asr"] >= 0.5 for n in SURROGATES), ms
    assert all(m["asr"] > 0 for m in ms.values()), ms  # a clean face matches itself: clean ASR is 0
