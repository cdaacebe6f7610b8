"""Reading any image into one canonical form: float32 RGB, HWC, values in [0, 1].

Accepted inputs: a path (``str`` / ``os.PathLike``), the bytes of an encoded
image, a ``PIL.Image.Image``, a numpy array (``HW`` grey or ``HWC`` with 1, 3
or 4 channels; uint8, uint16 or float in [0, 1]) or a torch tensor (``CHW`` or
``1CHW`` float in [0, 1]).

Conventions (documented in docs/faces.md):

* EXIF orientation is applied, so pixels come out the way a viewer shows them.
* Grey is replicated to three channels.
* Transparency (RGBA, LA, palette with a transparent colour) is composited
  **on white**; a fully transparent pixel becomes white, not black.
* 16-bit images keep their precision: uint16 / PIL "I;16" are divided by 65535.
* Nothing is ever written to disk; the caller's array is never modified.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Encoded images (files, bytes) with more pixels than this are refused before
# they are decoded: a decompression-bomb guard that still admits big camera
# images (200 MP, about 2.4 GB as float32 RGB).  Arrays and tensors are taken
# as given (they are already in memory).
MAX_PIXELS = 200_000_000


class ImageReadError(ValueError):
    """A file or byte string is not a readable image (corrupt, truncated, not an image)."""


def describe(source) -> str:
    """A short human name for ``source`` used in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or ""
        return name or f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    shape = getattr(source, "shape", None)
    if shape is not None:
        return f"<{type(source).__name__} of shape {tuple(shape)}>"
    return f"<{type(source).__name__}>"


def _open_pil(source, name: str) -> Image.Image:
    """Open and fully decode an encoded image; every failure becomes ImageReadError."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no such image file: {name}")
        if path.is_dir():
            raise ImageReadError(f"{name} is a directory, not an image file")
        opener = lambda: Image.open(path)  # noqa: E731
    else:
        data = bytes(source)
        if not data:
            raise ImageReadError(f"{name}: empty byte string, not an image")
        opener = lambda: Image.open(io.BytesIO(data))  # noqa: E731
    old_max = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():  # Pillow only warns up to 2x its limit: refused below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = opener()  # reads the header only
        if img.size[0] * img.size[1] > MAX_PIXELS:
            raise Image.DecompressionBombError(
                f"{img.size[0]}x{img.size[1]} = {img.size[0] * img.size[1] / 1e6:.0f} MP, more than the "
                f"{MAX_PIXELS / 1e6:.0f} MP facelab reads (facelab.faces.io.MAX_PIXELS); downscale it first")
        img.load()  # force the full decode now: truncated files fail here
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{name} is not an image file Pillow can read (unknown or corrupt format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{name} is too large to read safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{name} could not be decoded; the file is corrupt or truncated ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_max
    return img


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha[..., None] + (1.0 - alpha[..., None])


def _pil_to_array(img: Image.Image, name: str) -> np.ndarray:
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not make the photo unreadable
        pass
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
    elif mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / (65535.0 if arr.max(initial=0) > 255 else 255.0)
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / (255.0 if arr.max(initial=0) > 1.0 else 1.0)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info) or (
        mode in ("L", "RGB") and "transparency" in img.info
    ):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return np.ascontiguousarray(_composite_on_white(rgba[..., :3], rgba[..., 3]), dtype=np.float32)
    else:
        try:
            rgb = img if mode == "RGB" else img.convert("RGB")
        except Exception as exc:
            raise ImageReadError(f"{name}: unsupported image mode {mode!r}") from exc
        arr = np.asarray(rgb, dtype=np.float32)  # a fresh float copy: safe to scale in place
        arr *= np.float32(1.0 / 255.0)
        return arr
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


def _array_to_float(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.bool_ or arr.dtype.kind not in "uif":
        raise ValueError(
            f"{name}: unsupported array dtype {arr.dtype}; use uint8 (0..255), uint16 (0..65535) "
            "or float (0..1)"
        )
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{name}: array of shape {arr.shape} looks channels-first (CHW); numpy images must be "
            "HWC (height, width, channels): use arr.transpose(1, 2, 0)"
        )
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected an image array of shape (H, W) or (H, W, C) with C in 1, 3, 4; "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: empty image of shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"{name}: the float image contains NaN or infinite values")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ValueError(
                f"{name}: float images must hold values in [0, 1], got [{lo:.3g}, {hi:.3g}]; "
                "divide 0..255 data by 255 or pass it as uint8"
            )
        out = np.clip(out, 0.0, 1.0)
    else:
        raise ValueError(
            f"{name}: unsupported integer dtype {arr.dtype}; use uint8 (0..255) or uint16 (0..65535)"
        )
    c = out.shape[2]
    if c == 1:
        out = np.repeat(out, 3, axis=2)
    elif c == 4:
        out = _composite_on_white(out[..., :3], out[..., 3])
    return np.ascontiguousarray(out, dtype=np.float32)


def _tensor_to_float(t, name: str) -> np.ndarray:
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"{name}: a 4-d tensor must hold one image (1, C, H, W); got {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ValueError(f"{name}: tensors must be CHW or 1CHW with C in 1, 3, 4; got {tuple(t.shape)}")
    arr = t.detach().cpu()
    if arr.is_floating_point():
        arr = arr.float()
    return _array_to_float(arr.permute(1, 2, 0).numpy(), name)


def read_image(source, name: str | None = None) -> np.ndarray:
    """Decode ``source`` to a float32 RGB ``(H, W, 3)`` array in [0, 1].

    Raises :class:`ImageReadError` for corrupt / truncated / non-image files or
    bytes, ``FileNotFoundError`` for a missing path and ``ValueError`` for an
    array of the wrong shape or dtype.
    """
    name = name or describe(source)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return _pil_to_array(_open_pil(source, name), name)
    if isinstance(source, Image.Image):
        try:
            source.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{name} could not be decoded ({exc})") from exc
        return _pil_to_array(source, name)
    if isinstance(source, np.ndarray):
        return _array_to_float(source, name)
    try:
        import torch

        if isinstance(source, torch.Tensor):
            return _tensor_to_float(source, name)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    raise TypeError(
        f"cannot read an image from {type(source).__name__}; pass a path, bytes, a PIL image, "
        "a numpy array (HWC) or a torch tensor (CHW)"
    )


# --------------------------------------------------------------------------
# load_image: read + detect + align, with everything needed to paste back.
# --------------------------------------------------------------------------


class NoFaceError(ValueError):
    """No face was found in an image."""


@dataclass
class FaceImage:
    """The faces of one photo, largest first.

    ``crops`` (N, 3, S, S) float32 RGB in [0, 1], aligned to the ArcFace
    template at ``size``; ``boxes`` (N, 4) x1, y1, x2, y2, ``landmarks`` (N, 5, 2)
    and ``scores`` (N,) in the original's pixel coordinates (scores are NaN
    for landmarks you supplied); ``original`` (3, H, W) float32 RGB in [0, 1]
    (EXIF-rotated, alpha composited on white); ``transforms`` one
    :class:`~facelab.faces.align.SimilarityTransform` per face (photo → crop).
    """

    crops: "torch.Tensor"
    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    original: "torch.Tensor"
    transforms: list
    name: str
    size: int

    def __len__(self) -> int:
        return self.crops.shape[0]

    def paste_back(self, crop, index: int = 0, original=None, **kwargs):
        """Paste ``crop`` (3, S, S) back at face ``index`` of ``original`` (default: this photo).

        Pass the running result as ``original`` to paste several faces back in turn.
        """
        from .align import paste_back

        base = self.original if original is None else original
        return paste_back(base, crop, self.transforms[index], **kwargs)


def load_image(
    source,
    size: int = 112,
    *,
    landmarks=None,
    min_score: float = 0.9,
    max_faces: int | None = None,
    max_side: int | None = None,
    device=None,
    name: str | None = None,
) -> FaceImage:
    """Read ``source`` (path, bytes, PIL image, numpy array, CHW tensor), find its
    faces with MTCNN and return them aligned to the ArcFace template at ``size``.

    Detection runs on a copy whose longer side is at most ``max_side`` pixels
    (default 1280); the crops are warped from the full-resolution image.  Pass
    ``landmarks`` ((5, 2) or (N, 5, 2), x/y in the image's pixels: left eye,
    right eye, nose, left and right mouth corner) to skip detection.

    Raises :class:`NoFaceError` when no face scores at least ``min_score``,
    :class:`ImageReadError` for unreadable files, ``ValueError`` for arrays of
    the wrong shape or dtype.
    """
    import torch

    from .. import validate as V
    from .align import similarity_transform, template, warp_crop
    from .detect import DEFAULT_MAX_SIDE, MIN_SIDE, Detections, detect_faces

    template(size)  # validates size early
    min_score = V.probability(min_score, "min_score", hint="the MTCNN face probability to accept, e.g. 0.9")
    max_faces = V.optional_integer(max_faces, "max_faces", hint="the most faces to keep, largest first; None = all")
    max_side = V.optional_integer(max_side, "max_side", minimum=MIN_SIDE,
                                  hint="the longer side of the detection copy in pixels, e.g. 1280")
    name = name or describe(source)
    arr = read_image(source, name)
    h, w = arr.shape[:2]
    if landmarks is None:
        dets = detect_faces(arr, min_score=min_score, max_side=max_side or DEFAULT_MAX_SIDE, device=device)
        if len(dets) == 0:
            hint = f" (the image is only {w}x{h} pixels)" if min(h, w) < 32 else ""
            raise NoFaceError(f"no face was found in {name}{hint}")
    else:
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape == (5, 2):
            lm = lm[None]
        if lm.ndim != 3 or lm.shape[1:] != (5, 2) or lm.shape[0] == 0:
            raise ValueError(f"landmarks must have shape (5, 2) or (N, 5, 2) with N >= 1, got {np.shape(landmarks)}")
        if not np.isfinite(lm).all():
            raise ValueError("landmarks contain NaN or infinite values; pass five finite (x, y) points per face")
        boxes = np.concatenate([lm.min(1), lm.max(1)], axis=1)
        dets = Detections(boxes.astype(np.float32), lm.astype(np.float32), np.full(len(lm), np.nan, np.float32))
    if max_faces is not None:
        dets = dets.take(np.arange(min(max_faces, len(dets))))
    original = torch.from_numpy(arr).permute(2, 0, 1)  # a (3, H, W) view: no second copy of a big photo
    transforms = [similarity_transform(lm, size, (h, w)) for lm in dets.landmarks]
    crops = torch.stack([warp_crop(original, t) for t in transforms]).clamp_(0, 1)
    return FaceImage(
        crops=crops,
        boxes=dets.boxes,
        landmarks=dets.landmarks,
        scores=dets.scores,
        original=original,
        transforms=transforms,
        name=name,
        size=int(size),
    )


def align_crop(image, landmarks, size: int = 112) -> "torch.Tensor":
    """Aligned crops (N, 3, S, S) from your own five-point ``landmarks`` ((5, 2) or (N, 5, 2)).

    ``image`` is anything :func:`load_image` accepts.  Use
    ``load_image(image, size, landmarks=...)`` instead when you also need the
    transforms to paste the crops back.
    """
    return load_image(image, size, landmarks=landmarks).crops
