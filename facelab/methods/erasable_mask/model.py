"""A trained ErasableMask as an ordinary one-shot method: ``protect``, ``edit``, ``erase``."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ... import validate as V
from .nets import Discriminator, Generator, NetConfig, Restorer


class ErasableMask(nn.Module):
    """Generator G (E, P, C, Dec), restorer R and discriminator D of one
    configuration.  Train it with :func:`facelab.methods.erasable_mask.train`
    (in place), store it with :meth:`save`, get it back with :func:`load`.

    ``protect(x, attributes)`` — the protected face x_p = G(x, b) (Eq. 7);
    ``edit(x, attributes)`` — the attribute-edited face x_b (no perturbation);
    ``erase(x_protected)`` — the restorer's estimate of the clean face (Eq. 13).
    ``provenance`` holds how it was trained (empty until trained or loaded).
    """

    def __init__(self, cfg: NetConfig | None = None):
        super().__init__()
        self.cfg = cfg or NetConfig()
        self.G = Generator(self.cfg)
        self.R = Restorer(self.cfg)
        self.D = Discriminator(self.cfg)
        self.provenance: dict[str, Any] = {}

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.cfg.attributes

    @property
    def size(self) -> int:
        return self.cfg.size

    def extra_repr(self) -> str:
        return f"size={self.cfg.size}, attributes={list(self.cfg.attributes)}, beta={self.cfg.beta}, gamma={self.cfg.gamma}"

    # -- input checks ---------------------------------------------------------

    def check_faces(self, x: Any, name: str = "x") -> torch.Tensor:
        x = V.images(x, name)
        s = self.cfg.size
        if tuple(x.shape[-2:]) != (s, s):
            raise ValueError(
                f"{name} must be aligned {s}x{s} faces (this model was trained at {s} px); got "
                f"{tuple(x.shape[-2:])[0]}x{tuple(x.shape[-2:])[1]}. Resize first, e.g. "
                f"torch.nn.functional.interpolate({name}, size=({s}, {s}), mode='bilinear', antialias=True)"
            )
        return x

    def attribute_rows(self, attributes: Any, n: int) -> torch.Tensor:
        """Target attributes as (n, n_attrs) float in [0,1]: a tensor/sequence
        of n_attrs values (shared by the batch) or (n, n_attrs), or a dict
        {name: value} naming every attribute of :attr:`attributes`."""
        names = self.cfg.attributes
        if isinstance(attributes, Mapping):
            missing = [a for a in names if a not in attributes]
            unknown = [a for a in attributes if a not in names]
            if missing or unknown:
                raise ValueError(f"attributes must name exactly {list(names)}; missing {missing}, unknown {unknown}")
            attributes = [float(attributes[a]) for a in names]
        if isinstance(attributes, (str, bytes)) or not isinstance(attributes, (torch.Tensor, Sequence)):
            raise TypeError(f"attributes must be a tensor, a list of {len(names)} values {list(names)} or a dict; "
                            f"got {type(attributes).__name__}")
        b = torch.as_tensor(attributes, dtype=torch.float32)
        if b.ndim == 1:
            b = b[None].expand(n, -1)
        if b.ndim != 2 or b.shape[1] != len(names):
            raise ValueError(f"attributes must have length {len(names)} ({', '.join(names)}), one value in [0,1] "
                             f"each, or shape (N, {len(names)}); got shape {tuple(b.shape)}")
        if b.shape[0] != n:
            raise ValueError(f"attributes has {b.shape[0]} rows for {n} faces; pass one row per face or a single row")
        if not torch.isfinite(b).all() or b.min() < 0 or b.max() > 1:
            raise ValueError("attribute values must be in [0,1] (1 = has the attribute, 0 = has not)")
        return b

    # -- the one-shot methods -------------------------------------------------------

    @torch.no_grad()
    def edit(self, x: torch.Tensor, attributes: Any) -> torch.Tensor:
        x = self.check_faces(x)
        return self.G.edit(x, self.attribute_rows(attributes, x.shape[0]).to(x.device))

    @torch.no_grad()
    def protect(self, x: torch.Tensor, attributes: Any) -> torch.Tensor:
        """Protected faces x_p = G(x, b) for clean aligned faces ``x``
        (N, 3, size, size) and target attributes ``attributes``."""
        x = self.check_faces(x)
        return self.G.protect(x, self.attribute_rows(attributes, x.shape[0]).to(x.device))

    @torch.no_grad()
    def erase(self, x_protected: torch.Tensor) -> torch.Tensor:
        """The restorer R(x_p): what a trusted authority recovers from a
        protected face (also after JPEG, noise or resizing)."""
        return self.R(self.check_faces(x_protected, "x_protected"))
