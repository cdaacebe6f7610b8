"""A trained ErasableMask as an ordinary Step method (what the registry runs)."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ... import validate as V
from ...steps import Step
from .model import ErasableMask


def _protector(protector: ErasableMask | str, device: torch.device) -> ErasableMask:
    if isinstance(protector, ErasableMask):
        return protector
    if isinstance(protector, str):
        from .checkpoint import load

        return load(protector, device=device)
    raise TypeError(f"protector must be a trained ErasableMask or the name of a checkpoint in the facelab cache "
                    f"(e.g. 'erasable_mask'); got {type(protector).__name__}")


def own_attributes(x: torch.Tensor) -> torch.Tensor:
    """The faces' own attributes a (N, 3) [male, young, smiling] as 0/1, read by facelab's attribute
    models at 112 px (the pseudo-labels training used); needs their fetched weights."""
    from .data import pseudo_labels

    x112 = F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False, antialias=True)
    return torch.as_tensor(pseudo_labels(x112.cpu()), dtype=torch.float32)


def erasable_mask(
    x: torch.Tensor,
    *,
    protector: ErasableMask | str = "erasable_mask",
    attributes: Any = None,
    monitor: Sequence[nn.Module] = (),
    seed: int = 0,
) -> Iterator[Step]:
    """Protect aligned faces ``x`` (N, 3, S, S), S the protector's size, in one shot:
    x_p = G(x, b) (Eq. 7), and show what the restorer erases it back to, R(x_p) (Eq. 13).

    ``protector``: a trained :class:`ErasableMask` or a checkpoint name (:func:`load`).
    ``attributes``: the target attributes b, as :meth:`ErasableMask.attribute_rows` takes them; None:
    each face's own attributes (b = a, read by the attribute models), so the perturbation alone
    protects, the first of the two settings the benchmark measures.  ``monitor``: face models only
    watched: ErasableMask attacks no model at inference (its training attacked the surrogates).
    ``seed``: accepted for the common method signature; the forward pass draws nothing.

    Yields 2 Steps: i = 0 the clean faces, i = 1 the protected ones.  ``losses`` (at i = 1):
    ``"psnr"`` (N,) PSNR(x_p, x) in dB; ``state``: ``"similarity"`` {model: (N,)} each monitored model's
    similarity to the clean face, ``"attributes"`` b (N, n_attrs), ``"restored"`` R(x_p) (at
    i = 1) and ``"psnr_restored"`` (N,) PSNR(R(x_p), x).
    """
    from .losses import psnr_db

    x = V.images(x, "x")
    seed = V.seed(seed)
    watched = [monitor] if isinstance(monitor, nn.Module) else list(monitor or [])
    em = _protector(protector, x.device)
    x = em.check_faces(x)
    b = own_attributes(x) if attributes is None else em.attribute_rows(attributes, x.shape[0])
    b = b.to(x.device)

    with torch.no_grad():
        refs = {m.name: m(x) for m in watched}

        def sims(x_t: torch.Tensor) -> dict[str, torch.Tensor]:
            return {m.name: m.similarity(m(x_t), refs[m.name]) for m in watched}

        yield Step(0, x, {}, {"similarity": sims(x), "attributes": b})
        x_p = em.G.protect(x, b).clamp(0, 1)
        restored = em.R(x_p).clamp(0, 1)
        yield Step(1, x_p, {"psnr": psnr_db(x_p, x)},
                   {"similarity": sims(x_p), "attributes": b, "restored": restored,
                    "psnr_restored": psnr_db(restored, x)})
