"""Similarity estimation, the template warp, and pasting crops back."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facelab.faces import (
    ARCFACE_112,
    align_crop,
    blend_mask,
    detect_faces,
    load_image,
    paste_back,
    similarity_transform,
    template,
    umeyama,
)


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    s, a, t = 0.37, math.radians(23.0), np.array([12.0, -4.0])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    dst = s * src @ rot.T + t
    m = umeyama(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-10)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-8)


def test_umeyama_never_reflects():
    src = np.random.default_rng(1).uniform(0, 100, (5, 2))
    dst = src * np.array([-1.0, 1.0])  # a mirror image: the best similarity is still a proper rotation
    m = umeyama(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_umeyama_rejects_degenerate_points():
    with pytest.raises(ValueError, match="degenerate"):
        umeyama(np.ones((5, 2)), ARCFACE_112)
    with pytest.raises(ValueError, match="NaN"):
        umeyama(np.full((5, 2), np.nan), ARCFACE_112)


def test_template_scales():
    np.testing.assert_allclose(template(112), ARCFACE_112)
    np.testing.assert_allclose(template(224), ARCFACE_112 * 2)


def test_transform_maps_landmarks_onto_template(astronaut_faces):
    t = astronaut_faces.transforms[0]
    err = np.abs(t.apply(astronaut_faces.landmarks[0]) - template(112))
    assert err.max() < 6.0  # a least-squares fit: the five points agree to a few pixels
    np.testing.assert_allclose(t.apply_inverse(t.apply(astronaut_faces.landmarks[0])), astronaut_faces.landmarks[0], atol=1e-4)


@pytest.mark.parametrize("size", [112, 160, 224])
def test_crops_are_aligned_when_redetected(astronaut_faces, size):
    """Re-detect landmarks on the crop: eyes land within a few pixels of the template."""
    crop = load_image(astronaut_faces.original, size=size).crops[0]
    dets = detect_faces(crop.permute(1, 2, 0).numpy())
    assert len(dets) >= 1
    tol = 3.0 * size / 112
    np.testing.assert_allclose(dets.landmarks[0, :2], template(size)[:2], atol=tol)


def test_align_crop_with_own_landmarks(astronaut, astronaut_faces):
    crops = align_crop(astronaut, astronaut_faces.landmarks[0])
    torch.testing.assert_close(crops[0], astronaut_faces.crops[0], atol=1e-5, rtol=0)
    many = align_crop(astronaut, np.stack([astronaut_faces.landmarks[0]] * 3), size=96)
    assert many.shape == (3, 3, 96, 96)


def test_paste_back_of_the_unchanged_crop_is_nearly_lossless(astronaut_faces):
    r = astronaut_faces
    out = r.paste_back(r.crops[0])
    assert out.shape == r.original.shape
    diff = (out - r.original).abs()
    # the crop is a resampled copy of the same pixels: only interpolation error
    assert float(diff.mean()) < 0.01


def test_paste_back_changes_only_the_face_region(astronaut_faces):
    r = astronaut_faces
    out = r.paste_back(torch.zeros_like(r.crops[0]))
    changed = (out - r.original).abs().sum(0) > 1e-6
    corners = r.transforms[0].crop_corners_in_image()
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert xs.min() >= corners[:, 0].min() - 2 and xs.max() <= corners[:, 0].max() + 2
    assert ys.min() >= corners[:, 1].min() - 2 and ys.max() <= corners[:, 1].max() + 2
    # the face centre is fully replaced, the blend is smooth (no hard seam)
    cx, cy = r.landmarks[0, 2].round().astype(int)
    assert float(out[:, cy, cx].abs().max()) < 1e-4
    alpha = 1 - (out - r.original).abs().sum(0) / (r.original.abs().sum(0) + 1e-6)
    assert 0.2 < float(alpha[changed].mean()) < 1.0


def test_paste_back_is_differentiable(astronaut_faces):
    r = astronaut_faces
    crop = r.crops[0].clone().requires_grad_(True)
    out = paste_back(r.original, crop, r.transforms[0])
    out.sum().backward()
    assert crop.grad is not None and float(crop.grad.abs().sum()) > 0


def test_paste_back_batched_and_errors(astronaut_faces):
    r = astronaut_faces
    out = paste_back(r.original[None], r.crops[:1], r.transforms[0], mask="ellipse")
    assert out.shape == (1, *r.original.shape)
    with pytest.raises(ValueError, match="112x112"):
        paste_back(r.original, torch.zeros(3, 64, 64), r.transforms[0])
    with pytest.raises(ValueError, match="image of size"):
        paste_back(torch.zeros(3, 100, 100), r.crops[0], r.transforms[0])


def test_blend_mask_shape():
    m = blend_mask(112)
    assert m.shape == (1, 112, 112)
    assert float(m[0, 56, 56]) == 1.0 and float(m[0, 0, 0]) < 0.05
    e = blend_mask(112, shape="ellipse")
    assert float(e[0, 2, 2]) == 0.0
    with pytest.raises(ValueError):
        blend_mask(112, feather=0.9)


def test_similarity_transform_errors():
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        similarity_transform(np.zeros((68, 2)))
