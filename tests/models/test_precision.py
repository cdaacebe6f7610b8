"""Mixed precision is an explicit opt-in (``load(name, precision=...)``): float32 stays bit-identical to the
graph's own output, mixed precision keeps float32 pixels, embeddings and gradients and stays close to float32."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facelab.models import PRECISIONS, available, load

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def faces():
    return torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(0))


def test_float32_is_the_default_and_unchanged(faces):
    model = load("mobileface")
    assert model.precision == "float32"
    direct = model.graph(model._native(faces))[model.graph.default_output]
    assert torch.equal(model(faces), direct.reshape(direct.shape[0], -1))


@pytest.mark.parametrize("name", available())
def test_bfloat16_stays_close_and_float32_at_the_edges(name, faces):
    model, mixed = load(name), load(name, precision="bfloat16")
    x = faces.clone().requires_grad_(True)
    e = mixed(x)
    e.square().sum().backward()
    assert e.dtype == torch.float32 and x.grad.dtype == torch.float32
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        cos = F.cosine_similarity(model(faces), e.detach())
    assert cos.min() > 0.97, f"{name}: bfloat16 embeddings moved to cosine {cos.min():.4f}"
    # the mixed pass really runs in the half type: its embedding is not float32's to the last bit
    assert not torch.equal(model(faces), e.detach())


def test_layers_come_back_in_float32(faces):
    mixed = load("mobileface", precision="bfloat16")
    name = mixed.layer_names()[3]
    out = mixed.layers(faces, [name])[name]
    assert out.dtype == torch.float32


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision='half'.*float32, bfloat16, float16"):
        load("mobileface", precision="half")
    model = load("mobileface")
    with pytest.raises(ValueError, match="choose one of"):
        model.precision = "fp8"
    assert set(PRECISIONS) == {"float32", "bfloat16", "float16"}
