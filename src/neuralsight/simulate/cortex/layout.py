"""Where the electrodes are: Utah arrays in V1, V4 and IT, their RFs, and RF pooling.

``"tvsd"`` places V1 and V4 array centres in the lower visual field near the fovea and IT
arrays at the fovea; ``"spread"`` spreads each area's arrays on a golden-angle spiral.
Electrode RF centres follow the retinotopic map across the array's grid, plus scatter; RF
size grows with eccentricity and along the hierarchy (`AREA_PARAMETERS`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neuralsight.simulate.cortex.parameters import AREA_PARAMETERS


def electrode_layout(
    area: str, n_arrays: int, n_el: int, layout: str, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The electrodes of one area's arrays: RF centres and sizes, latencies, SNRs.

    Returns columns of the units table (``rf_x``, ``rf_y``, ``rf_sigma``, ``array``,
    ``electrode``, ``latency_ms``, ``snr``) and ``uniform``, the fraction of each
    electrode's pooling that is uniform over the image.

    Examples
    --------
    >>> columns = electrode_layout("V1", 2, 4, "tvsd", np.random.default_rng(0))
    >>> columns["array"].tolist(), columns["electrode"].tolist()
    ([0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 2, 3, 0, 1, 2, 3])
    """
    p = AREA_PARAMETERS[area]
    centres = _array_centres(area, n_arrays, layout, rng)
    grid = _electrode_grid(n_el)
    xy, array_id, latency = [], [], []
    lo, hi = p.latency_range_ms
    for k, centre in enumerate(centres):
        ecc = float(np.hypot(*centre))
        angle = rng.uniform(0, 2 * np.pi)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        spread = p.array_spread * (1 + 2 * ecc)
        offsets = grid @ rotation.T * spread
        scatter = rng.normal(0, p.rf_scatter * (1 + ecc), (n_el, 2))
        xy.append(np.clip(centre + offsets + scatter, -0.98, 0.98))
        array_id.append(np.full(n_el, k))
        array_latency = rng.uniform(lo + (hi - lo) / 4, hi - (hi - lo) / 4)
        latency.append(np.clip(rng.normal(array_latency, (hi - lo) / 8, n_el), lo, hi))
    points = np.concatenate(xy)
    ecc = np.hypot(points[:, 0], points[:, 1])
    n = len(points)
    sigma = (p.sigma_at_fovea + p.sigma_slope * ecc) * rng.lognormal(0, 0.15, n)
    return {
        "rf_x": points[:, 0],
        "rf_y": points[:, 1],
        "rf_sigma": sigma,
        "array": np.concatenate(array_id),
        "electrode": np.tile(np.arange(n_el), n_arrays),
        "latency_ms": np.concatenate(latency),
        "snr": p.snr_median * rng.lognormal(0, 0.4, n),
        "uniform": rng.uniform(*p.uniform_pool, n),
    }


def pooling_weights(layout: dict[str, np.ndarray], coords: np.ndarray) -> torch.Tensor:
    """RF pooling weights ``[E, n * n]`` of one area's electrodes on the grid ``coords``.

    Each row is the electrode's Gaussian, mixed with its uniform component, summing to 1.
    """
    gx = coords[None, :] - layout["rf_x"][:, None]
    gy = coords[None, :] - layout["rf_y"][:, None]
    inv = 1.0 / (2 * layout["rf_sigma"][:, None, None] ** 2)
    gauss = np.exp(-(gy[:, :, None] ** 2 + gx[:, None, :] ** 2) * inv).reshape(len(gx), -1)
    gauss /= gauss.sum(1, keepdims=True)
    uniform = layout["uniform"][:, None]
    weights = (1 - uniform) * gauss + uniform / gauss.shape[1]
    return torch.from_numpy(weights.astype(np.float32))


def pooling(layouts: dict[str, dict[str, np.ndarray]], image_size: int) -> dict[str, torch.Tensor]:
    """Pooling weights per area at its feature maps' resolution (V1 sparse, pruned at 1e-3)."""
    weights_of: dict[str, torch.Tensor] = {}
    for area, factor in (("V1", 2), ("V4", 4), ("IT", 8)):
        if area not in layouts:
            continue
        weights = pooling_weights(layouts[area], pixel_centres(image_size, factor))
        if area == "V1":
            weights = torch.where(weights > weights.amax(1, keepdim=True) * 1e-3, weights, 0)
            weights = (weights / weights.sum(1, keepdim=True)).to_sparse()
        weights_of[area] = weights
    return weights_of


def _array_centres(area: str, n: int, layout: str, rng: np.random.Generator) -> np.ndarray:
    p = AREA_PARAMETERS[area]
    if layout == "spread":
        golden = np.pi * (3 - np.sqrt(5))
        radius = 0.6 * np.sqrt((np.arange(n) + 0.5) / n)
        angle = golden * np.arange(n) + rng.uniform(0, 2 * np.pi)
        return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    ecc = rng.uniform(*p.eccentricity_range, n)
    if area == "IT":
        angle = rng.uniform(0, 2 * np.pi, n)
        return np.stack([ecc * np.cos(angle), ecc * np.sin(angle)], 1)
    below = rng.uniform(np.radians(10), np.radians(80), n)
    side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return np.stack([side * ecc * np.cos(below), ecc * np.sin(below)], 1)


def _electrode_grid(n: int) -> np.ndarray:
    side = math.ceil(math.sqrt(n))
    axis = np.linspace(-1, 1, side) if side > 1 else np.zeros(1)
    gx, gy = np.meshgrid(axis, axis)
    return np.stack([gx.ravel(), gy.ravel()], 1)[:n]


def pixel_centres(image_size: int, factor: int) -> np.ndarray:
    """Normalised coordinates of pixel centres after average-pooling by ``factor``."""
    centres = -1.0 + (2.0 * np.arange(image_size) + 1.0) / image_size
    return centres.reshape(-1, factor).mean(1)
