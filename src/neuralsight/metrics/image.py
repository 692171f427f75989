"""Pixel-level image metrics: MSE, PSNR, SSIM and PixCorr.

Every function takes reconstructions and true images as ``[N, C, H, W]`` arrays in [0, 1]
(PyTorch tensors or NumPy arrays, any float dtype) and compares image *i* of one with image
*i* of the other. The ``*_per_image`` functions return one value per image (a float64
tensor ``[N]``); `image_metrics` returns their means as plain floats.

- MSE: mean squared error over channels and pixels.
- PSNR: ``10 log10(1 / MSE)`` in dB (``data_range = 1``), computed per image and then
  averaged; a perfect reconstruction has infinite PSNR.
- SSIM: the structural similarity index of Wang et al. (2004) through torchmetrics, with
  ``data_range = 1`` and a Gaussian window of σ = 1.5 (11 x 11 pixels). On images whose
  shorter side is below 11 pixels σ shrinks so that the window fits (`ssim_sigma`).
- PixCorr: Pearson r between the flattened reconstruction and the flattened true image.
  Where either image is constant, r is undefined and this module defines it as 0 (no linear
  relation can be measured), so a blank reconstruction scores 0, not NaN.

Images are processed in chunks of ``batch_size`` and in float64, so large test sets fit in
memory and known answers (MSE 0.01 -> PSNR 20 dB) hold to many digits.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

ImageBatch = torch.Tensor | np.ndarray

SSIM_SIGMA = 1.5
"""σ of SSIM's Gaussian window (Wang et al. 2004); the window spans 11 x 11 pixels."""

SSIM_WINDOW = 11
"""Side, in pixels, of the window torchmetrics builds from `SSIM_SIGMA`."""


def as_image_tensor(images: ImageBatch, name: str = "images") -> torch.Tensor:
    """Return ``images`` as a float64 tensor ``[N, C, H, W]``, checking its rank.

    Parameters
    ----------
    images
        Tensor or NumPy array ``[N, C, H, W]``.
    name
        How error messages call the argument.

    Examples
    --------
    >>> import numpy as np
    >>> as_image_tensor(np.zeros((2, 1, 4, 4), np.float32)).dtype
    torch.float64
    """
    tensor = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if tensor.ndim != 4:
        raise ValueError(
            f"'{name}' must have shape [N, C, H, W], found shape {tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"'{name}' must hold floats in [0, 1], found dtype {tensor.dtype}")
    return tensor.detach().to(torch.float64)


def check_pair(pred: ImageBatch, target: ImageBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a reconstruction batch and its true images, and check that their shapes match.

    Examples
    --------
    >>> import torch
    >>> p, t = check_pair(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    >>> tuple(p.shape)
    (2, 1, 4, 4)
    """
    pred_t = as_image_tensor(pred, "pred")
    target_t = as_image_tensor(target, "target")
    if pred_t.shape != target_t.shape:
        raise ValueError(
            "'pred' and 'target' must have the same shape [N, C, H, W], found "
            f"pred {tuple(pred_t.shape)} and target {tuple(target_t.shape)}"
        )
    if pred_t.shape[0] == 0:
        raise ValueError("'pred' and 'target' hold no images (N = 0)")
    return pred_t, target_t.to(pred_t.device)


def _chunks(pred: torch.Tensor, target: torch.Tensor, batch_size: int):
    for start in range(0, pred.shape[0], batch_size):
        yield pred[start : start + batch_size], target[start : start + batch_size]


def mse_per_image(pred: ImageBatch, target: ImageBatch, batch_size: int = 256) -> torch.Tensor:
    """Mean squared error of each image, ``[N]``.

    Examples
    --------
    >>> import torch
    >>> mse_per_image(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.1))
    tensor([0.0100, 0.0100], dtype=torch.float64)
    """
    pred_t, target_t = check_pair(pred, target)
    parts = [((p - t) ** 2).flatten(1).mean(1) for p, t in _chunks(pred_t, target_t, batch_size)]
    return torch.cat(parts)


def psnr_per_image(pred: ImageBatch, target: ImageBatch, batch_size: int = 256) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image in dB, ``10 log10(1 / MSE)``, ``[N]``.

    A perfect reconstruction gives ``inf``.

    Examples
    --------
    >>> import torch
    >>> psnr_per_image(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
    tensor([20.0000], dtype=torch.float64)
    """
    return 10.0 * torch.log10(1.0 / mse_per_image(pred, target, batch_size))


def ssim_sigma(height: int, width: int) -> float:
    """σ of the Gaussian SSIM window for images of this size.

    1.5 (an 11 x 11 window) where both sides are at least 11 pixels; otherwise the largest σ
    whose window (torchmetrics uses ``2 * int(3.5 σ + 0.5) + 1`` pixels) fits the shorter side.

    Examples
    --------
    >>> ssim_sigma(28, 28), round(ssim_sigma(8, 8), 3)
    (1.5, 0.857)
    """
    side = min(height, width)
    if side >= SSIM_WINDOW:
        return SSIM_SIGMA
    radius = (side - 1) // 2
    if radius < 1:
        raise ValueError(f"SSIM needs images of at least 3 x 3 pixels, found {height} x {width}")
    return radius / 3.5


def ssim_per_image(pred: ImageBatch, target: ImageBatch, batch_size: int = 64) -> torch.Tensor:
    """Structural similarity of each image (Wang et al. 2004), ``data_range = 1``, ``[N]``.

    Colour images are scored per channel and averaged, as torchmetrics does.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 1, 28, 28)
    >>> ssim_per_image(x, x)
    tensor([1., 1.], dtype=torch.float64)
    """
    pred_t, target_t = check_pair(pred, target)
    sigma = ssim_sigma(pred_t.shape[2], pred_t.shape[3])
    parts = [
        structural_similarity_index_measure(
            p, t, gaussian_kernel=True, sigma=sigma, data_range=1.0, reduction="none"
        )
        for p, t in _chunks(pred_t, target_t, batch_size)
    ]
    # torchmetrics types the result Tensor | tuple; a tuple comes only with return_full_image.
    return torch.cat(parts)  # type: ignore[arg-type]


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r between matching rows of two ``[N, D]`` tensors, 0 where a row is constant.

    Computed in float64 (float32 sums over 10^5 features lose about 1e-4 of r).

    Examples
    --------
    >>> import torch
    >>> r = pearson_rows(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
    >>> r.round(decimals=6).tolist()
    [-1.0]
    """
    a, b = a.double(), b.double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.where(norm > 0, r, torch.zeros_like(r)).clamp(-1.0, 1.0)


def pixcorr_per_image(pred: ImageBatch, target: ImageBatch, batch_size: int = 256) -> torch.Tensor:
    """Pearson r between each flattened reconstruction and its true image, ``[N]``.

    A constant image (in either batch) gives 0.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 3, 8, 8)
    >>> pixcorr_per_image(x, 1 - x).round(decimals=6).tolist()
    [-1.0, -1.0]
    """
    pred_t, target_t = check_pair(pred, target)
    parts = [
        pearson_rows(p.flatten(1), t.flatten(1)) for p, t in _chunks(pred_t, target_t, batch_size)
    ]
    return torch.cat(parts)


def image_metrics(pred: ImageBatch, target: ImageBatch) -> dict[str, float]:
    """Mean MSE, PSNR (dB), SSIM and PixCorr of reconstructions against their true images.

    Parameters
    ----------
    pred, target
        ``[N, C, H, W]`` in [0, 1], same shape; tensors or NumPy arrays.

    Returns
    -------
    dict
        ``{"mse", "psnr", "ssim", "pixcorr"}``, each the mean over the N images (PSNR is
        the mean of per-image PSNR; ``inf`` when any image is reconstructed exactly).

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(3, 1, 28, 28)
    >>> {name: round(value, 6) for name, value in image_metrics(x, x).items()}
    {'mse': 0.0, 'psnr': inf, 'ssim': 1.0, 'pixcorr': 1.0}
    """
    pred_t, target_t = check_pair(pred, target)
    return {
        "mse": float(mse_per_image(pred_t, target_t).mean()),
        "psnr": float(psnr_per_image(pred_t, target_t).mean()),
        "ssim": float(ssim_per_image(pred_t, target_t).mean()),
        "pixcorr": float(pixcorr_per_image(pred_t, target_t).mean()),
    }
