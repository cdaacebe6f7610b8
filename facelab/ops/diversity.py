"""Input diversity T(x; p) (Xie et al., 2019), used by DI-FGSM and by
Targeted Anonymization's Algorithm 1."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def input_diversity(
    x: torch.Tensor, p: float = 0.5, resize_rate: float = 0.9, generator: torch.Generator | None = None
) -> torch.Tensor:
    """With probability ``p`` shrink the batch to a random size in
    [⌈resize_rate·S⌉, S) and zero-pad it back to S×S at a random offset;
    otherwise return ``x`` unchanged.  Differentiable w.r.t. ``x``.

    Xie et al. enlarge then pad; facelab shrinks then pads so the output keeps
    the crop size every model in an ensemble was handed (each resizes to its
    own native size afterwards).  One transform per call, shared by the batch,
    as in the original.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0,1], got {p}")
    if not 0.0 < resize_rate <= 1.0:
        raise ValueError(f"resize_rate must be in (0,1], got {resize_rate}")
    dev = generator.device if generator is not None else x.device

    def rand_int(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=generator, device=dev))

    if float(torch.rand(1, generator=generator, device=dev)) >= p:
        return x
    h, w = x.shape[-2:]
    lo = max(1, int(round(resize_rate * h)))
    if lo >= h:
        return x
    rnd = rand_int(lo, h)
    small = F.interpolate(x, size=(rnd, round(rnd * w / h)), mode="bilinear", align_corners=False)
    top, left = rand_int(0, h - rnd + 1), rand_int(0, w - small.shape[-1] + 1)
    return F.pad(small, (left, w - small.shape[-1] - left, top, h - rnd - top))
