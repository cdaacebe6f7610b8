"""The ErasableMask benchmark's training seeds: parsed and checked, each evaluated on faces its checkpoints never saw."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import erasable_mask as B
from facelab.experiments import erasable_mask as E


def test_seeds_default_to_the_experiments_and_must_start_with_0():
    assert B._seeds(SimpleNamespace()) == list(E.SEEDS) == [0, 1, 2]
    assert B._seeds(SimpleNamespace(seeds=[0, 4])) == [0, 4]
    for bad in ([1, 2], [0, 0]):
        with pytest.raises(SystemExit, match="distinct and start with 0"):
            B._seeds(SimpleNamespace(seeds=bad))


@pytest.mark.faces
def test_each_seed_is_evaluated_on_its_own_held_out_split():
    from facelab.methods.erasable_mask.data import training_faces

    for seed in (0, 1):
        held = E.held_out("offline", seed)
        trained = training_faces("offline", 64, seed=seed)
        assert np.array_equal(held.test, trained.test) and not set(held.test) & set(trained.train)
    assert not np.array_equal(E.held_out("offline", 0).test, E.held_out("offline", 1).test)
