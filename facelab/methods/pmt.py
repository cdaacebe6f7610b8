"""PMT: privacy minimization transformation (Wang et al., "Facial Data
Minimization: Shallow Model as Your Privacy Filter").

The service shares the first layers of its face model, the *shallow model*
E_c (:meth:`facelab.models.FaceModel.shallow`), with its users.  A user
uploads not the photo x but an obfuscated image x̃ that starts from random
noise and is optimised until the shallow features match,

    min_x̃ ‖E_c(x̃) − E_c(x)‖²                                        (Eq. 7, Alg. 1)

so the authorized model still recognises x̃ as x while x̃ looks like noise to
people and to other (unauthorized) models.  §5.3 / Alg. 2 add three
robustness options — the initialisation, an augmentation T applied to x and
x̃ before E_c, layer aggregation (AvgPool2d of every shallow layer,
concatenated) — and translation-invariant smoothing of the gradient with a
linear or Gaussian kernel W.  MR-PMT (Eq. 8) sums the distance over several
authorized models.

Choices facelab makes where the paper is silent or garbled (docs/pmt.md):

* **Descent with the sign of the smoothed gradient.**  Alg. 1 line 7 prints
  x̃ ← x̃ + α·∇J (ascent, no sign) but the text says "we derive the gradient
  sign to update" and the aim is to *minimise* J.  Alg. 2 line 7 is garbled
  (J divided by its own gradient) and line 8 convolves "J/‖∇J‖₁".  facelab
  reads lines 7–8 as: J = ‖z − z̃‖², g = ∇_x̃ J, δ = W ⊗ (g/‖g‖₁), and the
  update x̃ ← clip_[0,1](x̃ − α·sign(δ)) — TI-FGSM's form (Dong et al. 2019,
  the paper's [54]).  The L1 normalisation does not change the sign; it is
  kept so δ is Alg. 2's quantity.
* **A step size that decays.**  The paper gives neither K nor α.  A constant
  sign step leaves x̃ oscillating ±α around the optimum; facelab uses
  α_i = α·(1 − i/K) + α_min·i/K (linear decay from ``alpha`` to ``alpha_min``).
* **Relative distances.**  Each authorized model's term is
  ‖z̃ − z‖² / ‖z‖² so that MR-PMT's sum (Eq. 8, which as printed adds raw
  distances whose scale differs by orders of magnitude across the pool)
  weighs every authorized model alike.  For one model this only rescales J,
  which the sign step ignores.
* **The initial image** ``"noise"``: clip(0.5 + ``init_std``·N(0,1)) (Alg. 1's
  randn_like, moved to the [0,1] pixel range); ``"shuffle"`` (Table 3's
  "random sort"): x's pixels in a random order (colours kept together);
  ``"blur"``: x blurred with a Gaussian of σ = ``blur_sigma`` px (kornia).
* **Augmentation T** is one random transform applied to x *and* x̃ at each
  step (fresh every step), so E_c(T(x)) and E_c(T(x̃)) are compared as the
  paper says: ``"noise"`` adds the same N(0, ``noise_std``²) to both,
  ``"affine"`` warps both by the same random rotation (±10°), shift (±5 %)
  and scale (0.95–1.05) (kornia), ``"mix"`` does the affine warp then the noise.
* **Layer aggregation** pools every shallow layer with AvgPool2d(``pool``)
  (the paper names AvgPool2d, not its size) and concatenates the flattened
  results; without it only the last layer, E_c(x) itself, is matched.
* **Kernel length** k: the kernel spans i, j ∈ [−k, k] (size 2k+1); the
  linear kernel is (1 − |i|/(k+1))(1 − |j|/(k+1)), the Gaussian has σ = k/√3
  (§5.3), both normalised to sum 1; the paper's choice is Gaussian with k = 1.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import validate
from ..models.shallow import ShallowModel
from ..ops.smoothing import translation_invariant
from ..steps import Step

INITS: tuple[str, ...] = ("noise", "shuffle", "blur")
AUGMENTS: tuple[str, ...] = ("none", "noise", "affine", "mix")
KERNELS: tuple[str, ...] = ("none", "linear", "gaussian")


# -- the pieces of Alg. 2 ---------------------------------------------------------


def ti_kernel(kind: str, k: int = 1) -> torch.Tensor | None:
    """W of §5.3, shape (2k+1, 2k+1), summing to 1: ``"linear"``
    (1 − |i|/(k+1))(1 − |j|/(k+1)) or ``"gaussian"`` exp(−(i²+j²)/2σ²) with
    σ = k/√3; ``"none"`` → None (no smoothing)."""
    kind = validate.choice(kind, "kernel", KERNELS)
    if kind == "none":
        return None
    k = validate.integer(k, "k", hint="the kernel length: the kernel spans [-k, k], the paper uses 1")
    i = torch.arange(-k, k + 1, dtype=torch.float64)
    if kind == "linear":
        w1 = 1 - i.abs() / (k + 1)
        w = torch.outer(w1, w1)
    else:
        sigma = k / math.sqrt(3)
        w = torch.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * sigma**2))
    return (w / w.sum()).float()


def initial_images(x: torch.Tensor, init: str, generator: torch.Generator, *, init_std: float = 0.5,
                   blur_sigma: float = 4.0) -> torch.Tensor:
    """x̃₀ for ``init`` = ``"noise"`` | ``"shuffle"`` | ``"blur"`` (see the module doc)."""
    init = validate.choice(init, "init", INITS)
    n, c, h, w = x.shape
    if init == "noise":
        noise = torch.randn(x.shape, generator=generator).to(x)
        return (0.5 + init_std * noise).clamp(0, 1)
    if init == "shuffle":
        perms = torch.stack([torch.randperm(h * w, generator=generator) for _ in range(n)]).to(x.device)
        flat = x.flatten(2)
        return flat.gather(2, perms[:, None, :].expand(n, c, h * w)).view_as(x)
    from kornia.filters import gaussian_blur2d

    size = 2 * math.ceil(3 * blur_sigma) + 1
    return gaussian_blur2d(x, (size, size), (blur_sigma, blur_sigma), border_type="reflect").clamp(0, 1)


def random_affine(n: int, size: tuple[int, int], generator: torch.Generator, *, degrees: float = 10.0,
                  translate: float = 0.05, scale: tuple[float, float] = (0.95, 1.05)) -> torch.Tensor:
    """n random 2×3 affine matrices (rotation about the centre, scale, shift) in pixels."""
    from kornia.geometry.transform import get_rotation_matrix2d

    h, w = size
    u = lambda: torch.rand(n, generator=generator)  # noqa: E731
    angle = (u() * 2 - 1) * degrees
    s = scale[0] + u() * (scale[1] - scale[0])
    centre = torch.tensor([[(w - 1) / 2, (h - 1) / 2]]).expand(n, 2)
    m = get_rotation_matrix2d(centre, angle, torch.stack([s, s], -1))
    m[:, 0, 2] += (u() * 2 - 1) * translate * w
    m[:, 1, 2] += (u() * 2 - 1) * translate * h
    return m


def augment_pair(x: torch.Tensor, x_tilde: torch.Tensor, augment: str, generator: torch.Generator,
                 noise_std: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(T(x), T(x̃)) with one random T drawn per image and applied to both (Alg. 2 lines 3–4)."""
    if augment == "none":
        return x, x_tilde
    n = x.shape[0]
    both = torch.cat([x, x_tilde])
    if augment in ("affine", "mix"):
        from kornia.geometry.transform import warp_affine

        m = random_affine(n, tuple(x.shape[-2:]), generator).to(x)
        both = warp_affine(both, m.repeat(2, 1, 1), tuple(x.shape[-2:]), padding_mode="reflection",
                           align_corners=True)
    if augment in ("noise", "mix"):
        noise = noise_std * torch.randn(x.shape, generator=generator).to(x)
        both = (both + noise.repeat(2, 1, 1, 1)).clamp(0, 1)
    return both[:n], both[n:]


def shallow_features(shallow: ShallowModel, x: torch.Tensor, aggregate: bool, pool: int = 2) -> torch.Tensor:
    """The feature vector PMT matches, (N, D): with ``aggregate``, Concat_l AvgPool2d(E_c^l(x))
    over every shallow layer (Alg. 2 lines 1–6); without, E_c(x) flattened (Alg. 1)."""
    if not aggregate:
        return shallow(x).flatten(1)
    feats = shallow.features(x)
    return torch.cat([F.avg_pool2d(f, pool, ceil_mode=True).flatten(1) if f.ndim == 4 else f.flatten(1)
                      for f in feats], 1)


def relative_distance(z_tilde: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """‖z̃ − z‖² / ‖z‖² per row (Eq. 7's distance, scale-free)."""
    return (z_tilde - z).pow(2).sum(1) / z.pow(2).sum(1).clamp_min(1e-12)


def _authorized_list(authorized) -> list[nn.Module]:
    if isinstance(authorized, nn.Module):
        authorized = [authorized]
    if isinstance(authorized, (str, bytes)) or not isinstance(authorized, Sequence):
        raise TypeError(f"authorized must be a face model or a list of them (models.load(name)); got {type(authorized).__name__}")
    if len(authorized) == 0:
        raise ValueError("authorized is empty: PMT needs at least one authorized face model whose shallow "
                         "model the obfuscated image is fitted to, e.g. authorized=models.load('mobileface')")
    for k, m in enumerate(authorized):
        if not isinstance(m, nn.Module) or not hasattr(m, "shallow"):
            raise TypeError(f"authorized[{k}] must be a facelab face model (models.load(name)); got {type(m).__name__}")
    return list(authorized)


# -- the method ---------------------------------------------------------------------


def pmt(
    x: torch.Tensor,
    authorized,
    *,
    n_layers: int = 5,
    steps: int = 200,
    alpha: float = 4 / 255,
    alpha_min: float = 0.25 / 255,
    init: str = "noise",
    augment: str = "noise",
    aggregate: bool = True,
    kernel: str = "gaussian",
    k: int = 1,
    pool: int = 2,
    noise_std: float = 0.1,
    init_std: float = 0.5,
    blur_sigma: float = 4.0,
    monitor: Sequence[nn.Module] = (),
    monitor_every: int | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """Obfuscate the faces ``x`` (N, 3, H, W) for the ``authorized`` model(s)
    (Alg. 1 with Alg. 2's options; a list of models is MR-PMT, Eq. 8).

    ``n_layers``: layers of each authorized model in its shallow model E_c
    (the paper: five).  ``steps`` K and ``alpha`` α (decaying linearly to
    ``alpha_min``, on the [0,1] scale): the sign-step schedule.  ``init``
    ∈ {"noise", "shuffle", "blur"} (Table 3), ``augment`` T ∈ {"none",
    "noise", "affine", "mix"} (Table 4; ``noise_std`` is the noise σ),
    ``aggregate`` layer aggregation with AvgPool2d(``pool``) (Table 4),
    ``kernel`` ∈ {"none", "linear", "gaussian"} with length ``k`` (Table 5).
    Defaults are the paper's final choice: noise init, noise augmentation,
    aggregation, Gaussian kernel, k = 1.  ``monitor``: unauthorized models,
    only watched.

    Yields K + 1 Steps; i = 0 is x̃₀.  ``losses``: ``"loss"`` (N,) the summed
    relative feature distance J at x̃_i on the augmented pair (what step i
    minimises), ``"distance/<model>"`` (N,) each authorized model's term.
    ``state``: ``"distance"`` {authorized model: (N,)} the relative feature
    distance ‖z̃ − z‖²/‖z‖² minimised at this step (the features Alg. 2 matches:
    augmented, aggregated if ``aggregate``); ``"similarity"`` {model: (N,)}
    full-model similarity of x̃ to x (the model's own metric) for the
    authorized and the monitored models, every ``monitor_every`` steps and at
    the first and last (empty on the others; the default None: only the first
    and last, because Alg. 1 never runs the full models and a full forward per
    step made a run 3-6× its floor in ``benchmarks/results/cost.md``);
    ``"ssim"`` (N,) SSIM(x̃, x); ``"alpha"`` the step size used after this step;
    ``"authorized"`` the authorized models' names.
    """
    x = validate.images(x, "x")
    models = _authorized_list(authorized)
    watched = [monitor] if isinstance(monitor, nn.Module) else list(monitor or [])
    init = validate.choice(init, "init", INITS)
    augment = validate.choice(augment, "augment", AUGMENTS)
    kernel = validate.choice(kernel, "kernel", KERNELS)
    steps = validate.integer(steps, "steps", minimum=0, hint="the number of iterations K")
    alpha = validate.step_size(alpha, "linf", "alpha")
    alpha_min = validate.non_negative(alpha_min, "alpha_min", hint="the final step size, <= alpha")
    aggregate = validate.flag(aggregate, "aggregate")
    pool = validate.integer(pool, "pool", hint="the AvgPool2d kernel of layer aggregation")
    noise_std = validate.non_negative(noise_std, "noise_std")
    monitor_every = max(steps, 1) if monitor_every is None else validate.integer(monitor_every, "monitor_every")
    seed = validate.seed(seed)
    shallows = [m.shallow(n_layers) for m in models]
    w = ti_kernel(kernel, k)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = x.detach()

    from kornia.metrics import ssim as kssim

    with torch.no_grad():
        z_fixed = [shallow_features(s, x, aggregate, pool) for s in shallows] if augment == "none" else None
        e_ref = {m.name: m(x) for m in [*models, *watched]}

    def state_of(x_t: torch.Tensor, i: int, a: float, terms: dict) -> dict:
        with torch.no_grad():
            due = i % monitor_every == 0 or i == steps
            sims = {m.name: m.similarity(m(x_t), e_ref[m.name]) for m in models} if due else {}
            if due:
                sims.update({m.name: m.similarity(m(x_t), e_ref[m.name]) for m in watched})
            ssim = kssim(x_t, x, 11).flatten(1).mean(1)
        return {"distance": {n: t.detach() for n, t in terms.items()}, "similarity": sims, "ssim": ssim,
                "alpha": a, "authorized": tuple(m.name for m in models)}

    x_t = initial_images(x, init, gen, init_std=init_std, blur_sigma=blur_sigma)
    for i in range(steps + 1):
        a = alpha * (1 - i / steps) + alpha_min * (i / steps) if steps else alpha
        xa = x_t.clone().requires_grad_(True)
        tx, txa = augment_pair(x, xa, augment, gen, noise_std)
        terms = {}
        for m, s, zf in zip(models, shallows, z_fixed or [None] * len(models)):
            if zf is None:
                with torch.no_grad():
                    zf = shallow_features(s, tx, aggregate, pool)
            terms[m.name] = relative_distance(shallow_features(s, txa, aggregate, pool), zf)
        loss = sum(terms.values())
        losses = {"loss": loss.detach(), **{f"distance/{n}": t.detach() for n, t in terms.items()}}
        if i < steps:
            (g,) = torch.autograd.grad(loss.sum(), xa)
        yield Step(i, x_t, losses, state_of(x_t, i, a, terms))
        if i < steps:
            with torch.no_grad():
                g = g / g.abs().flatten(1).sum(1).clamp_min(1e-20).view(-1, 1, 1, 1)
                delta = translation_invariant(g, w) if w is not None else g
                x_t = (x_t - a * delta.sign()).clamp(0, 1)
