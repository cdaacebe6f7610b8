"""facenet-casia (TF GraphDef), faceapi-resnet (face-api weights manifest)
and faceplugin (ONNX) with their real fetched weights, through
``facelab.models.zoo.load``: shapes, determinism, batch independence,
gradients, intermediate layers, and parity with independent runtimes
(fixtures made by tools/parity/make_other_fixtures.py: OpenCV dnn,
face-api 1.7.15 on pure-JS tfjs 4.22 in node, onnxruntime)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.weights

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
MODELS = {  # name: (input size, embedding dim, default output, an intermediate layer, its NCHW shape at batch 1)
    "facenet-casia": (160, 512, "embeddings", "InceptionResnetV1/Mixed_6a/concat", (1, 896, 8, 8)),
    "faceapi-resnet": (150, 128, "fc", "conv128_down", (1, 128, 8, 8)),
    "faceplugin": (112, 512, "output", "507", (1, 512, 7, 7)),
}
# Largest |facelab − runtime| allowed, relative to the largest |runtime output|
# (float32 precision). Measured: facenet-casia vs OpenCV 1.2e-6, faceapi-resnet
# vs face-api/tfjs 7e-7, faceplugin vs onnxruntime 1.3e-6.
PARITY_RTOL = 2e-5


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    smooth = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("name", list(MODELS))
def test_shape_determinism_and_layers(name, load_model):
    model = load_model(name)
    size, dim, node, layer, layer_shape = MODELS[name]
    assert model.input_size == size and model.embedding_dim == dim
    assert model.graph.default_output == node and node in model.layer_names() and layer in model.layer_names()
    x = _images(2, size, 0)
    with torch.no_grad():
        a, b = model(x), model(x.clone())
    assert a.shape == (2, dim) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert (a[0] - a[1]).abs().max() > 1e-3  # different images, different embeddings
    with torch.no_grad():
        inner = model.layers(x[:1], [layer])[layer]
    assert tuple(inner.shape) == layer_shape and torch.isfinite(inner).all()
    if name == "facenet-casia":  # L2-normalised inside the graph
        torch.testing.assert_close(a.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("name", list(MODELS))
def test_batch_of_8_equals_stacked_singles(name, load_model):
    model = load_model(name)
    x = _images(8, MODELS[name][0], 1)
    with torch.no_grad():
        batch = model(x)
        singles = torch.cat([model(x[i : i + 1]) for i in range(8)])
    assert (batch - singles).abs().max() <= 1e-5 * singles.abs().max()


@pytest.mark.parametrize("name", list(MODELS))
def test_input_gradient_is_finite_and_nonzero(name, load_model):
    model = load_model(name)
    x = _images(2, MODELS[name][0], 2).requires_grad_(True)
    target = torch.randn(2, MODELS[name][1], generator=torch.Generator().manual_seed(3))
    (model(x) * target).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().flatten(1).sum(1) > 0).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_parity_with_independent_runtime(name, load_model):
    fixture = np.load(FIXTURES / f"{name}.npz")
    images, expected = fixture["images"], fixture["expected"]
    assert images.dtype == np.uint8 and images.shape[0] == 2 and expected.dtype == np.float32
    x01 = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        got = load_model(name)(x01).numpy()
    assert got.shape == expected.shape
    err = np.abs(got - expected).max() / np.abs(expected).max()
    assert err <= PARITY_RTOL, f"{name}: relative max error {err:.2e} vs {fixture['runtime']}"
