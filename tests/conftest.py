"""Shared fixtures.  Tests marked ``weights``/``faces`` use the real fetched
weights and photos (``facelab fetch``, run by the README's test command);
they fail — not skip — when the cache is missing, so CI cannot go green
without them."""
from __future__ import annotations

import functools

import pytest
import torch

torch.set_num_threads(max(1, torch.get_num_threads()))


@functools.lru_cache(maxsize=None)
def _model(name: str):
    from facelab.models import load

    return load(name)


@pytest.fixture(scope="session")
def load_model():
    """``load_model(name)`` -> the real pretrained model, loaded once per session."""
    return _model


@functools.lru_cache(maxsize=None)
def _astronaut(size: int) -> torch.Tensor:
    from skimage import data

    from facelab.faces import load_image

    return load_image(data.astronaut(), size=size).crops[:1]


@pytest.fixture(scope="session")
def astronaut_face():
    """Eileen Collins (public-domain NASA photo shipped with scikit-image),
    detected and aligned: float [0,1] (1,3,112,112)."""
    return _astronaut(112)


@pytest.fixture(scope="session")
def offline():
    """The offline identity set at 112 px (real fetched photos)."""
    from facelab.faces import offline_set

    return offline_set(112)
