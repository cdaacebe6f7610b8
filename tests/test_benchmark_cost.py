"""The cost table's bookkeeping: every registered method has a floor and, for when it runs above 1.3× that floor,
a stated reason; the timed run is warmed up at the same shapes as the floor's passes."""
from __future__ import annotations

import torch

from benchmarks import cost
from facelab import methods
from facelab.models.synthetic import synthetic_model


def test_every_method_has_a_floor_and_a_reason():
    model = synthetic_model("attacked", seed=1)
    for name in methods.available():
        floor, what = cost._floor(name, 2, 1, model, model, 112, 3, users=2)
        if name == "erasable_mask":
            assert floor is None
            continue
        assert floor > 0 and what
        assert cost.ABOVE_FLOOR.get(name), f"{name}: add why it may run above its floor to cost.ABOVE_FLOOR"


def test_a_run_is_warmed_up_at_its_own_shapes_with_few_updates():
    calls = []

    class Info:
        iterations = "steps"

        def __call__(self, x, models_, **kw):
            calls.append((tuple(x.shape), kw["steps"]))
            for i in range(kw["steps"] + 1):
                yield i

    x = torch.zeros(2, 3, 8, 8)
    seconds, mb, steps = cost._run(Info(), x, [], {"steps": 7})
    assert calls == [((2, 3, 8, 8), cost.WARMUP_STEPS), ((2, 3, 8, 8), 7)]
    assert steps == 7 and seconds >= 0 and mb >= 0


def test_dodging_baselines_and_targeted_anonymization_count_their_unavoidable_start():
    model = synthetic_model("attacked", seed=1)
    f = cost._bare_pass(model, 1, 112, False, device=None)
    fb = cost._bare_pass(model, 1, 112, True, device=None)
    floor, what = cost._floor("mifgsm", 10, 1, model, model, 112, 3)
    assert floor == f + 10 * fb and what.startswith("f + 10 × f+b")
    floor, what = cost._floor("targeted_anonymization", 20, 1, model, model, 112, 3, users=4)
    assert floor == (cost._bare_pass(model, 4, 112, False, device=None) * 2 + f) + 20 * (fb + f) and "users f (4)" in what
