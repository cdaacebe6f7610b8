"""load_image on every kind of input, and its errors.  Uses scikit-image's
astronaut photo (public domain), so these run without the fetched face set."""
from __future__ import annotations

import hashlib
import io
import resource
import time

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.faces import FaceImage, ImageReadError, NoFaceError, load_image, read_image


def _eyes(r: FaceImage) -> np.ndarray:
    return r.landmarks[0, :2]


def test_result_fields(astronaut_faces):
    r = astronaut_faces
    assert isinstance(r, FaceImage) and len(r) >= 1
    assert r.crops.dtype == torch.float32 and r.crops.shape[1:] == (3, 112, 112)
    assert 0.0 <= float(r.crops.min()) and float(r.crops.max()) <= 1.0
    assert r.boxes.shape == (len(r), 4) and r.landmarks.shape == (len(r), 5, 2) and r.scores.shape == (len(r),)
    assert r.boxes.dtype == np.float32 and r.landmarks.dtype == np.float32
    assert r.original.shape == (3, 512, 512) and r.original.dtype == torch.float32
    assert len(r.transforms) == len(r)
    areas = (r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1])
    assert np.all(np.diff(areas) <= 0), "largest face first"


@pytest.mark.parametrize("kind", ["path", "bytes", "pil", "uint8", "uint16", "float", "tensor"])
def test_every_input_kind_finds_the_same_face(kind, astronaut, astronaut_faces, tmp_path):
    if kind == "path":
        src = tmp_path / "astro.png"
        Image.fromarray(astronaut).save(src)
    elif kind == "bytes":
        buf = io.BytesIO()
        Image.fromarray(astronaut).save(buf, format="PNG")
        src = buf.getvalue()
    elif kind == "pil":
        src = Image.fromarray(astronaut)
    elif kind == "uint8":
        src = astronaut
    elif kind == "uint16":
        src = astronaut.astype(np.uint16) * 257
    elif kind == "float":
        src = astronaut.astype(np.float64) / 255.0
    else:
        src = torch.from_numpy(astronaut).permute(2, 0, 1).float() / 255.0
    r = load_image(src)
    np.testing.assert_allclose(_eyes(r), _eyes(astronaut_faces), atol=0.5)
    torch.testing.assert_close(r.original, astronaut_faces.original, atol=1e-4, rtol=0)


def test_size_is_respected(astronaut):
    r = load_image(astronaut, size=160)
    assert r.crops.shape[-2:] == (160, 160) and r.transforms[0].size == 160


def test_grey_image(astronaut):
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    r = load_image(grey)
    assert r.original.shape == (3, 512, 512)
    assert torch.equal(r.original[0], r.original[1]) and torch.equal(r.original[1], r.original[2])
    r2 = load_image(Image.fromarray(grey))  # PIL mode "L" too
    np.testing.assert_allclose(_eyes(r2), _eyes(r), atol=0.5)


def test_rgba_composited_on_white(astronaut, astronaut_faces, tmp_path):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent band at the top
    path = tmp_path / "astro_rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    r = load_image(path)
    assert torch.allclose(r.original[:, :40], torch.ones(3, 40, 512)), "transparent pixels become white"
    torch.testing.assert_close(r.original[:, 40:], astronaut_faces.original[:, 40:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(_eyes(r), _eyes(astronaut_faces), atol=1.0)
    # LA and palette-with-transparency take the same path
    la = Image.fromarray(rgba).convert("LA")
    assert load_image(la).original[:, :40].min() == 1.0
    pal = Image.fromarray(astronaut).convert("P")
    pal.info["transparency"] = 0
    assert len(load_image(pal)) >= 1


def test_sixteen_bit_png(astronaut, tmp_path):
    grey16 = (np.asarray(Image.fromarray(astronaut).convert("L"), dtype=np.uint16) * 257) + 3
    path = tmp_path / "astro16.png"
    Image.fromarray(grey16).save(path)
    assert Image.open(path).mode.startswith("I")
    r = load_image(path)
    expected = torch.from_numpy(grey16.astype(np.float32) / 65535.0)
    torch.testing.assert_close(r.original[0], expected, atol=1e-6, rtol=0)  # 16-bit precision kept
    assert len(r) >= 1


def test_exif_rotated_jpeg(astronaut, astronaut_faces, jpeg_bytes, tmp_path):
    stored = np.ascontiguousarray(np.rot90(astronaut, k=1))  # pixels stored rotated 90° counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_bytes(stored, exif=exif))
    r = load_image(path)
    assert r.original.shape == (3, 512, 512)
    # the face lands where it is in the upright photo (JPEG adds a little noise)
    np.testing.assert_allclose(r.landmarks[0], astronaut_faces.landmarks[0], atol=3.0)


def test_huge_image_bounded(astronaut, astronaut_faces, jpeg_bytes, tmp_path):
    big = np.full((4000, 6000, 3), 200, np.uint8)
    big[:, 1000:5000] = np.asarray(Image.fromarray(astronaut).resize((4000, 4000), Image.BICUBIC))
    path = tmp_path / "huge.jpg"
    path.write_bytes(jpeg_bytes(big, quality=90))
    del big
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux reports KB)
    t0 = time.perf_counter()
    r = load_image(path)
    elapsed = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert r.original.shape == (3, 4000, 6000)
    scale = 4000 / 512
    expected = astronaut_faces.landmarks[0] * scale + (scale - 1) / 2 + np.array([1000, 0])
    np.testing.assert_allclose(r.landmarks[0], expected, atol=0.02 * 4000 / 4)
    assert r.transforms[0].scale < 0.2  # crop warped from the full-resolution photo
    assert elapsed < 120, f"huge image took {elapsed:.1f}s"
    assert rss1 - rss0 < 2500, f"peak memory grew by {rss1 - rss0:.0f} MB"


def test_tiny_image(astronaut_faces):
    x1, y1, x2, y2 = astronaut_faces.boxes[0]
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * max(x2 - x1, y2 - y1)
    face = Image.fromarray((astronaut_faces.original.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    face = face.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
    small = np.asarray(face.resize((48, 48), Image.BILINEAR))
    r = load_image(small)
    assert len(r) == 1 and r.crops.shape == (1, 3, 112, 112)
    with pytest.raises(NoFaceError, match="10x10 pixels"):
        load_image(np.asarray(face.resize((10, 10))))


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_no_face(kind, tmp_path):
    rng = np.random.default_rng(0)
    arr = np.full((256, 256, 3), 128, np.uint8) if kind == "grey" else rng.integers(0, 256, (256, 256, 3), np.uint8)
    path = tmp_path / f"{kind}.png"
    Image.fromarray(arr).save(path)
    with pytest.raises(NoFaceError, match=f"no face was found in .*{kind}.png") as exc:
        load_image(path)
    assert isinstance(exc.value, ValueError)


def test_truncated_jpeg(astronaut, jpeg_bytes, tmp_path):
    path = tmp_path / "truncated.jpg"
    path.write_bytes(jpeg_bytes(astronaut)[:5000])
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ImageReadError, match="truncated.jpg") as exc:
        load_image(path)
    assert isinstance(exc.value, ValueError)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "nothing is modified on disk"


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(ImageReadError, match="notes.jpg.*not an image"):
        load_image(path)


def test_other_unreadable_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageReadError, match="bytes"):
        load_image(b"\xff\xd8\xff\xe0 garbage")
    with pytest.raises(ImageReadError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(TypeError, match="path, bytes"):
        load_image(12345)


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.zeros((3, 64, 64), np.uint8), "channels-first"),
        (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
        (np.zeros((64, 64, 2), np.uint8), "shape"),
        (np.zeros((64, 64, 3), bool), "dtype"),
        (np.zeros((64, 64, 3), np.int64), "dtype"),
        (np.full((64, 64, 3), 200.0), r"\[0, 1\]"),
        (np.full((64, 64, 3), np.nan), "NaN"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
    ],
)
def test_bad_arrays(arr, message):
    with pytest.raises(ValueError, match=message):
        read_image(arr)


def test_bad_tensors():
    with pytest.raises(ValueError, match="CHW"):
        read_image(torch.zeros(64, 64, 3))
    with pytest.raises(ValueError, match="one image"):
        read_image(torch.zeros(2, 3, 64, 64))


def test_caller_array_untouched(astronaut):
    arr = astronaut.copy()
    load_image(arr)
    assert np.array_equal(arr, astronaut)


def test_bad_size_and_landmarks(astronaut):
    with pytest.raises(ValueError, match="crop size"):
        load_image(astronaut, size=4)
    with pytest.raises(ValueError, match="landmarks"):
        load_image(astronaut, landmarks=np.zeros((4, 2)))
