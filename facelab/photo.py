"""Photos as files: read the exact pixels, write PNG or JPEG without metadata, never overwrite.

:func:`read_photo` keeps what :func:`facelab.faces.read_image` converts away
for the models: the 8-bit pixel values themselves (so a protected photo can be
bit-identical to its original outside the faces) and the alpha channel (so an
RGBA photo stays RGBA).  EXIF orientation is applied to the pixels, and the
written file carries no EXIF at all (no GPS, no camera serial, no orientation
tag left to rotate the pixels a second time).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .faces.io import ImageReadError, _open_pil, describe

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


@dataclass
class Photo:
    """8-bit pixels as a viewer shows them: ``rgb`` (H, W, 3) uint8, ``alpha`` (H, W) uint8 or None."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    name: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]

    def composite(self) -> np.ndarray:
        """Float RGB (H, W, 3) in [0, 1], transparency on white: what the models see."""
        rgb = self.rgb.astype(np.float32) / 255.0
        if self.alpha is None:
            return rgb
        a = self.alpha.astype(np.float32)[..., None] / 255.0
        return rgb * a + (1.0 - a)

    def pixels(self) -> np.ndarray:
        """(H, W, 3 or 4) uint8: the array written to a file."""
        return self.rgb if self.alpha is None else np.dstack([self.rgb, self.alpha])


def _from_pil(img: Image.Image, name: str) -> Photo:
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not make the photo unreadable
        pass
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        raise ImageReadError(f"{name}: {img.mode} images (16-bit or float) are not supported for protection; "
                             "convert the photo to 8-bit RGB first")
    rgba = np.array(img.convert("RGBA" if has_alpha else "RGB"))  # writable: torch.from_numpy shares it
    if has_alpha:
        return Photo(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), name)
    return Photo(np.ascontiguousarray(rgba), None, name)


def read_photo(source, name: str | None = None) -> Photo:
    """A path, bytes, PIL image or uint8 (H, W, 3|4) array → :class:`Photo` (a Photo is returned as it is).

    Grey and palette photos become RGB (RGBA when they carry transparency).
    """
    if isinstance(source, Photo):
        return source
    name = name or describe(source)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return _from_pil(_open_pil(source, name), name)
    if isinstance(source, Image.Image):
        return _from_pil(source, name)
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] not in (3, 4):
            raise ValueError(f"{name}: a photo array must be uint8 (H, W, 3) RGB or (H, W, 4) RGBA, got "
                             f"{source.dtype} of shape {source.shape}")
        alpha = np.ascontiguousarray(source[..., 3]) if source.shape[2] == 4 else None
        return Photo(np.ascontiguousarray(source[..., :3]), alpha, name)
    raise TypeError(f"cannot read a photo from {type(source).__name__}; pass a path, bytes, a PIL image "
                    "or a uint8 (H, W, 3|4) array")


def format_of(path) -> str:
    """"PNG" or "JPEG" from the file name's extension."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"output {path}: unknown extension {ext or '(none)'!r}; use .png (lossless) or .jpg")
    return FORMATS[ext]


def encode(pixels: np.ndarray, fmt: str = "PNG", quality: int = 95) -> bytes:
    """PNG or JPEG bytes of a uint8 (H, W, 3|4) array, with no metadata.

    JPEG has no alpha: an RGBA photo is composited on white first.
    """
    if fmt == "JPEG" and pixels.shape[2] == 4:
        a = pixels[..., 3:].astype(np.float32) / 255.0
        pixels = np.round(pixels[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    img = Image.fromarray(pixels)  # a fresh image: no info, no EXIF to carry over
    buf = io.BytesIO()
    if fmt == "JPEG":
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        img.save(buf, "JPEG", quality=int(quality), subsampling=0 if quality >= 90 else 2, optimize=True)
    elif fmt == "PNG":
        img.save(buf, "PNG", optimize=False)
    else:
        raise ValueError(f"format must be 'PNG' or 'JPEG', got {fmt!r}")
    return buf.getvalue()


def write_new(path, data: bytes) -> Path:
    """Write ``data`` to ``path``, which must not exist yet (never overwrites)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    try:
        with open(path, "xb") as fh:
            fh.write(data)
    except FileExistsError:
        raise FileExistsError(f"output {path} already exists; facelab never overwrites a file: choose a new name") from None
    return path
