"""PSNR, SSIM and MMD between protected and original images."""
import math

import pytest
import torch

from facelab.metrics.quality import mmd, psnr, ssim


def test_psnr_known_values():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1] += 1 / 255
    p = psnr(y, x)
    assert p[0].item() == pytest.approx(20.0, abs=1e-4)
    assert p[1].item() == pytest.approx(20 * math.log10(255), abs=1e-3)
    assert math.isinf(psnr(x, x)[0].item())


def test_ssim_identical_and_degraded():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-4)
    small = (x + 2 / 255 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    big = (x + 20 / 255 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert (ssim(big, x) < ssim(small, x)).all()
    with pytest.raises(ValueError):
        ssim(x, x[:1])


def test_mmd_metric():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 16, 16, generator=gen)
    assert mmd(x, x) == pytest.approx(0.0, abs=1e-5)
    assert 0 < mmd((x + 2 / 255).clamp(0, 1), x) < mmd((x + 12 / 255).clamp(0, 1), x) <= 2.0
    with pytest.raises(ValueError, match=r"x must have values in \[0,1\]"):
        mmd(x + 12 / 255, x)  # images outside [0,1] are refused, like every metric's
