"""A face model that looks at a face *region of the photo* through the alignment warp.

Protecting a photo by perturbing its aligned crop and pasting the crop back
resamples the face twice (photo → crop → photo): the saved face is blurred and
differs from the original by far more than the budget.  Instead, facelab puts
the perturbation in the photo's own pixels: a method optimises the rectangle
of the photo around one face (the *region*, full resolution), and every model
sees that region through the same similarity warp that :func:`load_image`
uses to align the face (an antialiasing downscale when the face is large in
the photo, then :func:`kornia.geometry.transform.warp_affine`).  Gradients flow
through the warp to the region's pixels, so the method's ε-ball is an ε-ball in
the photo, and nothing outside the face's footprint can change.

:class:`RegionView` is that model: a drop-in ``nn.Module`` for any method (the
methods accept any model taking [0,1] NCHW images).  Images with the region's
height and width are warped; any other size (aligned crops such as TIP-IM's
targets or Targeted Anonymization's user photos) passes to the model unchanged.
:func:`face_region` picks the region so its size never equals a crop size.

:class:`BatchedRegionView` is the same model seen through the warps of N
regions at once (of one photo or of several): the N regions sit at the
top-left of one zero-padded *canvas* batch (N, C, H, W) (:func:`canvas_shape`),
each sample is cut back to its own region before its own warp (so the
antialiasing prefilter reads exactly the pixels the one-face view reads), and
the N aligned crops go through the model in one forward.  Each sample's warp
is a :class:`RegionView` (its alpha, its jitter generator), so the two views
share one code path; with N = 1 and a canvas that is the region itself, the
batched view is the one-face view, operation for operation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_affine
from torch import nn

from .align import SimilarityTransform, _roi, similarity_transform

PREFILTER_BELOW = 0.75  # the scale below which warp_crop (and so re-detection) antialiases first


@dataclass(frozen=True)
class FaceRegion:
    """The photo rectangle ``[y0:y1, x0:x1]`` around one face and the face's five landmarks.

    ``landmarks`` (5, 2) are in the photo's pixel coordinates.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    landmarks: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def transform(self, size: int) -> SimilarityTransform:
        """Photo → ``size`` crop transform of this face, expressed in region coordinates."""
        t = similarity_transform(self.landmarks, size)
        m = t.matrix.copy()
        m[:, 2] += m[:, :2] @ np.array([self.x0, self.y0], dtype=np.float64)
        return SimilarityTransform(m, int(size), self.shape)


def face_region(landmarks, image_shape: tuple[int, int], sizes=(112, 150, 160), margin: int = 4) -> FaceRegion:
    """The smallest photo rectangle every crop of this face (any of ``sizes``) reads from.

    It covers the crop's corners mapped into the photo plus ``margin`` pixels for
    the bilinear and antialiasing filters' reach, clipped to the photo.  Its
    height/width pair is made to differ from every ``(s, s)`` crop size, so
    :class:`RegionView` can tell a region from an aligned crop by shape.
    """
    h, w = image_shape
    lm = np.asarray(landmarks, dtype=np.float64)
    corners = np.concatenate([similarity_transform(lm, s).crop_corners_in_image() for s in sizes])
    reach = margin + max(1, math.ceil(1.0 / min(similarity_transform(lm, s).scale for s in sizes)))
    x0 = max(0, math.floor(corners[:, 0].min()) - reach)
    y0 = max(0, math.floor(corners[:, 1].min()) - reach)
    x1 = min(w, math.ceil(corners[:, 0].max()) + reach + 1)
    y1 = min(h, math.ceil(corners[:, 1].max()) + reach + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"the face at landmarks {lm.tolist()} lies outside the {w}x{h} photo")
    if y1 - y0 == x1 - x0 and (y1 - y0) in set(int(s) for s in sizes):
        if x1 < w:
            x1 += 1
        elif x0 > 0:
            x0 -= 1
        else:
            raise ValueError(f"a {w}x{h} photo is too small to protect a face in place")
    return FaceRegion(int(x0), int(y0), int(x1), int(y1), lm)


def warp_region(region: torch.Tensor, transform: SimilarityTransform) -> torch.Tensor:
    """Aligned crops (N, 3, S, S) from region images (N, C, h, w), differentiably.

    The same sampling as :func:`facelab.faces.warp_crop` (which is what
    re-detection will see): when the face is much larger in the photo than in
    the crop, the region is first downscaled with torch's antialiasing filter,
    then the similarity is applied by kornia's ``warp_affine`` (bilinear, pixel
    centres at integers, zeros outside the photo).
    """
    m = torch.as_tensor(transform.matrix, dtype=torch.float64)
    h, w = region.shape[-2:]
    # the very rectangle warp_crop reads, so the prefilter sees the same pixel grid
    roi = _roi(transform.crop_corners_in_image(), h, w)
    if roi is None:
        raise ValueError("the crop lies outside the region")
    x0, y0, x1, y1 = roi
    region = region[..., y0:y1, x0:x1]
    shift = torch.tensor([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    m = (torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)]) @ shift)[:2]
    if transform.scale < PREFILTER_BELOW:
        hr, wr = y1 - y0, x1 - x0
        nh, nw = max(2, round(hr * transform.scale)), max(2, round(wr * transform.scale))
        region = F.interpolate(region, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        # old pixel centre p maps to (p + 0.5)·n/h − 0.5 in the downscaled grid
        sx, sy = nw / wr, nh / hr
        resize = torch.tensor([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
        full = torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
        m = (full @ torch.linalg.inv(resize))[:2]
    s = transform.size
    mat = m.to(device=region.device, dtype=region.dtype)[None].expand(region.shape[0], 2, 3)
    return warp_affine(region, mat, (s, s), mode="bilinear", padding_mode="zeros", align_corners=True)


class _ModelView(nn.Module):
    """What both views share: the wrapped model's attributes, and a forward through :meth:`view`."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):
                raise
            return getattr(super().__getattr__("model"), name)

    def view(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - each view defines it
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.view(x))

    def layers(self, x: torch.Tensor, names):
        return self.model.layers(self.view(x), names)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model.similarity(a, b)

    def threshold(self, far: float = 0.01) -> float:
        return self.model.threshold(far)


class RegionView(_ModelView):
    """``model`` seen through the alignment warp of one face region (see the module docstring).

    ``alpha`` (1, h, w), optional: the region's opacity; the model then sees the
    region composited on white, as :func:`facelab.faces.read_image` shows an
    RGBA photo.  ``name``, ``similarity``, ``threshold``, ``metric``,
    ``input_size`` and ``embedding_dim`` are the wrapped model's; ``layers``
    warps too, so methods reading intermediate layers work unchanged.

    ``jitter`` > 0 moves the alignment by a fresh random similarity (seeded by
    ``seed``) in every forward pass that records gradients: expectation over
    transformation (Athalye et al., 2018) over alignment, because re-detecting
    a protected face gives slightly different landmarks than the clean one.
    """

    def __init__(self, model: nn.Module, region: FaceRegion, alpha: torch.Tensor | None = None,
                 jitter: float = 0.0, seed: int = 0):
        super().__init__()
        self.model = model
        self.region = region
        self.size = int(getattr(model, "input_size", 112))
        self.transform = region.transform(self.size)
        self.jitter = float(jitter)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.register_buffer("alpha", alpha if alpha is not None else None, persistent=False)

    def _jittered(self) -> SimilarityTransform:
        """The alignment moved by a random similarity about the crop centre: shift up to
        ``jitter``·S pixels, scale within 1 ± ``jitter``, rotation within ± ``jitter`` rad."""
        u = (torch.rand(4, generator=self.generator, dtype=torch.float64) * 2 - 1).numpy() * self.jitter
        c = (self.size - 1) / 2.0
        a = (1.0 + u[0]) * np.array([[math.cos(u[1]), -math.sin(u[1])], [math.sin(u[1]), math.cos(u[1])]])
        t = np.array([c, c]) - a @ np.array([c, c]) + u[2:] * self.size
        m = self.transform.matrix
        return SimilarityTransform(np.hstack([a @ m[:, :2], (a @ m[:, 2] + t)[:, None]]), self.size, self.region.shape)

    def is_region(self, x: torch.Tensor) -> bool:
        return tuple(x.shape[-2:]) == self.region.shape

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The aligned crop the wrapped model sees (regions are warped, crops pass)."""
        if not self.is_region(x):
            return x
        if self.alpha is not None:
            x = x * self.alpha + (1.0 - self.alpha)
        # jitter only where gradients are taken: scores and references stay on the exact alignment
        t = self._jittered() if self.jitter > 0 and torch.is_grad_enabled() else self.transform
        return warp_region(x, t).clamp(0, 1)


def canvas_shape(regions, sizes=(112, 150, 160)) -> tuple[int, int]:
    """(H, W) of the canvas holding ``regions`` at its top-left: the largest height and width,
    one column wider when that would be an ``(s, s)`` crop size of ``sizes`` (as
    :func:`face_region` does for one region), so a canvas is never mistaken for an aligned crop."""
    if not regions:
        raise ValueError("canvas_shape: no regions")
    h = max(r.shape[0] for r in regions)
    w = max(r.shape[1] for r in regions)
    if h == w and h in {int(s) for s in sizes}:
        w += 1
    return h, w


class BatchedRegionView(_ModelView):
    """``model`` seen through the alignment warps of N face regions at once (see the module docstring).

    Input: a canvas (N, C, H, W), sample i holding ``regions[i]`` at the top-left (anything may fill
    the rest: it is cut away, so no gradient reaches it).  ``alphas``: one (1, h_i, w_i) opacity or
    None per region; ``seeds``: one jitter seed per region (an int: the same for all), so face i draws
    the same jitter sequence as ``RegionView(model, regions[i], jitter=jitter, seed=seeds[i])``.
    ``shape``: the canvas (H, W), by default :func:`canvas_shape` of the regions and ``sizes``.

    Images of another height and width (aligned crops) pass to the model unchanged.  A canvas batch
    must hold exactly N samples; with N = 1 any batch size passes through the one region's view.
    ``name``, ``similarity``, ``threshold``, ``input_size``, ``layers`` … are as for
    :class:`RegionView`.
    """

    def __init__(self, model: nn.Module, regions, alphas=None, jitter: float = 0.0, seeds=0,
                 shape: tuple[int, int] | None = None, sizes=(112, 150, 160)):
        super().__init__()
        regions = list(regions)
        n = len(regions)
        alphas = [None] * n if alphas is None else list(alphas)
        seeds = [int(seeds)] * n if isinstance(seeds, int) else [int(s) for s in seeds]
        if not n or len(alphas) != n or len(seeds) != n:
            raise ValueError(f"BatchedRegionView: {n} regions, {len(alphas)} alphas, {len(seeds)} seeds "
                             "(one of each per face, at least one face)")
        self.model = model
        self.regions = regions
        self.shape = tuple(shape) if shape is not None else canvas_shape(regions, sizes)
        if any(r.shape[0] > self.shape[0] or r.shape[1] > self.shape[1] for r in regions):
            raise ValueError(f"a region does not fit the {self.shape} canvas")
        # one RegionView per face: its warp, alpha and jitter generator (a plain list: the model is registered once)
        self.views = [RegionView(model, r, a, jitter=jitter, seed=s) for r, a, s in zip(regions, alphas, seeds)]
        self.size = self.views[0].size

    def __len__(self) -> int:
        return len(self.views)

    def is_region(self, x: torch.Tensor) -> bool:
        return tuple(x.shape[-2:]) == self.shape

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The N aligned crops the wrapped model sees (canvases are cut, warped and stacked; crops pass)."""
        if not self.is_region(x):
            return x
        if len(self.views) == 1 and self.views[0].is_region(x):
            return self.views[0].view(x)  # one face: exactly the one-face view
        if x.shape[0] != len(self.views):
            raise ValueError(f"BatchedRegionView over {len(self.views)} faces got a canvas batch of {x.shape[0]}")
        return torch.cat([v.view(x[i:i + 1, :, :v.region.shape[0], :v.region.shape[1]])
                          for i, v in enumerate(self.views)])


def footprint(views, region: FaceRegion, device=None) -> torch.Tensor:
    """(1, 1, h, w) bool: the region pixels any of ``views`` reads.

    Every sampling weight of the warp is non-negative, so the gradient of the
    crops' sum is positive exactly where a pixel reaches some crop.
    """
    x = torch.full((1, 3, *region.shape), 0.5, device=device, requires_grad=True)
    total = sum(warp_region(x, v.transform).sum() for v in views)
    (g,) = torch.autograd.grad(total, x)
    return (g.abs().sum(1, keepdim=True) > 0)
