"""The contract every registered method owes, checked on a tiny synthetic face model.

Runs with no fetched file (the fast loop: ``pytest -m "not weights and not faces"``).  A method
added to :mod:`facelab.methods.registry` is enrolled here automatically: its extra inputs come from
:data:`INPUT_MAKERS`, its iteration count is cut to a few steps.  What this proves is the
*contract* (fields, shapes, budget, determinism, memory, refusals), not that a method protects
anyone: that is measured on the pretrained models, in the per-paper tests and benchmarks.
"""
from __future__ import annotations

import gc
import sys
import weakref

import pytest
import torch

from facelab.methods import INPUTS, available, get
from facelab.methods.erasable_mask import ErasableMask, NetConfig
from facelab.models.synthetic import synthetic_model
from facelab.steps import Step

SIZE = 32
STEPS = 3


def _faces(n: int, seed: int) -> torch.Tensor:
    """Smooth random images (a blurred noise field), not bare per-pixel noise: SSIM- and
    feature-based losses then have room to move in both directions."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, SIZE // 4, SIZE // 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(0, 1)


def _untrained_protector() -> ErasableMask:
    """A small ErasableMask with seeded random weights (the same one every call)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ErasableMask(NetConfig(size=SIZE, channels=(8, 16), disc_channels=(8,), disc_hidden=16))


#: how the suite makes each extra input of INPUTS (a new input must get a maker here)
INPUT_MAKERS = {
    "targets": lambda: _faces(3, 11),
    "target": lambda: _faces(1, 12),
    "others": lambda: _faces(4, 13),
    "user_images": lambda: _faces(2, 14),
    "authorized": lambda: synthetic_model("authorized", seed=3),
    "protector": lambda: _untrained_protector(),
    "attributes": lambda: torch.tensor([1.0, 0.0, 1.0]),
}


def test_every_input_has_a_maker():
    assert set(INPUT_MAKERS) == set(INPUTS)


@pytest.fixture(scope="module")
def attacked():
    return synthetic_model("attacked", seed=1)


@pytest.fixture(scope="module")
def watched():
    return synthetic_model("watched", seed=2)


def _start(name: str, x: torch.Tensor, models, *, seed: int = 0, monitor=(), steps: int = STEPS, **extra):
    info = get(name)
    kw = {n: INPUT_MAKERS[n]() for n in info.needs}
    if info.iterations is not None:
        kw[info.iterations] = steps
    if info.accepts("seed"):
        kw["seed"] = seed
    if monitor and info.accepts("monitor"):
        kw["monitor"] = monitor
    kw.update(extra)
    return info(x, models, **kw)


def _drain(gen) -> list[Step]:
    return list(gen)


METHODS = available()


def test_registry_lists_every_paper_and_baseline():
    for name in ("fgsm", "ifgsm", "pgd", "mifgsm", "tip_im", "targeted_anonymization", "pmask", "fawkes", "pmt",
                 "white_box_reconstruction", "erasable_mask"):
        assert name in METHODS
    assert len(set(METHODS)) == len(METHODS)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(KeyError, match="did you mean 'tip_im'"):
        get("tipim")


@pytest.mark.parametrize("name", [n for n in METHODS if get(n).needs])
def test_missing_input_is_named(name, attacked):
    info = get(name)
    with pytest.raises(ValueError, match=f"{name} needs {info.needs[0]}"):
        info(_faces(2, 0), [attacked])


@pytest.mark.parametrize("name", METHODS)
def test_calling_runs_nothing_before_the_first_next(name, attacked):
    """The Step protocol: calling a method only checks its arguments; the first next() starts the work."""
    calls = []
    hooks = [mod.register_forward_hook(lambda *a: calls.append(1)) for mod in attacked.modules()]
    try:
        gen = _start(name, _faces(2, 0), [attacked])
        assert calls == [], f"{name} ran its models when called"
        next(gen)
        assert calls, f"{name}'s first step ran no model"
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("name", METHODS)
def test_steps_follow_the_protocol(name, attacked, watched):
    info = get(name)
    x = _faces(2, 0)
    x_before = x.clone()
    steps = _drain(_start(name, x, [attacked], monitor=[watched]))
    assert torch.equal(x, x_before), "a method must not modify its input"
    assert steps and all(isinstance(s, Step) for s in steps)
    assert [s.i for s in steps] == list(range(len(steps))), "i counts 0, 1, 2 … with no gap"
    expected = STEPS + 1 if info.iterations is not None else 2  # a one-shot method: the start and its result
    if info.early_stop:
        assert 1 <= len(steps) <= expected
    else:
        assert len(steps) == expected, f"{name} yields iterations + 1 Steps"
    for s in steps:
        assert s.x.dtype == torch.float32 and not s.x.requires_grad
        assert s.x.shape == x.shape
        assert torch.isfinite(s.x).all() and s.x.min() >= 0 and s.x.max() <= 1
        for k, v in s.losses.items():
            assert isinstance(v, torch.Tensor) and v.ndim <= 1 and not v.requires_grad, k
            assert v.ndim == 0 or v.shape[0] == x.shape[0], f"per-image loss {k} has one value per image"
            assert torch.isfinite(v).all(), k
    if info.output == "protected":
        for s in (steps[0], steps[-1]):
            sims = s.state.get("similarity", {})
            names = {"attacked", "watched"}
            assert names <= set(sims), f"{name}: state['similarity'] must cover {names}; has {sorted(sims)}"
            for v in sims.values():
                assert v.shape == (x.shape[0],) and torch.isfinite(v).all()
        assert not torch.equal(steps[-1].x, x), f"{name} changed nothing"


@pytest.mark.parametrize("name", [n for n in METHODS if get(n).budget is not None])
def test_budget_is_held(name, attacked):
    info = get(name)
    eps = 4 / 255
    x = _faces(2, 1)
    last = _drain(_start(name, x, [attacked], **{info.budget: eps}))[-1]
    assert (last.x - x).abs().max() <= eps + 1e-6


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_result(name, attacked):
    x = _faces(2, 2)
    a = _drain(_start(name, x, [attacked], seed=5))[-1].x
    b = _drain(_start(name, x, [attacked], seed=5))[-1].x
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_close_releases_what_the_method_holds(name):
    """After ``close()`` (or breaking out of a loop) nothing the method holds keeps its inputs or
    models alive: with our own references dropped they are freed."""

    def started():
        model = synthetic_model("attacked", seed=1)
        x = _faces(2, 3)
        gen = _start(name, x, [model], steps=5)
        next(gen)
        return gen, weakref.ref(model), weakref.ref(x)

    gen, model_ref, x_ref = started()
    assert model_ref() is not None
    gen.close()
    del gen
    gc.collect()
    assert model_ref() is None and x_ref() is None


BAD_X = [
    ("numpy array", lambda: _faces(1, 0).numpy(), TypeError),
    ("values above 1", lambda: _faces(1, 0) * 3, ValueError),
    ("one image without the batch axis", lambda: _faces(1, 0)[0], ValueError),
    ("NaN", lambda: _faces(1, 0).index_fill(2, torch.tensor([0]), float("nan")), ValueError),
]


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("what,make,error", BAD_X, ids=[b[0] for b in BAD_X])
def test_bad_images_are_refused_before_any_work(name, what, make, error, attacked):
    with pytest.raises(error):
        next(_start(name, make(), [attacked]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", METHODS)
def test_runs_on_cuda(name):
    model = synthetic_model("attacked", seed=1).cuda()
    x = _faces(2, 0).cuda()
    info = get(name)
    kw = {}
    for n in info.needs:
        v = INPUT_MAKERS[n]()
        kw[n] = v.cuda() if isinstance(v, (torch.Tensor, torch.nn.Module)) else v
    if info.iterations is not None:
        kw[info.iterations] = STEPS
    last = _drain(info(x, [model], **kw))[-1]
    assert last.x.device.type == "cuda"


#: host synchronisations a method's steps may make by design, and why (the Step protocol promises none)
SYNCS_BY_DESIGN: dict[str, tuple[int, str]] = {
    "pmask": (1, "(early convergence: the loop stops when every photo has converged)"),
    "targeted_anonymization": (1, "(while no image is on the boundary the authorized model's backward pass is "
                                  "skipped, which costs far more than one read)"),
    "targeted_anonymization_baseline": (1, "(the same loop as targeted_anonymization)"),
}
#: reads that are not device synchronisations: random draws from facelab's CPU generators
CPU_DRAWS = ("facelab/ops/diversity.py",)

SYNCING = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.mark.parametrize("name", METHODS)
def test_steps_do_not_wait_on_the_device(name, attacked, watched, monkeypatch):
    """Issue #16: validation reads the values once, at the door; after the first Step no update
    reads a tensor back to Python (on a GPU every such read waits for the device).  Counted on the
    CPU by instrumenting the reads; on CUDA ``torch.cuda.set_sync_debug_mode`` would see the same."""
    gen = _start(name, _faces(2, 4), [attacked], monitor=[watched], steps=4)
    next(gen)  # the door and Step 0
    counts: dict[str, int] = {}

    def counting(attr):
        original = getattr(torch.Tensor, attr)

        def read(self, *a, **k):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if not caller.endswith(CPU_DRAWS):
                counts[attr] = counts.get(attr, 0) + 1
            return original(self, *a, **k)

        return read

    for attr in SYNCING:
        monkeypatch.setattr(torch.Tensor, attr, counting(attr))
    later = sum(1 for _ in gen)
    monkeypatch.undo()
    allowed, why = SYNCS_BY_DESIGN.get(name, (0, ""))
    assert sum(counts.values()) <= allowed * max(later, 1), (
        f"{name} read tensors back {counts} in {later} steps; allowed {allowed} per step {why}")
