"""Embeddings and similarities over one model or an ensemble."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def as_models(models: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    """Accept one model or a sequence of them; every model needs ``similarity``."""
    out = [models] if isinstance(models, nn.Module) else list(models)
    if not out:
        raise ValueError("at least one model is needed")
    for m in out:
        if not hasattr(m, "similarity"):
            raise TypeError(f"{type(m).__name__} is not a facelab FaceModel (load one with facelab.models.load)")
    return out


def embed_all(models: Sequence[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    return [m(x) for m in models]


def similarity_to(models: Sequence[nn.Module], x: torch.Tensor, refs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per model, per image similarity of f(x) to the reference embeddings."""
    return {getattr(m, "name", str(k)): m.similarity(m(x), r) for k, (m, r) in enumerate(zip(models, refs))}
