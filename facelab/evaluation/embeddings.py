"""Embeddings of many faces: one chunked pass, and a cache so each model embeds a set once."""
from __future__ import annotations

import torch
from torch import nn

from ..models.zoo import model_device

__all__ = ["embed", "EmbeddingCache"]


@torch.no_grad()
def embed(model: nn.Module, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """``model``'s embeddings of ``images`` (N, 3, H, W), ``batch`` faces per forward (bounded
    memory: the graph interpreters keep a whole batch's activations), on the model's device.
    The batch size is part of a result's recipe: a convolution may sum in another order at
    another batch size, so a benchmark keeps its own."""
    dev = model_device(model)
    if len(images) == 0:
        raise ValueError("embed: no images")
    return torch.cat([model(images[k : k + batch].to(dev)) for k in range(0, len(images), batch)])


class EmbeddingCache:
    """A face set's embeddings per model, computed on first use: ``cache(model)`` → (N, D).

    Keyed by the model's name, so two copies of one pretrained model share an entry."""

    def __init__(self, images: torch.Tensor, batch: int = 32):
        self.images = images
        self.batch = batch
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, model: nn.Module) -> torch.Tensor:
        if model.name not in self._cache:
            self._cache[model.name] = embed(model, self.images, self.batch)
        return self._cache[model.name]

    def __contains__(self, name: str) -> bool:
        return name in self._cache
