"""Self-augmentation: a batch made from a single photo (TIP-IM, Appendix C).

MMD compares two *samples*; with one photo both samples hold one image and
MMD reduces to a function of ‖x_adv − x_real‖.  TIP-IM's Appendix C makes up a
batch by augmenting the image "with rotation, projective and brightness
transformations".  :func:`self_augmentation` draws B such transforms once
(seeded); the same B transforms are applied to the adversarial and to the
real image, so X^adv = {T_b(x_adv)} and X^real = {T_b(x_real)} are paired,
and the augmented real batch can be computed once per run.  The warps are
differentiable (``grid_sample`` on a grid computed once), so ∇MMD reaches
x_adv through them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SelfAugmentation:
    """B fixed transforms: a homography (rotation + projective corner jitter,
    in the pixel coordinates of an ``size``×``size`` crop) and a brightness
    factor each.  Calling it on (N, 3, S, S) returns (N·B, 3, S, S), image-major
    (the B copies of image 0 first).  The first transform is the identity
    when the batch was drawn with ``include_identity``."""

    homographies: torch.Tensor  # (B, 3, 3)
    brightness: torch.Tensor  # (B,)
    size: tuple[int, int]

    def __len__(self) -> int:
        return self.homographies.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"these transforms were drawn for {self.size} crops, got {tuple(x.shape[-2:])}")
        n, b = x.shape[0], len(self)
        grid = self.grid().to(x)
        rep = x.repeat_interleave(b, dim=0)
        warped = F.grid_sample(rep, grid.repeat(n, 1, 1, 1), mode="bilinear", padding_mode="reflection",
                               align_corners=True)
        return warped * self.brightness.to(x).repeat(n).view(-1, 1, 1, 1)

    def grid(self) -> torch.Tensor:
        """The sampling grid (B, H, W, 2) of the warps (output pixel → source, in
        grid_sample's [−1, 1] coordinates), computed once and reused."""
        cached = self.__dict__.get("_grid")
        if cached is not None:
            return cached
        h, w = self.size
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
        pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(-1, 3)  # output pixels, homogeneous
        src = pts @ torch.linalg.inv(self.homographies.double()).transpose(1, 2)  # (B, HW, 3)
        src = src[..., :2] / src[..., 2:]
        scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=torch.float64)
        grid = (src * scale - 1).view(-1, h, w, 2).float()
        object.__setattr__(self, "_grid", grid)  # a cache, not state: the dataclass stays frozen
        return grid


def self_augmentation(
    n: int,
    size: int | tuple[int, int],
    generator: torch.Generator | None = None,
    *,
    max_rotation: float = 10.0,
    distortion: float = 0.06,
    brightness: float = 0.15,
    include_identity: bool = True,
) -> SelfAugmentation:
    """Draw ``n`` transforms for ``size`` crops: rotation by U(−max_rotation,
    max_rotation) degrees about the centre, each corner moved by up to
    ``distortion``·size (projective), brightness ×U(1−brightness, 1+brightness).
    Seeded by ``generator`` (CPU)."""
    from kornia.geometry.transform import get_perspective_transform

    if n < 1:
        raise ValueError("n must be >= 1")
    h, w = (size, size) if isinstance(size, int) else size
    rand = lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    src = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=torch.float64)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)
    theta = (rand(n) * 2 - 1) * math.radians(max_rotation)
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (n, 2, 2)
    dst = (src - centre) @ rot.transpose(1, 2) + centre
    dst = dst + (rand(n, 4, 2) * 2 - 1) * distortion * torch.tensor([w, h], dtype=torch.float64)
    bright = 1 + (rand(n) * 2 - 1) * brightness
    if include_identity:
        dst[0], bright[0] = src, 1.0
    hom = get_perspective_transform(src.expand(n, 4, 2).float(), dst.float())
    return SelfAugmentation(hom, bright.float(), (h, w))
