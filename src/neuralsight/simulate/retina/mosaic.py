"""The spatial layout of a simulated retina: mosaics, receptive fields, subunits.

ON and OFF ganglion cells tile the image as jittered hexagonal mosaics (`hex_mosaic`); each
cell gets a centre Gaussian whose width follows the mosaic spacing, a wider, weaker surround,
a baseline rate and a gain, all drawn from the simulator seed (`draw_mosaic`). Gaussians are
integrated over pixels (`pixel_gaussians`) and kept as sparse matrices without their
negligible tails (`sparsify`): the linear drive of every cell (`drive_matrix`) and, for
subunit cells, the bipolar-like subunit layers that feed each polarity (`subunit_layers`).

Coordinates are normalised image coordinates in [-1, 1] (see `neuralsight.simulate.retina`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sparse
from scipy.special import erf

_MOSAIC_STREAM = 0
_MOSAIC_SHRINK = 0.97
_SPARSE_TOLERANCE = 1e-4


@dataclass
class SubunitLayer:
    """The bipolar-like subunits feeding one polarity's cells.

    ``blur_y @ contrast @ blur_x.T`` gives the subunit inputs on an ``[n_y, n_x]`` grid
    (the OFF layer carries a negative sign in ``blur_y``); ``pool`` (sparse,
    ``[n_cells, n_subunits]``) maps the rectified inputs to the cells listed in ``cells``.
    """

    cells: np.ndarray
    blur_y: np.ndarray
    blur_x: np.ndarray
    pool: sparse.csr_matrix
    sigma: float

    @property
    def n_subunits(self) -> int:
        """Subunits in the layer's grid."""
        return self.blur_y.shape[0] * self.blur_x.shape[0]


@dataclass
class Mosaic:
    """Per-cell parameters of a population: ON cells first, then OFF cells.

    ``polarity`` is +1 (ON) or -1 (OFF); ``x``, ``y``, ``sigma``, ``surround_sigma`` are
    in normalised image coordinates; ``baseline`` in Hz; ``gain`` float32.
    """

    polarity: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    surround_sigma: np.ndarray
    surround_weight: np.ndarray
    baseline: np.ndarray
    gain: np.ndarray

    def units(self, max_rate_hz: float, layers: list[SubunitLayer]) -> pd.DataFrame:
        """The units table: ids, ``RGC-ON`` / ``RGC-OFF`` areas, receptive fields, rates."""
        n = len(self.x)
        subunit_sigma = np.full(n, np.nan)
        for layer in layers:
            subunit_sigma[layer.cells] = layer.sigma
        return pd.DataFrame(
            {
                "unit_id": np.arange(n),
                "area": np.where(self.polarity > 0, "RGC-ON", "RGC-OFF"),
                "polarity": self.polarity.astype(np.int64),
                "rf_x": self.x,
                "rf_y": self.y,
                "rf_sigma": self.sigma,
                "surround_sigma": self.surround_sigma,
                "surround_weight": self.surround_weight,
                "subunit_sigma": subunit_sigma,
                "baseline_hz": self.baseline,
                "max_rate_hz": np.full(n, max_rate_hz),
                "gain": self.gain.astype(np.float64),
            }
        )


def draw_mosaic(params: dict[str, Any], seed: int) -> Mosaic:
    """Draw the mosaic and the per-cell parameters of `RetinaSimulator.params` from ``seed``.

    Examples
    --------
    >>> from neuralsight.simulate.retina import RetinaSimulator
    >>> mosaic = draw_mosaic(RetinaSimulator(8, n_cells=6).params, seed=0)
    >>> mosaic.polarity.tolist()
    [1.0, 1.0, 1.0, -1.0, -1.0, -1.0]
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _MOSAIC_STREAM]))
    n = params["n_cells"]
    n_on = round(params["on_fraction"] * n)
    on_points, on_spacing = hex_mosaic(n_on, rng, params["mosaic_jitter"])
    off_points, off_spacing = hex_mosaic(n - n_on, rng, params["mosaic_jitter"])
    spacing = np.repeat([on_spacing, off_spacing], [n_on, n - n_on])
    points = np.concatenate([on_points, off_points])
    sigma = params["coverage"] * spacing * np.exp(rng.normal(0.0, 0.1, n))
    return Mosaic(
        polarity=np.repeat(np.array([1.0, -1.0]), [n_on, n - n_on]),
        x=points[:, 0],
        y=points[:, 1],
        sigma=sigma,
        surround_sigma=sigma * _uniform(rng, params["surround_scale"], n),
        surround_weight=_uniform(rng, params["surround_weight"], n),
        baseline=_uniform(rng, params["baseline_hz"], n),
        gain=(params["gain"] * np.exp(rng.normal(0.0, 0.25, n))).astype(np.float32),
    )


def hex_mosaic(n: int, rng: np.random.Generator, jitter: float = 0.15) -> tuple[np.ndarray, float]:
    """Place ``n`` points in [-1, 1]^2 as a jittered hexagonal mosaic.

    A hexagonal lattice with a random phase is tightened until it holds at least ``n`` points
    inside the square; the surplus is dropped at random and every point is displaced by
    Gaussian jitter of ``jitter`` times the lattice spacing.

    Parameters
    ----------
    n
        Number of points.
    rng
        Random generator.
    jitter
        Standard deviation of the displacement, as a fraction of the spacing.

    Returns
    -------
    points, spacing
        ``[n, 2]`` array of ``(x, y)`` and the lattice spacing (NaN when ``n == 0``).

    Examples
    --------
    >>> import numpy as np
    >>> points, spacing = hex_mosaic(50, np.random.default_rng(0))
    >>> points.shape, bool(np.abs(points).max() <= 1), round(spacing, 2)
    ((50, 2), True, 0.3)
    """
    if n == 0:
        return np.zeros((0, 2)), float("nan")
    spacing = math.sqrt(8.0 / (math.sqrt(3.0) * n))
    points = _hex_lattice(spacing, rng)
    while len(points) < n:
        spacing *= _MOSAIC_SHRINK
        points = _hex_lattice(spacing, rng)
    keep = np.sort(rng.choice(len(points), size=n, replace=False))
    points = points[keep] + rng.normal(0.0, jitter * spacing, size=(n, 2))
    return np.clip(points, -1.0, 1.0), spacing


def _hex_lattice(spacing: float, rng: np.random.Generator) -> np.ndarray:
    row_step = spacing * math.sqrt(3.0) / 2.0
    offset_x, offset_y = rng.uniform(0.0, spacing), rng.uniform(0.0, row_step)
    rows = np.arange(math.ceil(2.0 / row_step) + 1)
    cols = np.arange(-1, math.ceil(2.0 / spacing) + 2)
    row_grid, col_grid = np.meshgrid(rows, cols, indexing="ij")
    x = -1.0 + offset_x + spacing * (col_grid + 0.5 * (row_grid % 2))
    y = -1.0 + offset_y + row_step * row_grid
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    return points[np.all(np.abs(points) <= 1.0, axis=1)]


def pixel_gaussians(centres: np.ndarray, sigmas: np.ndarray, n_pixels: int) -> np.ndarray:
    """Integrate unit-area 1-D Gaussians over the pixels of an axis spanning [-1, 1].

    Parameters
    ----------
    centres, sigmas
        ``[n]`` Gaussian centres and standard deviations in normalised coordinates.
    n_pixels
        Number of pixels along the axis.

    Returns
    -------
    np.ndarray
        ``[n, n_pixels]``: the mass of each Gaussian inside each pixel (rows sum to at most 1).

    Examples
    --------
    >>> import numpy as np
    >>> weights = pixel_gaussians(np.array([0.0]), np.array([0.1]), 32)
    >>> round(float(weights.sum()), 4)
    1.0
    """
    edges = np.linspace(-1.0, 1.0, n_pixels + 1)
    z = (edges[None, :] - centres[:, None]) / (math.sqrt(2.0) * sigmas[:, None])
    return 0.5 * np.diff(erf(z), axis=1)


def _uniform(rng: np.random.Generator, bounds: list[float], n: int) -> np.ndarray:
    low, high = bounds
    return rng.uniform(low, high, n)


def subunit_layers(
    mosaic: Mosaic, image_size: tuple[int, int], subunit_scale: float
) -> list[SubunitLayer]:
    """One `SubunitLayer` per polarity present (ON, then OFF).

    Subunit sigma is ``subunit_scale`` times the layer's median centre sigma; subunits sit
    on a grid with a spacing of 1.5 subunit sigmas (never finer than a pixel).
    """
    layers = []
    for sign in (1.0, -1.0):
        cells = np.flatnonzero(mosaic.polarity == sign)
        if len(cells):
            layers.append(_subunit_layer(mosaic, cells, sign, image_size, subunit_scale))
    return layers


def _subunit_layer(
    mosaic: Mosaic,
    cells: np.ndarray,
    sign: float,
    image_size: tuple[int, int],
    subunit_scale: float,
) -> SubunitLayer:
    height, width = image_size
    sigma = subunit_scale * float(np.median(mosaic.sigma[cells]))
    centres_x = grid_centres(1.5 * sigma, width)
    centres_y = grid_centres(1.5 * sigma, height)
    blur_x = pixel_gaussians(centres_x, np.full(len(centres_x), sigma), width)
    blur_y = sign * pixel_gaussians(centres_y, np.full(len(centres_y), sigma), height)
    grid_y, grid_x = np.meshgrid(centres_y, centres_x, indexing="ij")
    cell_sigma = mosaic.sigma[cells]
    distance2 = (grid_x.reshape(-1, 1) - mosaic.x[cells]) ** 2 + (
        grid_y.reshape(-1, 1) - mosaic.y[cells]
    ) ** 2
    cell_area = (2.0 / len(centres_x)) * (2.0 / len(centres_y))
    pool = np.exp(-distance2 / (2 * cell_sigma**2)) * cell_area / (2 * np.pi * cell_sigma**2)
    return SubunitLayer(
        cells=cells,
        blur_y=blur_y.astype(np.float32),
        blur_x=blur_x.astype(np.float32),
        pool=sparsify(pool.T),
        sigma=sigma,
    )


def drive_matrix(mosaic: Mosaic, image_size: tuple[int, int], cell_model: str) -> sparse.csr_matrix:
    """Sparse ``[n_cells, H * W]`` linear drive: DoG for LN cells, surround for subunit cells."""
    surround = -mosaic.surround_weight * gaussian_maps(mosaic, mosaic.surround_sigma, image_size)
    drive = (
        surround
        if cell_model == "subunit"
        else gaussian_maps(mosaic, mosaic.sigma, image_size) + surround
    )
    return sparsify((mosaic.polarity * drive).T)


def gaussian_maps(mosaic: Mosaic, sigmas: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``[H * W, n_cells]`` unit-area Gaussians of width ``sigmas`` at the cells' centres."""
    height, width = image_size
    along_y = pixel_gaussians(mosaic.y, sigmas, height)
    along_x = pixel_gaussians(mosaic.x, sigmas, width)
    return np.einsum("iy,ix->yxi", along_y, along_x).reshape(height * width, -1)


def sparsify(weights: np.ndarray) -> sparse.csr_matrix:
    """float32 CSR copy of ``[n_cells, n_inputs]`` weights without each row's negligible tail.

    Entries below ``_SPARSE_TOLERANCE`` times the row's largest magnitude are dropped (Gaussian
    tails beyond about 4 sigma), which makes pooling a sparse product: fast for single frames
    and for batches.
    """
    magnitude = np.abs(weights)
    kept = magnitude >= _SPARSE_TOLERANCE * magnitude.max(axis=1, keepdims=True)
    return sparse.csr_matrix(np.where(kept, weights, 0.0).astype(np.float32))


def grid_centres(spacing: float, n_pixels: int) -> np.ndarray:
    """Centres of a regular grid over [-1, 1] with about ``spacing``, never finer than a pixel."""
    n = int(np.clip(round(2.0 / spacing), 1, n_pixels))
    return -1.0 + (2.0 * np.arange(n) + 1.0) / n
