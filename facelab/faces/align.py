"""Five-point similarity alignment to the ArcFace template, and pasting crops back.

Coordinates are pixel coordinates with pixel centres at integers (the
convention of MTCNN's landmarks and of the ArcFace template).  A
:class:`SimilarityTransform` maps original-image coordinates to crop
coordinates; :func:`warp_crop` samples a crop with it and :func:`paste_back`
uses its inverse to put an (e.g. protected) crop back into the photo with a
smooth blending mask.  Both are plain torch ops, so gradients flow through them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import validate as V

# ArcFace / insightface 112x112 five-point template: left eye, right eye, nose
# tip, left and right mouth corners (left/right as seen in the image).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def template(size: int = 112) -> np.ndarray:
    """The five template points for a ``size`` x ``size`` crop (the 112 template scaled)."""
    if int(size) != size or size < 8:
        raise ValueError(f"crop size must be an integer of at least 8 pixels, got {size!r}")
    return ARCFACE_112 * (float(size) / 112.0)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    taking points ``src`` (N, 2) onto ``dst`` (N, 2).  Returns a 2x3 matrix.

    Umeyama (1991), "Least-squares estimation of transformation parameters
    between two point patterns", closed form via the SVD of the cross-covariance.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"umeyama needs two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum(1).mean()
    if var_s < 1e-12:
        raise ValueError("landmarks are degenerate (all points coincide); cannot align")
    cov = dc.T @ sc / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


@dataclass(frozen=True)
class SimilarityTransform:
    """Maps original-image pixel coordinates to the coordinates of a ``size`` crop.

    ``matrix`` is 2x3 (``[s·R | t]``); ``image_shape`` is the original's (H, W).
    """

    matrix: np.ndarray
    size: int
    image_shape: tuple[int, int]

    @property
    def scale(self) -> float:
        """Crop pixels per original pixel (< 1: the face is larger in the photo than in the crop)."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def angle_degrees(self) -> float:
        return float(math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0])))

    @property
    def inverse_matrix(self) -> np.ndarray:
        a = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return np.linalg.inv(a)[:2]

    def apply(self, points) -> np.ndarray:
        """Original-image points (..., 2) to crop points."""
        p = np.asarray(points, dtype=np.float64)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]

    def apply_inverse(self, points) -> np.ndarray:
        """Crop points (..., 2) to original-image points."""
        inv = self.inverse_matrix
        p = np.asarray(points, dtype=np.float64)
        return p @ inv[:, :2].T + inv[:, 2]

    def crop_corners_in_image(self) -> np.ndarray:
        s = self.size
        return self.apply_inverse([[-0.5, -0.5], [s - 0.5, -0.5], [s - 0.5, s - 0.5], [-0.5, s - 0.5]])


def similarity_transform(landmarks, size: int = 112, image_shape: tuple[int, int] = (0, 0)) -> SimilarityTransform:
    """The transform taking five landmarks (5, 2) onto the ArcFace template at ``size``."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2):
        raise ValueError(
            f"landmarks must be five (x, y) points of shape (5, 2) (left eye, right eye, nose, "
            f"left and right mouth corner), got shape {lm.shape}"
        )
    return SimilarityTransform(umeyama(lm, template(size)), int(size), tuple(int(v) for v in image_shape))


def _roi(corners: np.ndarray, h: int, w: int, margin: int = 2) -> tuple[int, int, int, int] | None:
    x0 = max(0, int(math.floor(corners[:, 0].min())) - margin)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - margin)
    x1 = min(w, int(math.ceil(corners[:, 0].max())) + margin + 1)
    y1 = min(h, int(math.ceil(corners[:, 1].max())) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _pixel_grid(size_h: int, size_w: int, device, dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(size_h, device=device, dtype=dtype), torch.arange(size_w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs, ys], dim=-1)  # (h, w, 2) as x, y


def _as_chw(t: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(t).__name__}")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"{what} must have shape (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    return t


def warp_crop(image: torch.Tensor, transform: SimilarityTransform) -> torch.Tensor:
    """Sample the ``transform.size`` crop from ``image`` (3, H, W) float; returns (3, S, S).

    Outside the photo the crop is black (zeros).  When the face is much larger
    in the photo than in the crop, the face's region is first downscaled with
    an antialiasing filter so the crop does not alias.
    """
    image = _as_chw(image, "image")
    _, h, w = image.shape
    s = transform.size
    roi = _roi(transform.crop_corners_in_image(), h, w)
    if roi is None:
        return image.new_zeros(3, s, s)
    x0, y0, x1, y1 = roi
    patch = image[:, y0:y1, x0:x1]
    wr, hr = x1 - x0, y1 - y0
    if transform.scale < 0.75:  # prefilter: bring the region close to the crop's resolution
        nh, nw = max(2, round(hr * transform.scale)), max(2, round(wr * transform.scale))
        patch = F.interpolate(patch[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
    dtype = image.dtype if image.is_floating_point() else torch.float32
    inv = torch.as_tensor(transform.inverse_matrix, dtype=torch.float64)
    q = _pixel_grid(s, s, "cpu", torch.float64)
    p = q @ inv[:, :2].T + inv[:, 2]  # image coordinates of each crop pixel centre
    gx = 2.0 * (p[..., 0] - x0 + 0.5) / wr - 1.0  # resolution-free with align_corners=False
    gy = 2.0 * (p[..., 1] - y0 + 0.5) / hr - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None].to(device=image.device, dtype=dtype)
    out = F.grid_sample(patch[None].to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0]


def blend_mask(size: int, feather: float = 0.12, shape: str = "rect") -> torch.Tensor:
    """A (1, S, S) mask in crop space: 1 in the middle, falling smoothly to 0 at the border.

    ``feather`` is the width of the falloff as a fraction of the crop side;
    ``shape`` is ``"rect"`` (the whole crop) or ``"ellipse"`` (the face oval).
    """
    size = V.integer(size, "size", minimum=1)
    shape = V.choice(shape, "mask", ("rect", "ellipse"))
    feather = V.number(feather, "feather", low=0.0, high=0.5, low_open=True,
                       hint="the falloff width as a fraction of the crop side, e.g. 0.12")
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in (0, 1)
    y, x = torch.meshgrid(c, c, indexing="ij")
    if shape == "rect":
        d = torch.minimum(torch.minimum(x, 1 - x), torch.minimum(y, 1 - y))  # distance to the border
    elif shape == "ellipse":
        # ellipse around the ArcFace face region (centre ~ nose, covering brows to chin)
        cx, cy, rx, ry = 0.5, 0.53, 0.42, 0.50
        r = torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        d = (1 - r) * min(rx, ry)
    else:
        raise ValueError(f"mask shape must be 'rect' or 'ellipse', got {shape!r}")
    t = (d / feather).clamp(0, 1)
    return (t * t * (3 - 2 * t))[None]  # smoothstep


def paste_back(
    original: torch.Tensor,
    crop: torch.Tensor,
    transform: SimilarityTransform,
    *,
    feather: float = 0.12,
    mask: torch.Tensor | str = "rect",
) -> torch.Tensor:
    """Put ``crop`` (3, S, S) back into ``original`` (3, H, W) where ``transform`` took it from.

    The crop is warped back with the inverse similarity and blended through a
    smooth mask (``mask="rect"`` or ``"ellipse"``, or your own (S, S) / (1, S, S)
    tensor in crop space), so a protected crop replaces the face without a
    visible seam.  Returns a new tensor shaped like ``original`` (a leading batch
    dimension of 1 is kept); gradients flow to ``crop``.
    """
    V.image(original, "original")  # finite, in [0,1]: checked once here, the dtype is kept
    V.image(crop, "crop")
    batched = original.ndim == 4
    orig = _as_chw(original, "original")
    crop = _as_chw(crop, "crop")
    s = transform.size
    if crop.shape[1:] != (s, s):
        raise ValueError(f"crop is {tuple(crop.shape[1:])} but the transform was made for a {s}x{s} crop")
    _, h, w = orig.shape
    if transform.image_shape not in ((0, 0), (h, w)):
        raise ValueError(f"the transform belongs to an image of size {transform.image_shape}, not {(h, w)}")
    if isinstance(mask, str):
        m = blend_mask(s, feather, mask)
    else:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be 'rect', 'ellipse' or a (S, S) tensor in [0,1]; got {type(mask).__name__}")
        m = mask if mask.ndim == 3 else mask[None]
        if m.shape != (1, s, s):
            raise ValueError(f"mask must be (S, S) or (1, S, S) with S={s}, got {tuple(mask.shape)}")
        lo, hi = torch.aminmax(m.detach().float())
        if not (0.0 <= float(lo) and float(hi) <= 1.0):  # NaN fails both
            raise ValueError(f"mask values must be finite and in [0,1] (1 = the crop, 0 = the photo); "
                             f"got min {float(lo):.3g}, max {float(hi):.3g}")
    m = m.to(device=crop.device, dtype=crop.dtype)
    roi = _roi(transform.crop_corners_in_image(), h, w, margin=1)
    if roi is None:
        return original.clone()
    x0, y0, x1, y1 = roi
    mat = torch.as_tensor(transform.matrix, dtype=torch.float64)
    p = _pixel_grid(y1 - y0, x1 - x0, "cpu", torch.float64) + torch.tensor([x0, y0], dtype=torch.float64)
    q = p @ mat[:, :2].T + mat[:, 2]  # crop coordinates of each photo pixel centre in the ROI
    grid = ((2.0 * q + 1.0) / s - 1.0)[None].to(device=crop.device, dtype=crop.dtype)
    src = torch.cat([crop, m], dim=0)[None]
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    face, alpha = warped[:3], warped[3:4]
    region = orig[:, y0:y1, x0:x1]
    out = orig.clone()
    out[:, y0:y1, x0:x1] = region * (1 - alpha) + face.to(orig.dtype) * alpha
    return out[None] if batched else out
