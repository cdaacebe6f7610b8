import gc
import weakref

import pytest
import torch

from facelab import History, Step, history, run


def counting(n: int, size: int = 4):
    for i in range(n):
        yield Step(i, torch.full((1, 3, size, size), i / n), {"loss": torch.tensor(float(n - i))},
                   {"similarity": {"m": torch.tensor([1.0 - i / n])}, "flag": i % 2 == 0, "label": "x"})


def test_step_is_frozen():
    s = Step(0, torch.zeros(1, 3, 2, 2), {"loss": torch.tensor(1.0)}, {"k": 1})
    with pytest.raises(Exception):
        s.i = 3
    with pytest.raises(TypeError):
        s.losses["new"] = torch.tensor(0.0)
    assert s.scalars() == {"loss": 1.0}


def test_run_returns_last_step_and_rejects_empty():
    assert run(counting(5)).i == 4
    with pytest.raises(ValueError, match="no step"):
        run(iter([]))


def test_history_keeps_every_kth_and_the_last_with_complete_curves():
    h = history(counting(10), keep_every=3)
    assert isinstance(h, History)
    assert [s.i for s in h.steps] == [0, 3, 6, 9]
    assert h.curves["loss"] == [float(10 - i) for i in range(10)]
    assert h.state_curves["similarity/m"] == pytest.approx([1.0 - i / 10 for i in range(10)])
    assert h.state_curves["flag"] == [1.0, 0.0] * 5
    assert "label" not in h.state_curves
    h2 = history(counting(10), keep_every=4)
    assert [s.i for s in h2.steps] == [0, 4, 8, 9]


def test_history_is_memory_bounded():
    h = history(counting(1000), keep_every=1, max_kept=50)
    assert len(h.steps) <= 51
    assert h.steps[0].i == 0 and h.steps[-1].i == 999
    gaps = {b.i - a.i for a, b in zip(h.steps[:-2], h.steps[1:-1])}
    assert gaps == {h.keep_every}
    assert len(h.curves["loss"]) == 1000


def test_history_moves_to_cpu_and_rejects_bad_keep_every():
    h = history(counting(3))
    assert all(s.x.device.type == "cpu" for s in h.steps)
    with pytest.raises(ValueError):
        history(counting(3), keep_every=0)


def test_closing_a_generator_early_releases_what_it_holds():
    class Big:
        pass

    def method(obj):
        held = [obj, torch.zeros(1000)]
        for i in range(100):
            yield Step(i, torch.zeros(1, 3, 2, 2), {}, {"n": len(held)})

    big = Big()
    ref = weakref.ref(big)
    gen = method(big)
    del big
    next(gen)
    next(gen)
    assert ref() is not None
    gen.close()
    gc.collect()
    assert ref() is None
    assert gen.gi_frame is None
