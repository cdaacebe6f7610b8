"""A tiny face model with seeded random weights, for tests and dry runs only.

:func:`synthetic_model` builds a :class:`~facelab.models.FaceModel` of six
small convolution layers and a linear embedding, with nothing to fetch: the
method registry's conformance suite (``tests/methods/test_conformance.py``)
runs every method on it, so the contract every method owes (Step fields,
budget, determinism, bad input refused) is checked in seconds and without
the cache.  Its embeddings carry no identity: never use it to measure
protection (every claim in facelab uses the pretrained pool, ``models.load``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .. import validate
from .shallow import ShallowModel
from .specs import ModelSpec
from .zoo import FaceModel

__all__ = ["synthetic_model", "SyntheticFaceModel"]

#: the stride of each convolution layer (three halvings: 32 px → 4 px)
STRIDES = (1, 2, 1, 2, 1, 2)


def _graph(width: int, embedding_dim: int) -> nn.Sequential:
    blocks: list[tuple[str, nn.Module]] = []
    c_in = 3
    for k, stride in enumerate(STRIDES, start=1):
        c_out = width * (2 if k > 2 else 1)
        blocks.append((f"conv{k}", nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.PReLU(c_out))))
        c_in = c_out
    blocks += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("embed", nn.Linear(c_in, embedding_dim))]
    return nn.Sequential(OrderedDict(blocks))


class _SyntheticShallow(ShallowModel):
    """E_c of a synthetic model: its first ``n_layers`` conv blocks (same interface as ShallowModel)."""

    def __init__(self, model: "SyntheticFaceModel", n_layers: int):
        nn.Module.__init__(self)
        ends = [f"conv{k}" for k in range(1, len(STRIDES) + 1)]
        n_layers = validate.integer(n_layers, "n_layers", maximum=len(ends),
                                    hint=f"how many of {model.name}'s {len(ends)} layers to keep")
        self.model = model
        self.n_layers = n_layers
        self.layer_names = ends[:n_layers]
        self.name = f"{model.name}[:{n_layers}]"
        self.depth = len(ends)


class SyntheticFaceModel(FaceModel):
    """A :class:`FaceModel` whose weights are seeded noise (see the module doc).

    ``threshold()`` returns 0.5 on the cosine scale: a placeholder so that methods
    which ask their model for a verification threshold can run; it is not
    calibrated and means nothing about identity.
    """

    def shallow(self, n_layers: int = 5):
        return _SyntheticShallow(self, n_layers)

    def threshold(self, far: float = 0.01) -> float:
        return 0.5


def synthetic_model(name: str = "synthetic", seed: int = 0, *, input_size: int = 32, embedding_dim: int = 16,
                    width: int = 8) -> SyntheticFaceModel:
    """A seeded tiny face model: float [0,1] RGB (N, 3, H, W) → (N, ``embedding_dim``) embeddings,
    cosine metric, in eval mode with frozen weights like ``models.load``.  Same ``seed`` → same weights."""
    graph = _graph(width, embedding_dim)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in graph.parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            else:
                p.copy_(torch.rand(p.shape, generator=gen) * 0.2)
    spec = ModelSpec(name=name, input_size=input_size, embedding_dim=embedding_dim, build=lambda: graph,
                     preprocess=lambda x01: x01 * 2.0 - 1.0, preprocess_doc="x * 2 - 1",
                     upstream="none: seeded random weights (facelab.models.synthetic)", licence="n/a")
    model = SyntheticFaceModel(spec, graph).eval()
    model.requires_grad_(False)
    return model
