import numpy as np
import pytest
import torch

from facelab.ops import (
    accumulate_momentum, clip_to_budget, gaussian_kernel, input_diversity, lp_norm, project, random_in_ball,
    steepest_step, translation_invariant,
)


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    return x, (x + torch.randn(x.shape, generator=g)).clamp(-1, 2)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_clip_to_budget_respects_eps_and_box(pair, norm):
    x, x_adv = pair
    eps = 8 / 255 if norm == "linf" else 0.5
    out = clip_to_budget(x_adv, x, eps, norm)
    assert (lp_norm(out - x, norm) <= eps + 1e-6).all()
    assert out.min() >= 0 and out.max() <= 1
    # inside the budget already: unchanged
    small = x + project(x_adv - x, eps / 10, norm)
    assert torch.allclose(clip_to_budget(small.clamp(0, 1), x, eps, norm), small.clamp(0, 1))


def test_l2_projection_scales_onto_the_sphere():
    d = torch.ones(2, 3, 4, 4)
    p = project(d, 1.0, "l2")
    assert torch.allclose(lp_norm(p, "l2"), torch.ones(2))
    assert torch.allclose(p / p.flatten()[0], d)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_inside_the_ball_and_seeded(norm):
    x = torch.zeros(2, 3, 8, 8)
    a = random_in_ball(x, 0.1, norm, torch.Generator().manual_seed(3))
    b = random_in_ball(x, 0.1, norm, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (lp_norm(a, norm) <= 0.1 + 1e-6).all() and (lp_norm(a, norm) > 0).all()


def test_steepest_step():
    g = torch.tensor([[[[3.0, -4.0]]]])
    assert torch.equal(steepest_step(g, "linf"), torch.tensor([[[[1.0, -1.0]]]]))
    assert torch.allclose(steepest_step(g, "l2"), g / 5)
    with pytest.raises(ValueError):
        lp_norm(g, "l1")


def test_momentum_normalises_by_mean_abs_gradient():
    grad = torch.tensor([[[[2.0, -2.0]]]])
    g1 = accumulate_momentum(torch.zeros_like(grad), grad, 1.0)
    assert torch.allclose(g1, torch.tensor([[[[1.0, -1.0]]]]))
    g2 = accumulate_momentum(g1, grad * 10, 0.5)
    assert torch.allclose(g2, 0.5 * g1 + torch.tensor([[[[1.0, -1.0]]]]))


def _dong_reference_kernel(kernlen: int, nsig: float) -> np.ndarray:
    """TI's reference construction (Dong et al. 2019): normal pdf on linspace(-nsig, nsig, kernlen)."""
    x = np.linspace(-nsig, nsig, kernlen)
    pdf = np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)
    k = np.outer(pdf, pdf)
    return k / k.sum()


@pytest.mark.parametrize("size,nsig", [(7, 3.0), (15, 3.0), (5, 2.0)])
def test_gaussian_kernel_matches_dong_et_al(size, nsig):
    k = gaussian_kernel(size, nsig)
    np.testing.assert_allclose(k.numpy(), _dong_reference_kernel(size, nsig), rtol=1e-5, atol=1e-7)
    assert torch.isclose(k.sum(), torch.tensor(1.0)) and torch.allclose(k, k.T)


def test_gaussian_kernel_refuses_bad_sizes():
    assert torch.equal(gaussian_kernel(1), torch.ones(1, 1))
    for bad in (4, 0, -3, 7.0):
        with pytest.raises(ValueError, match="odd int"):
            gaussian_kernel(bad)
    with pytest.raises(ValueError, match="nsig"):
        gaussian_kernel(7, 0.0)


def test_ti_smoothing_is_a_zero_padded_convolution():
    k = gaussian_kernel(7)
    spike = torch.zeros(1, 3, 11, 11)
    spike[..., 5, 5] = 1
    assert torch.allclose(translation_invariant(spike, k)[0, 0, 2:9, 2:9], k, atol=1e-6)
    flat = torch.ones(1, 3, 10, 10)
    out = translation_invariant(flat, k)
    assert torch.allclose(out[..., 3:7, 3:7], flat[..., 3:7, 3:7], atol=1e-6)  # interior: unchanged
    corner = float(k[3:, 3:].sum())  # zero padding: a corner sees only a quarter of the kernel
    assert torch.allclose(out[..., 0, 0], torch.tensor(corner), atol=1e-6)


def test_input_diversity_shape_determinism_and_probability():
    x = torch.rand(2, 3, 32, 32)
    a = input_diversity(x, 1.0, 0.8, torch.Generator().manual_seed(1))
    b = input_diversity(x, 1.0, 0.8, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    # the zero padding frames a shrunken copy
    assert (a == 0).any()
    assert torch.equal(input_diversity(x, 0.0, 0.8, torch.Generator().manual_seed(1)), x)
    x.requires_grad_(True)
    input_diversity(x, 1.0, 0.8, torch.Generator().manual_seed(2)).sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        input_diversity(x, 1.5)


def test_affine_rotation_jitter_identity_seeding_and_shared_copies():
    from facelab.ops import affine_rotation_jitter

    x = torch.rand(2, 3, 12, 12)
    same = affine_rotation_jitter(x, torch.Generator().manual_seed(0), std_range=(0.0, 0.0))
    assert torch.allclose(same, x, atol=1e-5)  # no jitter: the identity warp
    a = affine_rotation_jitter(x, torch.Generator().manual_seed(3))
    b = affine_rotation_jitter(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.allclose(a, x, atol=1e-3)
    rep = affine_rotation_jitter(x.repeat_interleave(4, 0), torch.Generator().manual_seed(3), repeats=4)
    assert torch.equal(rep[0], rep[3]) and not torch.equal(rep[0], rep[4])
    with pytest.raises(ValueError, match="multiple"):
        affine_rotation_jitter(torch.rand(3, 3, 8, 8), repeats=2)
