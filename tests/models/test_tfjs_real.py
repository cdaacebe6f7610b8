"""The tfjs face models with their real fetched weights: shapes, determinism,
gradients, batch independence, the mobilefacenet repair, and parity with the
original pure-JS TensorFlow.js runtime (fixtures made by
tools/parity/make_tfjs_fixtures.py)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.weights

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
TFJS_FACE_MODELS = {  # name: (embedding dim, default output node)
    "faceres": (1024, "global_pooling/Mean"),
    "faceres-deep": (1024, "global_pooling/Mean"),
    "mobileface": (256, "batchnorm0/add_1"),
    "mobilefacenet": (192, "embeddings"),
}
# Largest |facelab − tfjs| allowed, relative to the largest |tfjs output|.
# Measured: ≤ 1.5e-6 (mobileface), ≤ 3e-7 for the others.
PARITY_RTOL = 1e-5


def _load(name):
    from facelab.models.zoo import load

    return load(name)


@functools.lru_cache(maxsize=None)
def _photos() -> torch.Tensor:
    """Three scikit-image photos cropped by hand to 160×160, float [0,1]:
    the astronaut's face, the cat's face, a coffee cup."""
    from skimage import data

    crops = [
        data.astronaut()[52:182, 159:289],
        data.chelsea()[20:230, 120:330],
        data.coffee()[60:360, 150:450],
    ]
    out = []
    for c in crops:
        t = torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).float()[None] / 255
        out.append(F.interpolate(t, size=(160, 160), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out)


@pytest.mark.parametrize("name", list(TFJS_FACE_MODELS))
def test_embedding_shape_determinism_and_gradient(name):
    model = _load(name)
    dim, node = TFJS_FACE_MODELS[name]
    assert model.graph.default_output == node and node in model.layer_names()
    x = _photos()[:2].clone().requires_grad_(True)
    emb = model(x)
    assert emb.shape == (2, dim) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all() and emb.abs().sum() > 0
    again = model(x.detach())
    assert torch.equal(emb.detach(), again)
    emb.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().amax(dim=(1, 2, 3)).min() > 0  # every image gets a gradient


@pytest.mark.parametrize("name", list(TFJS_FACE_MODELS))
def test_batch_elements_are_independent(name):
    model = _load(name)
    x = _photos()
    together = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_faceres_heads_are_named_as_expected():
    model = _load("faceres")
    out = model.graph(model._native(_photos()[:1]), ["gender_pred/Sigmoid", "age_pred/Softmax"])
    assert out["gender_pred/Sigmoid"].shape == (1, 1)
    assert out["age_pred/Softmax"].shape == (1, 100)
    torch.testing.assert_close(out["age_pred/Softmax"].sum(), torch.tensor(1.0))


def test_intermediate_layers_come_back_nchw():
    model = _load("mobileface")
    names = model.layer_names()
    conv = [n for n in names if model.graph.op_of(n) == "Conv2D"][0]
    out = model.layers(_photos()[:1], [conv])[conv]
    assert out.ndim == 4 and out.shape[0] == 1 and out.shape[2] == out.shape[3]


def _cosines(e: torch.Tensor) -> torch.Tensor:
    e = F.normalize(e, dim=1)
    s = e @ e.T
    return s[~torch.eye(len(e), dtype=torch.bool)]


def test_shipped_mobilefacenet_collapses_and_the_repair_fixes_it():
    """docs/models.md pitfall 1: as shipped every input maps to nearly the same
    embedding (a face, a cat and a coffee cup alike); repaired, they differ."""
    from facelab.cache import require
    from facelab.models import packages as P
    from facelab.models.tfjs_graph import load_tfjs_graph

    repaired = _load("mobilefacenet")
    shipped = load_tfjs_graph(require(P.HUMAN, "mobilefacenet.json"), "embeddings")
    x = _photos()
    native = repaired._native(x)
    cos_shipped = _cosines(shipped(native)["embeddings"])
    cos_repaired = _cosines(repaired(x))
    assert cos_shipped.min() > 0.99
    assert cos_repaired.max() < 0.7


def _offline_faces():
    """Aligned faces and identity labels of facelab's offline face set."""
    from facelab.faces import offline_set

    data = offline_set()
    return data.crops.float(), list(data.labels)


@pytest.mark.faces
@pytest.mark.parametrize("name", list(TFJS_FACE_MODELS))
def test_models_separate_identities(name):
    """Mean same-identity cosine exceeds mean different-identity cosine by
    more than 0.15 (measured on the 81-face offline set: 0.41–0.85)."""
    faces, labels = _offline_faces()
    model = _load(name)
    with torch.no_grad():
        emb = torch.cat([model(faces[i:i + 16]) for i in range(0, len(faces), 16)])
    e = F.normalize(emb, dim=1)
    sim = e @ e.T
    same = torch.tensor([[a == b for b in labels] for a in labels])
    off = ~torch.eye(len(labels), dtype=torch.bool)
    genuine, impostor = sim[same & off], sim[~same]
    assert len(genuine) > 0 and len(impostor) > 0
    assert genuine.mean() - impostor.mean() > 0.15, (float(genuine.mean()), float(impostor.mean()))


# ---------------------------------------------------------------------------
# Parity with @tensorflow/tfjs (pure JS, CPU backend)
# ---------------------------------------------------------------------------

PARITY = {  # fixture: (model json, repaired?)
    "faceres": ("faceres.json", False),
    "faceres-deep": ("faceres-deep.json", False),
    "mobileface": ("mobileface.json", False),
    "mobilefacenet": ("mobilefacenet.json", False),
    "mobilefacenet-repaired": ("mobilefacenet.json", True),
    "age": ("age.json", False),
    "gender-ssrnet-imdb": ("gender-ssrnet-imdb.json", False),
    "gender": ("gender.json", False),
    "emotion": ("emotion.json", False),
    "gear": ("gear.json", False),
}


@pytest.mark.parametrize("fixture", list(PARITY))
def test_parity_with_tfjs(fixture):
    from facelab.cache import require
    from facelab.models import packages as P
    from facelab.models.tfjs_graph import load_tfjs_graph, repair_mobilefacenet

    json_name, repaired = PARITY[fixture]
    f = np.load(FIXTURES / f"{fixture}.npz")
    assert str(f["model_file"]) == json_name and bool(f["repaired"]) == repaired
    outputs = [k[4:] for k in f.files if k.startswith("out:")]
    graph = load_tfjs_graph(require(P.HUMAN, json_name), outputs[0], repair_mobilefacenet if repaired else None)
    x = (torch.from_numpy(f["input"]).float() - torch.from_numpy(f["sub"])) * torch.from_numpy(f["mul"])
    got = graph(x, outputs)
    for node in outputs:
        want = torch.from_numpy(f[f"out:{node}"])
        assert got[node].shape == want.shape
        err = float((got[node] - want).abs().max())
        scale = float(want.abs().max())
        assert err <= PARITY_RTOL * scale, f"{fixture} {node}: max |diff| {err:.3g} vs output scale {scale:.3g}"


def test_parity_fixtures_record_the_shipped_defect():
    """The JS runtime itself collapses the shipped mobilefacenet (its two
    fixture images get cosine ≈ 1) but not the repaired graph."""
    shipped = torch.from_numpy(np.load(FIXTURES / "mobilefacenet.npz")["out:embeddings"])
    fixed = torch.from_numpy(np.load(FIXTURES / "mobilefacenet-repaired.npz")["out:embeddings"])
    assert float(_cosines(shipped).min()) > 0.99
    assert float(_cosines(fixed).max()) < 0.5


@pytest.mark.faces
def test_shipped_mobilefacenet_does_not_separate_identities():
    """The unrepaired graph gives every face the same embedding: genuine and
    impostor cosines differ by less than 0.01 (measured 0.0002)."""
    from facelab.cache import require
    from facelab.models import packages as P
    from facelab.models.tfjs_graph import load_tfjs_graph

    faces, labels = _offline_faces()
    model = _load("mobilefacenet")
    shipped = load_tfjs_graph(require(P.HUMAN, "mobilefacenet.json"), "embeddings")
    with torch.no_grad():
        emb = torch.cat([shipped(model._native(faces[i:i + 16]))["embeddings"] for i in range(0, len(faces), 16)])
    e = F.normalize(emb, dim=1)
    sim = e @ e.T
    same = torch.tensor([[a == b for b in labels] for a in labels])
    off = ~torch.eye(len(labels), dtype=torch.bool)
    assert sim[same & off].mean() - sim[~same].mean() < 0.01
