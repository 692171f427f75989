"""Pixel metrics (MSE, PSNR, SSIM, PixCorr) and colourfulness on images with known answers."""

import math

import numpy as np
import pytest
import torch

from neuralsight.metrics.colour import colourfulness, colourfulness_per_image
from neuralsight.metrics.image import (
    image_metrics,
    mse_per_image,
    pixcorr_per_image,
    psnr_per_image,
    ssim_per_image,
    ssim_sigma,
)


def random_images(n=4, channels=1, size=28, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_identical_images_score_perfectly():
    x = random_images(channels=3, size=32)
    metrics = image_metrics(x, x)
    assert metrics["mse"] == 0.0
    assert metrics["psnr"] == math.inf
    assert metrics["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["pixcorr"] == pytest.approx(1.0, abs=1e-9)
    assert set(metrics) == {"mse", "psnr", "ssim", "pixcorr"}


def test_psnr_of_a_known_mse():
    target = torch.full((2, 1, 16, 16), 0.5)
    pred = target + 0.1  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert mse_per_image(pred, target).tolist() == pytest.approx([0.01, 0.01])
    assert psnr_per_image(pred, target).tolist() == pytest.approx([20.0, 20.0])
    assert image_metrics(pred, target)["psnr"] == pytest.approx(20.0)


def test_pixcorr_of_an_image_and_its_negative_is_minus_one():
    x = random_images(n=3)
    assert pixcorr_per_image(x, 1 - x).tolist() == pytest.approx([-1.0] * 3)


def test_pixcorr_of_a_constant_image_is_zero():
    x = random_images(n=2)
    blank = torch.full_like(x, 0.3)
    assert pixcorr_per_image(blank, x).tolist() == [0.0, 0.0]


def test_ssim_ranks_noisier_reconstructions_lower_on_small_images():
    x = random_images(n=3, size=28)
    generator = torch.Generator().manual_seed(1)
    slightly = (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    very = (x + 0.3 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    assert (ssim_per_image(slightly, x) > ssim_per_image(very, x)).all()
    assert (ssim_per_image(slightly, x) < 1).all()


def test_ssim_window_fits_tiny_images():
    assert ssim_sigma(32, 32) == 1.5
    x = random_images(n=2, size=8)
    assert ssim_per_image(x, x).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="at least 3 x 3"):
        ssim_per_image(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2))


def test_numpy_and_torch_inputs_agree():
    x = random_images(seed=2)
    y = random_images(seed=3)
    assert image_metrics(x.numpy(), y.numpy()) == pytest.approx(image_metrics(x, y))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 1, 8, 8\).*\(2, 1, 9, 8\)"):
        image_metrics(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 9, 8))
    with pytest.raises(ValueError, match=r"'pred' must have shape \[N, C, H, W\]"):
        image_metrics(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))


def test_grey_images_have_no_colourfulness():
    grey_rgb = np.repeat(np.random.default_rng(0).random((2, 1, 8, 8)), 3, axis=1)
    assert colourfulness_per_image(grey_rgb).tolist() == pytest.approx([0.0, 0.0])
    assert colourfulness(np.random.default_rng(0).random((2, 1, 8, 8))) == 0.0


def test_colourfulness_of_a_red_and_blue_image_matches_hand_computation():
    image = np.zeros((1, 3, 4, 4))
    image[0, 0, :, :2] = 1.0  # left half pure red
    image[0, 2, :, 2:] = 1.0  # right half pure blue
    # red pixels: rg = 255, yb = 127.5; blue pixels: rg = 0, yb = -255 (half each)
    rg_mean, rg_std = 127.5, 127.5
    yb_mean, yb_std = (127.5 - 255) / 2, (127.5 + 255) / 2
    expected = math.hypot(rg_std, yb_std) + 0.3 * math.hypot(rg_mean, yb_mean)
    assert colourfulness(image) == pytest.approx(expected)
