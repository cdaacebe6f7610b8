"""One interface for every face model: ``load(name)(x01) -> embedding``."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..validate import check_images, image_layout
from .graph import Graph
from .specs import SPECS, ModelSpec

__all__ = ["FaceModel", "PRECISIONS", "available", "check_images", "load", "model_device"]

#: what a model's forward may run in: float32 (the default: what every table and threshold was measured with),
#: or mixed precision, where torch.autocast runs the convolutions and matrix products in the half type and the
#: rest in float32 (the input pixels, the embedding and every gradient to the pixels stay float32)
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def model_device(model: nn.Module) -> torch.device:
    """Device of a model's first parameter or buffer (CPU for a weightless one)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


class FaceModel(nn.Module):
    """A pretrained face model on facelab's common interface.

    ``forward(x01)`` takes float32 RGB in [0,1], shape (N,3,H,W) (float16 and
    float64 are converted to float32; the shape and dtype are checked on every
    call, the values are not — :func:`facelab.validate.images` does that, and
    every facelab method and metric calls it once per call); crops whose
    size is not ``input_size`` are resized bilinearly (differentiable), so an
    ensemble of models with different native sizes can share one crop.  It
    returns the raw embedding (N, ``embedding_dim``) exactly as the original
    graph computes it; gradients flow back to the [0,1] pixels.

    ``precision`` (see :data:`PRECISIONS`) is an explicit opt-in: ``"float16"`` on a GPU
    (or ``"bfloat16"``, on GPUs and CPUs that have it) roughly halves the activations' memory
    and, on tensor-core GPUs, most of the time of a pass; the embeddings then move by about
    1e-3 to 1e-2 in cosine, so a similarity close to a calibrated threshold (calibrated in
    float32) can land on the other side.  Measured on CPU by ``tests/models/test_precision.py``.
    """

    def __init__(self, spec: ModelSpec, graph: nn.Module, precision: str = "float32"):
        super().__init__()
        self.precision = precision
        self.spec = spec
        self.name = spec.name
        self.input_size = spec.input_size
        self.embedding_dim = spec.embedding_dim
        self.metric = spec.metric
        self.graph = graph

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision={value!r}: choose one of {', '.join(PRECISIONS)}")
        self._precision = value

    def extra_repr(self) -> str:
        extra = "" if self.precision == "float32" else f", precision={self.precision!r}"
        return f"name={self.name!r}, input_size={self.input_size}, embedding_dim={self.embedding_dim}{extra}"

    def _run(self, x: torch.Tensor, **kw):
        """The graph on native input ``x``, under autocast when a mixed precision is chosen."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return self.graph(x, **kw)
        with torch.autocast(device_type=x.device.type, dtype=dtype):
            out = self.graph(x, **kw)
        if isinstance(out, dict):
            return {k: v.float() for k, v in out.items()}
        return out.float()

    def _native(self, x01: torch.Tensor) -> torch.Tensor:
        # shape and dtype only: reading the values would sync the device on every
        # call; methods and metrics check values once, at their door (facelab.validate)
        x01 = image_layout(x01)
        if x01.shape[-2:] != (self.input_size, self.input_size):
            x01 = F.interpolate(x01, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = self.spec.preprocess(x01)
        if getattr(self.graph, "layout", "NCHW") == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return x

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        if isinstance(self.graph, Graph):
            out = self._run(self._native(x01))[self.graph.default_output]
        else:
            out = self._run(self._native(x01))
        return out.reshape(out.shape[0], -1)

    def layer_names(self) -> list[str]:
        if isinstance(self.graph, Graph):
            return self.graph.layer_names()
        return [n for n, _ in self.graph.named_modules() if n]

    def layers(self, x01: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Intermediate outputs by name (see :meth:`layer_names`), 4-D ones in
        NCHW whatever the original layout — e.g. PMT's "shallow model" output."""
        x = self._native(x01)
        if isinstance(self.graph, Graph):
            out = self._run(x, outputs=list(names))
            if self.graph.layout == "NHWC":
                out = {k: (v.permute(0, 3, 1, 2) if v.ndim == 4 else v) for k, v in out.items()}
            return out
        modules = dict(self.graph.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise KeyError(f"{self.name} has no layer(s) {missing}; see layer_names()")
        got: dict[str, torch.Tensor] = {}
        hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o)) for n in names]
        try:
            self._run(x)
        finally:
            for h in hooks:
                h.remove()
        return {k: v.float() for k, v in got.items()}

    def shallow(self, n_layers: int = 5):
        """E_c, the first ``n_layers`` layers of this model (PMT's user-side
        shallow model; a layer = one convolution with its norm/activation, see
        :mod:`facelab.models.shallow`).  Beyond the model's depth: ``ValueError``."""
        from .shallow import ShallowModel

        return ShallowModel(self, n_layers)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-wise similarity of embeddings, higher = more alike: cosine, or
        negative L2 distance for models whose native metric is Euclidean."""
        if self.metric == "euclidean":
            return -torch.linalg.vector_norm(a - b, dim=-1)
        return F.cosine_similarity(a, b, dim=-1)

    def threshold(self, far: float = 0.01) -> float:
        """Calibrated verification threshold on :meth:`similarity` at ``far``."""
        from .calibration import threshold

        return threshold(self.name, far)


def available(include_optional: bool = False, include_online: bool = False) -> list[str]:
    """Names of the pool's models (optional/online ones on request)."""
    from .online import ONLINE

    names = [n for n, s in SPECS.items() if include_optional or not s.optional]
    if include_online:
        names += list(ONLINE)
    return names


_CACHE: dict[str, nn.Module] = {}


def load(name: str, device: torch.device | str | None = None, precision: str = "float32") -> FaceModel:
    """Load a pretrained model by name, in eval mode with frozen weights; ``precision``: see
    :class:`FaceModel` (float32 unless you opt in).

    Raises :class:`facelab.cache.MissingCacheError` if the weights were not
    fetched (run ``facelab fetch``), :class:`facelab.models.online.NeedsInternetError`
    for the facenet-pytorch models when offline.
    """
    from .online import ONLINE, load_online

    if name in ONLINE:
        spec, graph = load_online(name)
    elif name in SPECS:
        spec = SPECS[name]
        if name not in _CACHE:
            _CACHE[name] = spec.build()
        # each FaceModel owns its copy: .to(device) must not move another's weights
        graph = copy.deepcopy(_CACHE[name])
    else:
        raise KeyError(f"unknown model {name!r}; available: {available(True, True)}")
    model = FaceModel(spec, graph, precision)
    model.eval().requires_grad_(False)
    if device is not None:
        model = model.to(device)
    return model
