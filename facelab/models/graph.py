"""The common shape of every loaded network, whatever format it came from."""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn


class Graph(nn.Module):
    """A pretrained network taking its *native* input (the tensor its original
    runtime is fed, after preprocessing) and returning named outputs.

    Subclasses set ``layout`` ("NHWC" for graphs converted from TensorFlow,
    "NCHW" otherwise), ``default_output`` (the node name of the embedding or
    head) and implement :meth:`run`.  Intermediate tensors are returned in the
    graph's own layout; :class:`facelab.models.FaceModel` converts them.
    """

    layout: Literal["NHWC", "NCHW"] = "NHWC"
    default_output: str = ""

    def run(self, x: torch.Tensor, outputs: Sequence[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def layer_names(self) -> list[str]:
        """Names accepted by ``outputs``, in evaluation order."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, outputs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        names = [self.default_output] if outputs is None else list(outputs)
        unknown = [n for n in names if n not in set(self.layer_names())]
        if unknown:
            raise KeyError(f"{type(self).__name__} has no layer(s) {unknown}; see layer_names()")
        return self.run(x, names)


class Lambda(nn.Module):
    """A weightless graph op: ``fn(*inputs)``, labelled for printing."""

    def __init__(self, fn: Callable, label: str):
        super().__init__()
        self.fn, self.label = fn, label

    def extra_repr(self) -> str:
        return self.label

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


class Constant(nn.Module):
    """A graph constant held as a buffer (moves with ``.to(device)``)."""

    def __init__(self, value: np.ndarray):
        super().__init__()
        self.register_buffer("value", torch.from_numpy(np.array(value)))

    def forward(self) -> torch.Tensor:
        return self.value
