"""PMT's evaluation measures (Wang et al., §6.2): the strict accuracy ``acc`` of
data abuse (Eq. 10), attribute similarity CosSim (Eq. 11) and the
utility–privacy trade-off UP(σ, κ) (Eq. 9).

Choices where the paper is loose (docs/pmt.md):

* **κ.**  The paper uses one cosine threshold (0.2, or 0.5) for every model.
  The pool's models have very different score scales (faceres' impostors
  average +0.37; faceapi-resnet scores are −L2), so κ defaults to each
  model's calibrated threshold ``model.threshold(far)`` on its own metric.
* **Attributes.**  The paper runs DeepFace's emotion, race, gender and age
  classifiers.  facelab's attribute models (:mod:`facelab.models.attributes`)
  give emotion (7 classes, ``emotion``), race (5, ``gear``), gender (2,
  ``gender``) and age in years (``faceres``'s expectation).  CosSim is the
  cosine of the probability vectors; for age the absolute difference in
  years (Eq. 11's note), so *higher* age values mean more protection.
* **UP's privacy term.**  The paper replaces Σ Dist(m_i(x), m_i(x̃)) with
  LPIPS (a VGG).  No VGG ships offline, so facelab takes the privacy-infringing
  models m_i literally: Dist = 1 − CosSim over the three categorical
  attributes, averaged.  UP is then in [0, 2]: utility (0/1) + privacy.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .. import validate

#: attribute → (attribute model, head); age is read in years from the decoded outputs
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "emotion": ("emotion", "emotion"),
    "race": ("gear", "race"),
    "gender": ("gender", "gender"),
    "age": ("faceres", "age"),
}


def attribute_vectors(x: torch.Tensor, attribute_models: dict | None = None) -> dict[str, torch.Tensor]:
    """A(x) per attribute of :data:`ATTRIBUTES` (Eq. 5): probability vectors (N, classes);
    age as years (N,).  ``attribute_models``: {name: loaded model}, loaded on demand."""
    from ..models.attributes import load_attribute_model

    x = validate.images(x, "x")
    loaded = dict(attribute_models or {})
    out: dict[str, torch.Tensor] = {}
    raw: dict[str, dict] = {}
    with torch.no_grad():
        for attr, (model_name, head) in ATTRIBUTES.items():
            if model_name not in loaded:
                loaded[model_name] = load_attribute_model(model_name, x.device)
            if model_name not in raw:
                raw[model_name] = loaded[model_name](x)
            v = raw[model_name][f"{model_name}/{head}"]
            if attr == "age":
                years = torch.arange(v.shape[-1], dtype=v.dtype, device=v.device)
                out[attr] = (v * years).sum(-1) if v.shape[-1] > 1 else v.reshape(-1)
            else:
                out[attr] = v.reshape(v.shape[0], -1)
    return out


def attribute_cossim(x: torch.Tensor, x_tilde: torch.Tensor, attribute_models: dict | None = None) -> dict[str, torch.Tensor]:
    """CosSim of Eq. 11 per attribute and image: cos(A(x̃), A(x)) for the
    categorical attributes (lower = better protected), |age(x̃) − age(x)| in
    years for age (higher = better protected)."""
    validate.same_batch(x, x_tilde, "x", "x_tilde")
    a, b = attribute_vectors(x, attribute_models), attribute_vectors(x_tilde, attribute_models)
    return {k: (b[k] - a[k]).abs() if k == "age" else F.cosine_similarity(b[k], a[k], dim=-1) for k in a}


def strict_accuracy(model, x_tilde: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, y: Sequence[int] | torch.Tensor,
                    kappa: float | None = None, far: float = 0.01) -> torch.Tensor:
    """Eq. 10 per pair: 𝕀(s(f(x̃₁), f(x₁)) > κ) and (𝕀(s(f(x̃₁), f(x₂)) > κ) = y), a bool (N,).

    ``x_tilde`` the obfuscated x₁ (N, 3, H, W), ``x1`` their originals, ``x2``
    the pair partners, ``y`` 1 for same identity, 0 otherwise; s is the
    model's own similarity and κ its calibrated threshold at ``far`` unless given.
    The mean over pairs is the paper's acc."""
    validate.same_batch(x_tilde, x1, "x_tilde", "x1")
    validate.same_batch(x1, x2, "x1", "x2")
    y = torch.as_tensor(y, dtype=torch.bool).reshape(-1)
    if y.numel() != x1.shape[0]:
        raise ValueError(f"y must hold one 0/1 label per pair ({x1.shape[0]}); got {y.numel()}")
    kappa = model.threshold(far) if kappa is None else validate.number(kappa, "kappa")
    with torch.no_grad():
        return strict_decisions(model, model(x_tilde), model(x1), model(x2), y, kappa)


def strict_decisions(model, e_tilde: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor, y: torch.Tensor,
                     kappa: float) -> torch.Tensor:
    """Eq. 10 per pair from embeddings (f(x̃₁), f(x₁), f(x₂)) — what :func:`strict_accuracy`
    computes, for callers that embed each image once and reuse it across pairs."""
    y = torch.as_tensor(y, dtype=torch.bool).reshape(-1)
    own = model.similarity(e_tilde, e1) > kappa
    match = model.similarity(e_tilde, e2) > kappa
    return own & (match == y.to(own.device))


def utility_privacy(model, x: torch.Tensor, x_tilde: torch.Tensor, *, sigma: float = 0.1, kappa: float | None = None,
                    far: float = 0.01, samples: int = 4, attribute_models: dict | None = None, seed: int = 0) -> torch.Tensor:
    """UP(σ, κ) of Eq. 9 per image, a Monte-Carlo mean over ``samples`` noise draws
    x ~ N(x, σ²), x̃ ~ N(x̃, σ²) (clipped to [0,1]) of
    𝕀(s(f(x̃), f(x)) > κ) + mean over emotion/race/gender of (1 − CosSim)."""
    validate.same_batch(x, x_tilde, "x", "x_tilde")
    sigma = validate.non_negative(sigma, "sigma")
    samples = validate.integer(samples, "samples")
    kappa = model.threshold(far) if kappa is None else validate.number(kappa, "kappa")
    gen = torch.Generator(device="cpu").manual_seed(validate.seed(seed))
    total = torch.zeros(x.shape[0])
    for _ in range(samples):
        xn = (x + sigma * torch.randn(x.shape, generator=gen).to(x)).clamp(0, 1)
        xtn = (x_tilde + sigma * torch.randn(x.shape, generator=gen).to(x)).clamp(0, 1)
        with torch.no_grad():
            utility = (model.similarity(model(xtn), model(xn)) > kappa).float().cpu()
        cs = attribute_cossim(xn, xtn, attribute_models)
        privacy = torch.stack([1 - cs[k].cpu() for k in ("emotion", "race", "gender")]).mean(0)
        total += utility + privacy
    return total / samples
