"""Attribute models: raw heads, differentiability and decoded labels."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelab.models import attributes as A


@functools.lru_cache(maxsize=None)
def _astronaut() -> torch.Tensor:
    """The astronaut's (Eileen Collins, smiling) face, hand-cropped, 128×128."""
    from skimage import data

    crop = data.astronaut()[52:182, 159:289]
    t = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(t, size=(128, 128), mode="bilinear", align_corners=False, antialias=True)


@functools.lru_cache(maxsize=None)
def _model(name):
    return A.load_attribute_model(name)


def test_available_lists_the_clean_models():
    assert A.available() == ["faceres", "age", "gender", "emotion", "gear"]


def test_crop_and_resize_matches_tensorflow_sampling():
    x = torch.arange(5 * 5, dtype=torch.float32).reshape(1, 1, 5, 5)
    # box rows/cols 0..0.5 of a 5-pixel image → pixel coordinates 0..2, 3 samples: 0, 1, 2
    out = A.crop_and_resize(x, (0.0, 0.0, 0.5, 0.5), 3)
    torch.testing.assert_close(out[0, 0], x[0, 0, :3, :3])
    # a half-pixel position interpolates linearly
    out = A.crop_and_resize(x, (0.0, 0.0, 0.125, 0.125), 2)
    torch.testing.assert_close(out[0, 0, 1, 1], (x[0, 0, 0, 0] + x[0, 0, 0, 1] + x[0, 0, 1, 0] + x[0, 0, 1, 1]) / 4)


def test_decode_rejects_mixed_or_incomplete_outputs():
    out = {"age/age": torch.tensor([[30.0]]), "gender/gender": torch.tensor([[0.2, 0.8]])}
    with pytest.raises(ValueError, match="one attribute model"):
        A.decode(out)
    with pytest.raises(KeyError, match="race"):
        A.decode({"gear/age": torch.full((1, 7), 1 / 7), "gear/gender": torch.tensor([[0.5, 0.5]])})


def test_decoders_on_hand_made_outputs():
    probs = torch.zeros(1, 100)
    probs[0, 30], probs[0, 40] = 0.5, 0.5
    (faceres,) = A.decode({"faceres/gender": torch.tensor([[0.2]]), "faceres/age": probs})
    assert faceres["gender"] == "female" and faceres["gender_score"] == pytest.approx(0.8)
    assert faceres["age"] == pytest.approx(35.0)
    (gender,) = A.decode({"gender/gender": torch.tensor([[0.3, 0.7]])})
    assert gender == {"gender": "male", "gender_score": pytest.approx(0.7)}
    gear_age = torch.zeros(1, 7)
    gear_age[0, 1] = 1.0
    (gear,) = A.decode({
        "gear/age": gear_age, "gear/gender": torch.tensor([[0.9, 0.1]]),
        "gear/race": torch.tensor([[0.1, 0.1, 0.6, 0.1, 0.1]]),
    })
    assert gear["age"] == pytest.approx(23.0) and gear["gender"] == "male" and gear["race"] == "asian"


def test_missing_cache_raises_missing_cache_error(tmp_path, monkeypatch):
    from facelab.cache import MissingCacheError

    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(A, "_GRAPHS", {})
    with pytest.raises(MissingCacheError, match="facelab fetch"):
        A.load_attribute_model("emotion")


SHAPES = {
    "faceres": {"faceres/gender": (2, 1), "faceres/age": (2, 100)},
    "age": {"age/age": (2, 1)},
    "gender": {"gender/gender": (2, 2)},
    "emotion": {"emotion/emotion": (2, 7)},
    "gear": {"gear/age": (2, 7), "gear/gender": (2, 2), "gear/race": (2, 5)},
}


@pytest.mark.weights
@pytest.mark.parametrize("name", A.available())
def test_heads_shapes_probabilities_and_gradients(name):
    model = _model(name)
    x = torch.cat([_astronaut(), _astronaut().flip(-1)]).requires_grad_(True)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == SHAPES[name]
    for key, v in out.items():
        assert torch.isfinite(v).all()
        if v.shape[1] > 1:  # softmax heads
            torch.testing.assert_close(v.sum(dim=1), torch.ones(2), rtol=1e-5, atol=1e-5)
    loss = sum(v.square().sum() for v in out.values())
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    labels = model.decode(out)
    assert len(labels) == 2 and all(isinstance(d, dict) and d for d in labels)


@pytest.mark.weights
def test_labels_of_a_smiling_woman():
    """The astronaut photo: every gender head says female, emotion says
    happy, ages are adult."""
    x = _astronaut()
    got = {name: _model(name).decode(_model(name)(x))[0] for name in A.available()}
    for name in ("faceres", "gender", "gear"):
        assert got[name]["gender"] == "female", (name, got[name])
    assert got["emotion"]["emotion"] == "happy", got["emotion"]
    for name in ("faceres", "age", "gear"):
        assert 20 <= got[name]["age"] <= 55, (name, got[name])


@pytest.mark.weights
def test_input_size_does_not_matter_much():
    """Crops of any size are resized: 128 px and 256 px give the same label."""
    model = _model("gender")
    small = _astronaut()
    big = F.interpolate(small, size=(256, 256), mode="bilinear", align_corners=False)
    a, b = model(small)["gender/gender"], model(big)["gender/gender"]
    assert a.argmax() == b.argmax() and (a - b).abs().max() < 0.1


def test_rejects_non_image_input():
    model = A.AttributeModel(A.ATTRIBUTE_SPECS["age"], torch.nn.Identity())
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        model(torch.full((1, 3, 64, 64), 255.0))
