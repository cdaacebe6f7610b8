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


def affine_rotation_jitter(x: torch.Tensor, generator: torch.Generator | None = None,
                           std_range: tuple[float, float] = (0.01, 0.1), repeats: int = 1) -> torch.Tensor:
    """TIP-IM's released input diversity (``input_diversify.py`` of the
    authors' code, re-implemented): per image, a random affine map
    I + N(0, s_p²) on grid_sample's normalised coordinates, then a rotation
    by θ ~ N(0, s_r²) radians, with s_p, s_r ~ U(``std_range``) drawn once
    per call; pixels sampled from outside the image are zero.  Applied every
    iteration (probability 1).  Differentiable w.r.t. ``x``; seeded by
    ``generator`` (CPU) so a run is reproducible.  ``repeats`` > 1: ``x`` holds
    each image ``repeats`` times in a row (image-major), and every copy gets
    its image's transform — the released code scores all candidate targets
    on one transformed image.  The reference also zeroes border pixels that
    blend with the outside; facelab keeps the bilinear blend there.
    """
    if x.shape[0] % repeats:
        raise ValueError(f"batch of {x.shape[0]} is not a multiple of repeats={repeats}")
    n = x.shape[0] // repeats
    lo, hi = std_range
    std_proj, std_rot = (lo + (hi - lo) * torch.rand(2, generator=generator, dtype=torch.float64)).tolist()
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    affine = eye + std_proj * torch.randn(n, 2, 3, generator=generator, dtype=torch.float64)
    theta = std_rot * torch.randn(n, generator=generator, dtype=torch.float64)
    c, s = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(theta)
    rotation = torch.stack([torch.stack([c, s, zero], -1), torch.stack([-s, c, zero], -1)], -2)
    affine, rotation = affine.repeat_interleave(repeats, 0), rotation.repeat_interleave(repeats, 0)
    out = x
    for m in (affine, rotation):
        grid = F.affine_grid(m.to(x), list(x.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out
