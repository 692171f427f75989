"""Retina simulator: ON and OFF retinal ganglion cell (RGC) spike counts for any image or video.

This is the "spike encoder" of SID (Zhang et al., Neural Networks 2020): a seeded population
of RGCs turns stimuli into Poisson spike counts that decoders learn to invert. The pipeline:

1. **Contrast.** Each image (colour images through Rec. 709 luminance weights, the [0, 1]
   values taken as linear luminance) becomes Weber contrast ``(L - L0) / L0`` relative to an
   adaptation level ``L0``: the image's own mean luminance (``adaptation=None``, default) or a
   fixed level; ``L0`` is floored at ``ADAPTATION_FLOOR`` so a black image stays finite. The
   contrast is multiplied by ``contrast``. Outside the image the contrast is zero (mean grey).
2. **Spatial stage.** Separate ON and OFF mosaics tile the image as jittered hexagonal grids.
   Centre Gaussians have a width set by the mosaic spacing; surrounds are 2-3x wider and
   weaker (difference of Gaussians). Two cell models:

   - ``"ln"``: the generator signal is the DoG-filtered contrast (sign-flipped for OFF cells).
   - ``"subunit"``: the centre pools bipolar-like subunits, small Gaussians on a grid finer
     than the mosaic, each rectified (``max(x, leak * x)``, ON subunits see the contrast,
     OFF subunits its negative) and pooled with Gaussian weights over the centre; a linear
     surround is subtracted. Such cells respond to fine contrast-reversing gratings at both
     phases (Y-like frequency doubling), which a linear decoder cannot undo.

3. **Nonlinearity.** ``rate = max_rate * sigmoid(gain * g + offset)`` with the offset chosen
   so that a uniform grey image (``g = 0``) gives the cell's baseline (drawn per cell in
   ``baseline_hz``) and the rate saturates below ``max_rate_hz``; the gain varies per cell.
4. **Spikes.** Poisson counts in ``n_bins`` equal bins of a ``window_ms`` window; a static
   image drives a constant rate over the window and repeats are independent trials.

Videos pass through a causal biphasic temporal filter (difference of two gamma functions),
applied to the linear signals before any rectification (the subunit inputs and the linear
drive), so the response to a frame depends on the recent frames. `RetinaStream` encodes a
stream frame by frame with the same result as `RetinaSimulator.simulate_video`.

Coordinates are normalised image coordinates in [-1, 1]: ``x`` runs along the width (left -1,
right +1), ``y`` along the height (top row -1, bottom row +1), and pixel centres sit at
``-1 + (2k + 1) / size`` (the ``torch.nn.functional.grid_sample`` convention with
``align_corners=False``). Receptive fields are isotropic in these coordinates, hence
elliptical in pixels for non-square images. ``rf_sigma``, ``surround_sigma`` and
``subunit_sigma`` are Gaussian standard deviations in the same units.

Everything is seeded: the mosaic and the per-cell parameters come from ``seed``; spike
sampling from the ``seed`` given to a call, by default one derived from the simulator seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sparse
from scipy.special import erf, expit

from neuralsight import __version__
from neuralsight.data.dataset import NeuralDataset

CellModel = Literal["ln", "subunit"]
CELL_MODELS = ("ln", "subunit")
LUMINANCE_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
ADAPTATION_FLOOR = 0.05
RF_UNITS = "normalised [-1, 1] image coordinates"
RESPONSE_UNITS = "spike counts"

PRESETS: dict[str, dict[str, Any]] = {
    "realistic": {"cell_model": "subunit"},
    "ln": {"cell_model": "ln"},
}
"""Named parameter sets for `simulate_retina`: ``"realistic"`` uses subunit cells (not
linearly decodable), ``"ln"`` a purely linear-nonlinear population."""

_MOSAIC_STREAM = 0
_SPIKE_STREAM = 1
_IMAGES_PER_CHUNK = 512
_FRAMES_PER_CHUNK = 256
_POISSON_VALUES_PER_CHUNK = 2**22
_MOSAIC_SHRINK = 0.97
_SPARSE_TOLERANCE = 1e-4


@dataclass
class _SubunitLayer:
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
        return self.blur_y.shape[0] * self.blur_x.shape[0]


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise ValueError(
            f"parameter '{name}' must be a range (lo, hi) with {low} <= lo <= hi <= {high}, "
            f"found {value}"
        )


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"parameter '{name}' must be > 0, found {value}")


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


def biphasic_kernel(
    frame_ms: float,
    tau_fast_ms: float = 12.0,
    tau_slow_ms: float = 25.0,
    biphasic_ratio: float = 0.8,
    order: int = 3,
) -> np.ndarray:
    """A causal biphasic temporal filter sampled at the frame interval.

    ``h(t) = gamma(t; tau_fast) - biphasic_ratio * gamma(t; tau_slow)`` with unit-area gamma
    functions ``(t / tau)**order * exp(-t / tau)``, integrated over each frame interval and
    covering ``10 * tau_slow_ms``. It is scaled so its step response peaks at 1: a newly shown
    image drives a cell as strongly as in `RetinaSimulator.rates`, then the drive relaxes to
    the kernel's sum (about 0.35 for the defaults) as the image stays on.

    Parameters
    ----------
    frame_ms
        Frame interval in ms.
    tau_fast_ms, tau_slow_ms
        Time constants of the positive and negative lobes (peaks at ``order * tau``).
    biphasic_ratio
        Area of the negative lobe relative to the positive one, in [0, 1].
    order
        Order of the gamma functions.

    Returns
    -------
    np.ndarray
        float32 ``[n_taps]``; tap ``k`` weighs the frame ``k`` frames ago (tap 0: the current).

    Examples
    --------
    >>> kernel = biphasic_kernel(10.0)
    >>> float(kernel[:5].sum() > 0), float(kernel[8:].sum() < 0), round(float(kernel.cumsum().max()), 3)
    (1.0, 1.0, 1.0)
    """
    _check_positive("frame_ms", frame_ms)
    _check_positive("tau_fast_ms", tau_fast_ms)
    _check_positive("tau_slow_ms", tau_slow_ms)
    if not 0.0 <= biphasic_ratio <= 1.0:
        raise ValueError(f"parameter 'biphasic_ratio' must lie in [0, 1], found {biphasic_ratio}")
    n_taps = max(1, math.ceil(10.0 * tau_slow_ms / frame_ms))
    samples_per_tap = 32
    t = (np.arange(n_taps * samples_per_tap) + 0.5) * (frame_ms / samples_per_tap)
    curve = _unit_gamma(t, tau_fast_ms, order) - biphasic_ratio * _unit_gamma(t, tau_slow_ms, order)
    taps = curve.reshape(n_taps, samples_per_tap).mean(axis=1) * frame_ms
    return (taps / np.cumsum(taps).max()).astype(np.float32)


def _unit_gamma(t: np.ndarray, tau: float, order: int) -> np.ndarray:
    return (t / tau) ** order * np.exp(-t / tau) / (tau * math.factorial(order))


def _causal_filter(
    features: np.ndarray, kernel: np.ndarray, history: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``[F, T]`` along time with ``kernel``, preceded by ``history`` (oldest first).

    Returns the filtered ``[F, T]`` and the new history (the last ``len(kernel) - 1`` frames).
    The sum runs in the same order for any chunking, so chunked and whole results agree.
    """
    lags = len(kernel) - 1
    extended = np.concatenate([history, features], axis=1)
    n_frames = features.shape[1]
    filtered = kernel[0] * extended[:, lags:]
    for lag in range(1, lags + 1):
        filtered += kernel[lag] * extended[:, lags - lag : lags - lag + n_frames]
    return filtered, extended[:, extended.shape[1] - lags :].copy()


def validate_images(
    images: np.ndarray, name: str, size: tuple[int, int] | None = None, ndim: int = 4
) -> np.ndarray:
    """Check images ``[N, C, H, W]`` (or ``[C, H, W]`` with ``ndim=3``) in [0, 1].

    Parameters
    ----------
    images
        Numeric images with 1 or 3 channels.
    name
        The parameter name used in error messages.
    size
        Required ``(height, width)``; ``None`` accepts any.
    ndim
        4 for a stack ``[N, C, H, W]``, 3 for one image ``[C, H, W]``.

    Returns
    -------
    numpy.ndarray
        ``images`` as float32 (not copied when it already is).

    Raises
    ------
    ValueError
        When the shape, dtype, channel count or size is wrong, or a value is not finite
        or lies outside [0, 1]; the message names ``name``.

    Examples
    --------
    >>> validate_images(np.zeros((2, 1, 8, 8), np.uint8), "images").dtype
    dtype('float32')
    >>> validate_images(np.full((1, 3, 4, 4), 2.0), "frames")
    Traceback (most recent call last):
    ...
    ValueError: 'frames' values must lie in [0, 1], found [2, 2]
    """
    layout = "[N, C, H, W]" if ndim == 4 else "[C, H, W]"
    array = np.asarray(images)
    if array.ndim != ndim:
        raise ValueError(f"'{name}' must have shape {layout}, found shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"'{name}' must hold numbers, found dtype {array.dtype}")
    channels, height, width = array.shape[-3:]
    if channels not in (1, 3):
        raise ValueError(
            f"'{name}' must have 1 or 3 channels in {layout}, found {channels} "
            f"(shape {array.shape})"
        )
    if size is not None and (height, width) != size:
        raise ValueError(
            f"'{name}' must be {size[0]}x{size[1]} pixels (the simulator's image_size), "
            f"found {height}x{width}"
        )
    array = array.astype(np.float32, copy=False)
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"'{name}' holds NaN or infinite values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"'{name}' values must lie in [0, 1], found [{array.min():.4g}, {array.max():.4g}]"
        )
    return array


class RetinaSimulator:
    """A seeded population of ON and OFF retinal ganglion cells with Poisson spiking.

    Parameters
    ----------
    image_size
        ``(height, width)`` of the stimuli, or one int for square images.
    n_cells
        Total number of cells; ``round(on_fraction * n_cells)`` are ON cells (listed first).
    cell_model
        ``"subunit"`` (rectified subunits pooled over the centre, minus a linear surround) or
        ``"ln"`` (linear difference of Gaussians); see the module docstring.
    on_fraction
        Fraction of ON cells.
    contrast
        Multiplier on the Weber contrast of the stimuli.
    adaptation
        Adaptation luminance ``L0`` in (0, 1]; ``None`` uses each image's (frame's) mean
        luminance. ``L0`` is floored at ``ADAPTATION_FLOOR``.
    max_rate_hz
        Saturation rate; no cell fires faster.
    baseline_hz
        Range of per-cell baseline rates (response to a uniform grey image), drawn uniformly.
    gain
        Median slope of the nonlinearity, per unit of generator signal (contrast); per-cell
        gains are log-normal around it (sd 0.25 in log units).
    window_ms, n_bins
        Counting window after stimulus onset and the number of equal bins in it.
    seed
        Seed of the mosaic and the per-cell parameters; also the default spike seed.
    coverage
        Centre sigma as a fraction of the mosaic spacing (per-cell spread 10%).
    surround_scale
        Range of surround sigma / centre sigma.
    surround_weight
        Range of surround volume / centre volume.
    mosaic_jitter
        Positional jitter as a fraction of the mosaic spacing.
    subunit_scale
        Subunit sigma as a fraction of the layer's median centre sigma; subunits sit on a grid
        with a spacing of 1.5 subunit sigmas (never finer than a pixel).
    subunit_leak
        Slope of the subunit rectifier for negative inputs (0: full rectification, 1: linear).
    tau_fast_ms, tau_slow_ms, biphasic_ratio
        Temporal filter for videos, see `biphasic_kernel`.

    Examples
    --------
    >>> import numpy as np
    >>> retina = RetinaSimulator(16, n_cells=20, seed=1)
    >>> images = np.random.default_rng(0).random((3, 1, 16, 16))
    >>> retina.rates(images).shape, retina.counts(images, repeats=2).shape
    ((3, 20), (6, 20, 1))
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        n_cells: int = 300,
        cell_model: CellModel = "subunit",
        on_fraction: float = 0.5,
        contrast: float = 1.0,
        adaptation: float | None = None,
        max_rate_hz: float = 100.0,
        baseline_hz: tuple[float, float] = (2.0, 10.0),
        gain: float = 10.0,
        window_ms: float = 200.0,
        n_bins: int = 1,
        seed: int = 0,
        *,
        coverage: float = 0.55,
        surround_scale: tuple[float, float] = (2.0, 3.0),
        surround_weight: tuple[float, float] = (0.5, 0.8),
        mosaic_jitter: float = 0.15,
        subunit_scale: float = 0.35,
        subunit_leak: float = 0.3,
        tau_fast_ms: float = 12.0,
        tau_slow_ms: float = 25.0,
        biphasic_ratio: float = 0.8,
    ) -> None:
        height, width = (
            (image_size,) * 2 if isinstance(image_size, int | np.integer) else image_size
        )
        self.image_size = (int(height), int(width))
        self.params: dict[str, Any] = {
            "image_size": list(self.image_size),
            "n_cells": int(n_cells),
            "cell_model": cell_model,
            "on_fraction": float(on_fraction),
            "contrast": float(contrast),
            "adaptation": None if adaptation is None else float(adaptation),
            "max_rate_hz": float(max_rate_hz),
            "baseline_hz": [float(v) for v in baseline_hz],
            "gain": float(gain),
            "window_ms": float(window_ms),
            "n_bins": int(n_bins),
            "seed": int(seed),
            "coverage": float(coverage),
            "surround_scale": [float(v) for v in surround_scale],
            "surround_weight": [float(v) for v in surround_weight],
            "mosaic_jitter": float(mosaic_jitter),
            "subunit_scale": float(subunit_scale),
            "subunit_leak": float(subunit_leak),
            "tau_fast_ms": float(tau_fast_ms),
            "tau_slow_ms": float(tau_slow_ms),
            "biphasic_ratio": float(biphasic_ratio),
        }
        self._validate_params()
        self.cell_model: CellModel = cell_model
        self.n_cells = int(n_cells)
        self.contrast = float(contrast)
        self.adaptation = adaptation
        self.max_rate_hz = float(max_rate_hz)
        self.window_ms = float(window_ms)
        self.n_bins = int(n_bins)
        self.seed = int(seed)
        self.subunit_leak = np.float32(subunit_leak)
        self.units = self._build_population()
        self._offset = np.log(self._baseline / (self.max_rate_hz - self._baseline)).astype(
            np.float32
        )
        self._layers = self._build_subunit_layers() if cell_model == "subunit" else []
        self._drive = self._build_drive_matrix()

    def _validate_params(self) -> None:
        p = self.params
        if min(self.image_size) < 1:
            raise ValueError(f"parameter 'image_size' must be positive, found {self.image_size}")
        if p["n_cells"] < 1:
            raise ValueError(f"parameter 'n_cells' must be >= 1, found {p['n_cells']}")
        if p["cell_model"] not in CELL_MODELS:
            raise ValueError(
                f"parameter 'cell_model' must be one of {CELL_MODELS}, found {p['cell_model']!r}"
            )
        if not 0.0 <= p["on_fraction"] <= 1.0:
            raise ValueError(
                f"parameter 'on_fraction' must lie in [0, 1], found {p['on_fraction']}"
            )
        if p["adaptation"] is not None and not 0.0 < p["adaptation"] <= 1.0:
            raise ValueError(
                f"parameter 'adaptation' must be None or lie in (0, 1], found {p['adaptation']}"
            )
        for name in ("contrast", "max_rate_hz", "gain", "window_ms", "n_bins", "coverage"):
            _check_positive(name, p[name])
        _check_range("baseline_hz", tuple(p["baseline_hz"]), 1e-3, p["max_rate_hz"] / 2)
        _check_range("surround_scale", tuple(p["surround_scale"]), 1.0, math.inf)
        _check_range("surround_weight", tuple(p["surround_weight"]), 0.0, 1.0)
        if not 0.0 <= p["subunit_leak"] <= 1.0:
            raise ValueError(
                f"parameter 'subunit_leak' must lie in [0, 1], found {p['subunit_leak']}"
            )
        _check_positive("subunit_scale", p["subunit_scale"])
        biphasic_kernel(1.0, p["tau_fast_ms"], p["tau_slow_ms"], p["biphasic_ratio"])

    def _build_population(self) -> pd.DataFrame:
        p = self.params
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _MOSAIC_STREAM]))
        n_on = round(p["on_fraction"] * self.n_cells)
        on_points, on_spacing = hex_mosaic(n_on, rng, p["mosaic_jitter"])
        off_points, off_spacing = hex_mosaic(self.n_cells - n_on, rng, p["mosaic_jitter"])
        n = self.n_cells
        self._polarity = np.repeat(np.array([1.0, -1.0]), [n_on, n - n_on])
        spacing = np.repeat([on_spacing, off_spacing], [n_on, n - n_on])
        points = np.concatenate([on_points, off_points])
        self._x, self._y = points[:, 0], points[:, 1]
        self._sigma = p["coverage"] * spacing * np.exp(rng.normal(0.0, 0.1, n))
        self._surround_sigma = self._sigma * rng.uniform(*p["surround_scale"], n)
        self._surround_weight = rng.uniform(*p["surround_weight"], n)
        self._baseline = rng.uniform(*p["baseline_hz"], n)
        self._gain = (p["gain"] * np.exp(rng.normal(0.0, 0.25, n))).astype(np.float32)
        return pd.DataFrame(
            {
                "unit_id": np.arange(n),
                "area": np.where(self._polarity > 0, "RGC-ON", "RGC-OFF"),
                "polarity": self._polarity.astype(np.int64),
                "rf_x": self._x,
                "rf_y": self._y,
                "rf_sigma": self._sigma,
                "surround_sigma": self._surround_sigma,
                "surround_weight": self._surround_weight,
                "subunit_sigma": np.full(n, np.nan),
                "baseline_hz": self._baseline,
                "max_rate_hz": np.full(n, self.max_rate_hz),
                "gain": self._gain.astype(np.float64),
            }
        )

    def _build_subunit_layers(self) -> list[_SubunitLayer]:
        layers = []
        for sign in (1.0, -1.0):
            cells = np.flatnonzero(self._polarity == sign)
            if len(cells):
                layers.append(self._subunit_layer(cells, sign))
                self.units.loc[cells, "subunit_sigma"] = layers[-1].sigma
        return layers

    def _subunit_layer(self, cells: np.ndarray, sign: float) -> _SubunitLayer:
        height, width = self.image_size
        sigma = self.params["subunit_scale"] * float(np.median(self._sigma[cells]))
        centres_x = _grid_centres(1.5 * sigma, width)
        centres_y = _grid_centres(1.5 * sigma, height)
        blur_x = pixel_gaussians(centres_x, np.full(len(centres_x), sigma), width)
        blur_y = sign * pixel_gaussians(centres_y, np.full(len(centres_y), sigma), height)
        grid_y, grid_x = np.meshgrid(centres_y, centres_x, indexing="ij")
        cell_sigma = self._sigma[cells]
        distance2 = (grid_x.reshape(-1, 1) - self._x[cells]) ** 2 + (
            grid_y.reshape(-1, 1) - self._y[cells]
        ) ** 2
        cell_area = (2.0 / len(centres_x)) * (2.0 / len(centres_y))
        pool = np.exp(-distance2 / (2 * cell_sigma**2)) * cell_area / (2 * np.pi * cell_sigma**2)
        return _SubunitLayer(
            cells=cells,
            blur_y=blur_y.astype(np.float32),
            blur_x=blur_x.astype(np.float32),
            pool=_sparsify(pool.T),
            sigma=sigma,
        )

    def _build_drive_matrix(self) -> sparse.csr_matrix:
        """Sparse ``[n_cells, H * W]`` linear drive: DoG for LN cells, surround for subunit cells."""
        surround = -self._surround_weight * self._gaussian_maps(self._surround_sigma)
        drive = (
            surround
            if self.cell_model == "subunit"
            else self._gaussian_maps(self._sigma) + surround
        )
        return _sparsify((self._polarity * drive).T)

    def _gaussian_maps(self, sigmas: np.ndarray) -> np.ndarray:
        height, width = self.image_size
        along_y = pixel_gaussians(self._y, sigmas, height)
        along_x = pixel_gaussians(self._x, sigmas, width)
        return np.einsum("iy,ix->yxi", along_y, along_x).reshape(height * width, -1)

    @property
    def bin_edges_ms(self) -> np.ndarray:
        """``[n_bins + 1]`` edges of the counting bins, ms after stimulus onset."""
        return np.linspace(0.0, self.window_ms, self.n_bins + 1)

    def receptive_fields(self) -> np.ndarray:
        """Linear receptive field maps, signed by polarity.

        For LN cells, the difference of Gaussians. For subunit cells, the response to small
        increments (ON) or decrements (OFF), where every subunit works on its linear branch:
        the pooled subunit footprint minus the surround.

        Returns
        -------
        np.ndarray
            float32 ``[n_cells, H, W]``, change of generator signal per unit of contrast in
            each pixel.

        Examples
        --------
        >>> maps = RetinaSimulator(16, n_cells=10, cell_model="ln").receptive_fields()
        >>> maps.shape
        (10, 16, 16)
        """
        height, width = self.image_size
        maps = self._drive.toarray().reshape(self.n_cells, height, width)
        for layer in self._layers:
            pool = layer.pool.toarray().T.reshape(len(layer.blur_y), len(layer.blur_x), -1)
            maps[layer.cells] += np.einsum(
                "yxi,yr,xc->irc", pool, layer.blur_y, layer.blur_x, optimize=True
            )
        return maps

    def contrast_images(self, images: np.ndarray) -> np.ndarray:
        """Luminance contrast the cells see: ``contrast * (L - L0) / L0``, float32 ``[N, H, W]``.

        Examples
        --------
        >>> import numpy as np
        >>> retina = RetinaSimulator(4, n_cells=4)
        >>> float(retina.contrast_images(np.full((1, 1, 4, 4), 0.3)).max())
        0.0
        """
        return self._contrast(validate_images(images, "images", self.image_size))

    def _contrast(self, images: np.ndarray) -> np.ndarray:
        if images.shape[1] == 3:
            luminance = np.tensordot(LUMINANCE_WEIGHTS, images, axes=([0], [1]))
        else:
            luminance = images[:, 0]
        if self.adaptation is None:
            level = luminance.mean(axis=(1, 2), keepdims=True)
        else:
            level = np.full((len(images), 1, 1), self.adaptation, dtype=np.float32)
        level = np.maximum(level, ADAPTATION_FLOOR)
        return (self.contrast * (luminance - level) / level).astype(np.float32)

    def _linear_features(self, contrast: np.ndarray) -> np.ndarray:
        """``[F, N]``: subunit inputs of each layer, then the linear drive of every cell.

        Images run along the last axis so every product is a plain (or sparse) matrix product
        without transposed copies.
        """
        n, height, width = contrast.shape
        pixels_first = np.ascontiguousarray(contrast.transpose(1, 2, 0))
        parts = []
        for layer in self._layers:
            columns = (layer.blur_y @ pixels_first.reshape(height, -1)).reshape(-1, width, n)
            maps = np.einsum("xw,ywn->yxn", layer.blur_x, columns, optimize=True)
            parts.append(maps.reshape(-1, n))
        parts.append(self._drive @ pixels_first.reshape(height * width, n))
        return np.concatenate(parts)

    def _rates_from_features(self, features: np.ndarray) -> np.ndarray:
        """``[N, n_cells]`` rates in Hz from ``[F, N]`` linear features."""
        generator = features[len(features) - self.n_cells :].copy()
        start = 0
        for layer in self._layers:
            inputs = features[start : start + layer.n_subunits]
            generator[layer.cells] += layer.pool @ np.maximum(inputs, self.subunit_leak * inputs)
            start += layer.n_subunits
        drive = self._gain[:, None] * generator + self._offset[:, None]
        return np.ascontiguousarray((self.max_rate_hz * expit(drive)).T, dtype=np.float32)

    def rates(self, images: np.ndarray) -> np.ndarray:
        """Firing rates of every cell to static images.

        Parameters
        ----------
        images
            ``[N, C, H, W]`` in [0, 1], ``C`` in {1, 3}, ``H, W`` equal to ``image_size``.

        Returns
        -------
        np.ndarray
            float32 ``[N, n_cells]`` in Hz, between 0 and ``max_rate_hz``.

        Examples
        --------
        >>> import numpy as np
        >>> retina = RetinaSimulator(8, n_cells=6)
        >>> grey = np.full((1, 1, 8, 8), 0.5)
        >>> bool(np.allclose(retina.rates(grey)[0], retina.units["baseline_hz"], rtol=1e-4))
        True
        """
        images = validate_images(images, "images", self.image_size)
        out = np.empty((len(images), self.n_cells), dtype=np.float32)
        for start in range(0, len(images), _IMAGES_PER_CHUNK):
            chunk = self._contrast(images[start : start + _IMAGES_PER_CHUNK])
            out[start : start + len(chunk)] = self._rates_from_features(
                self._linear_features(chunk)
            )
        return out

    def spike_rng(self, seed: int | None = None) -> np.random.Generator:
        """The spike-sampling generator: from ``seed``, or derived from the simulator seed."""
        if seed is None:
            return np.random.default_rng(np.random.SeedSequence([self.seed, _SPIKE_STREAM]))
        return np.random.default_rng(seed)

    def counts(self, images: np.ndarray, repeats: int = 1, seed: int | None = None) -> np.ndarray:
        """Poisson spike counts of every cell to static images.

        Parameters
        ----------
        images
            ``[N, C, H, W]`` in [0, 1].
        repeats
            Independent trials per image.
        seed
            Spike seed; ``None`` derives one from the simulator seed (same output every call).

        Returns
        -------
        np.ndarray
            float32 ``[N * repeats, n_cells, n_bins]``, stimulus-major: row ``i * repeats + r``
            is repeat ``r`` of image ``i``.

        Examples
        --------
        >>> import numpy as np
        >>> retina = RetinaSimulator(8, n_cells=6, n_bins=4)
        >>> retina.counts(np.full((2, 1, 8, 8), 0.5), repeats=3, seed=7).shape
        (6, 6, 4)
        """
        if not (isinstance(repeats, int | np.integer) and repeats >= 1):
            raise ValueError(f"parameter 'repeats' must be an integer >= 1, found {repeats!r}")
        return self.sample_counts(self.rates(images), int(repeats), self.spike_rng(seed))

    def sample_counts(
        self, rates: np.ndarray, repeats: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw Poisson counts for ``[N, n_cells]`` rates in Hz (see `counts` for the layout).

        Examples
        --------
        >>> import numpy as np
        >>> retina = RetinaSimulator(8, n_cells=3, window_ms=1000.0)
        >>> retina.sample_counts(np.zeros((1, 3)), 2, np.random.default_rng(0)).sum()
        np.float32(0.0)
        """
        n_images = len(rates)
        bin_s = self.window_ms / self.n_bins / 1000.0
        out = np.empty((n_images * repeats, self.n_cells, self.n_bins), dtype=np.float32)
        step = max(1, _POISSON_VALUES_PER_CHUNK // (repeats * self.n_cells * self.n_bins))
        for start in range(0, n_images, step):
            expected = np.asarray(rates[start : start + step], dtype=np.float64) * bin_s
            shape = (len(expected), repeats, self.n_cells, self.n_bins)
            draws = rng.poisson(np.broadcast_to(expected[:, None, :, None], shape))
            out[start * repeats : (start + len(expected)) * repeats] = draws.reshape(
                -1, self.n_cells, self.n_bins
            )
        return out

    def temporal_kernel(self, frame_ms: float) -> np.ndarray:
        """The biphasic temporal filter at ``frame_ms`` per frame, see `biphasic_kernel`."""
        p = self.params
        return biphasic_kernel(frame_ms, p["tau_fast_ms"], p["tau_slow_ms"], p["biphasic_ratio"])

    def stream(self, frame_ms: float = 33.3, seed: int | None = None) -> RetinaStream:
        """A `RetinaStream` encoding frames one at a time (same result as `simulate_video`)."""
        return RetinaStream(self, frame_ms=frame_ms, seed=seed)

    def simulate_video(
        self, frames: np.ndarray, frame_ms: float = 33.3, seed: int | None = None
    ) -> np.ndarray:
        """Spike counts per frame interval for a video, through the biphasic temporal filter.

        Before the first frame the retina saw mean grey (zero contrast). With the default
        ``adaptation=None`` every frame's contrast is taken relative to its own mean.

        Parameters
        ----------
        frames
            ``[T, C, H, W]`` in [0, 1].
        frame_ms
            Duration of one frame in ms; counts are per frame interval.
        seed
            Spike seed; ``None`` derives one from the simulator seed.

        Returns
        -------
        np.ndarray
            float32 ``[T, n_cells]`` spike counts.

        Examples
        --------
        >>> import numpy as np
        >>> retina = RetinaSimulator(8, n_cells=6)
        >>> retina.simulate_video(np.random.default_rng(0).random((5, 1, 8, 8))).shape
        (5, 6)
        """
        frames = validate_images(frames, "frames", self.image_size)
        stream = self.stream(frame_ms=frame_ms, seed=seed)
        chunks = [
            stream.encode(frames[start : start + _FRAMES_PER_CHUNK])
            for start in range(0, len(frames), _FRAMES_PER_CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.n_cells), np.float32)


def _sparsify(weights: np.ndarray) -> sparse.csr_matrix:
    """float32 CSR copy of ``[n_cells, n_inputs]`` weights without each row's negligible tail.

    Entries below ``_SPARSE_TOLERANCE`` times the row's largest magnitude are dropped (Gaussian
    tails beyond about 4 sigma), which makes pooling a sparse product: fast for single frames
    and for batches.
    """
    magnitude = np.abs(weights)
    kept = magnitude >= _SPARSE_TOLERANCE * magnitude.max(axis=1, keepdims=True)
    return sparse.csr_matrix(np.where(kept, weights, 0.0).astype(np.float32))


def _grid_centres(spacing: float, n_pixels: int) -> np.ndarray:
    """Centres of a regular grid over [-1, 1] with about ``spacing``, never finer than a pixel."""
    n = int(np.clip(round(2.0 / spacing), 1, n_pixels))
    return -1.0 + (2.0 * np.arange(n) + 1.0) / n


class RetinaStream:
    """Encode a video frame by frame, keeping the temporal filter's memory between frames.

    ``push`` gives, frame after frame, exactly the counts `RetinaSimulator.simulate_video`
    gives for the whole video with the same seed.

    Parameters
    ----------
    simulator
        The retina.
    frame_ms
        Duration of one frame in ms.
    seed
        Spike seed; ``None`` derives one from the simulator seed.

    Examples
    --------
    >>> import numpy as np
    >>> retina = RetinaSimulator(8, n_cells=6)
    >>> stream = RetinaStream(retina, frame_ms=20.0, seed=3)
    >>> stream.push(np.full((1, 8, 8), 0.5)).shape
    (6,)
    """

    def __init__(self, simulator: RetinaSimulator, frame_ms: float = 33.3, seed: int | None = None):
        self.simulator = simulator
        self.frame_ms = float(frame_ms)
        self.seed = seed
        self.kernel = simulator.temporal_kernel(self.frame_ms)
        self.reset()

    def reset(self) -> None:
        """Forget the past frames (back to mean grey) and restart the spike generator."""
        n_features = sum(layer.n_subunits for layer in self.simulator._layers)
        n_features += self.simulator.n_cells
        self._history = np.zeros((n_features, len(self.kernel) - 1), dtype=np.float32)
        self._rng = self.simulator.spike_rng(self.seed)
        self.rates = np.zeros((0, self.simulator.n_cells), dtype=np.float32)

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Encode one ``[C, H, W]`` frame; returns float32 ``[n_cells]`` counts.

        The rates behind the counts are kept in ``self.rates`` (``[1, n_cells]`` Hz).
        """
        frame = validate_images(frame, "frame", self.simulator.image_size, ndim=3)
        return self.encode(frame[None])[0]

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Encode the next ``[T, C, H, W]`` frames; returns float32 ``[T, n_cells]`` counts.

        The rates behind the counts are kept in ``self.rates`` (``[T, n_cells]`` Hz).
        """
        sim = self.simulator
        features = sim._linear_features(sim.contrast_images(frames))
        filtered, self._history = _causal_filter(features, self.kernel, self._history)
        self.rates = sim._rates_from_features(filtered)
        expected = self.rates.astype(np.float64) * (self.frame_ms / 1000.0)
        return self._rng.poisson(expected).astype(np.float32)


def split_spike_seeds(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The spike streams of the train and the test trials of `simulate_retina` with ``seed``.

    Examples
    --------
    >>> train, test = split_spike_seeds(0)
    >>> int(np.random.default_rng(train).integers(10**6)) != int(np.random.default_rng(test).integers(10**6))
    True
    """
    train, test = np.random.SeedSequence([seed, _SPIKE_STREAM]).spawn(2)
    return train, test


def simulate_retina(
    train_images: np.ndarray,
    test_images: np.ndarray,
    preset: str = "realistic",
    n_cells: int = 300,
    repeats_train: int = 1,
    repeats_test: int = 1,
    seed: int = 0,
    **overrides: Any,
) -> NeuralDataset:
    """Simulate a retinal recording of train and test images as a `NeuralDataset`.

    Parameters
    ----------
    train_images, test_images
        ``[N, C, H, W]`` in [0, 1], the same ``C, H, W`` for both.
    preset
        A key of `PRESETS`: ``"realistic"`` (subunit cells) or ``"ln"``.
    n_cells
        Number of cells.
    repeats_train, repeats_test
        Trials per train and test image.
    seed
        Seed of the mosaic and of the spikes (train and test draw independent streams).
    **overrides
        Any other `RetinaSimulator` parameter, overriding the preset.

    Returns
    -------
    NeuralDataset
        Stimuli are the train then the test images; trials are stimulus-major within each
        split (train trials first); units are the mosaic table; ``meta`` records the
        simulator, preset, seed, version and all parameters.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((5, 1, 12, 12))
    >>> ds = simulate_retina(images[:4], images[4:], n_cells=10, repeats_test=3)
    >>> ds.n_trials, ds.n_units, ds.split.tolist().count("test")
    (7, 10, 3)
    """
    if preset not in PRESETS:
        raise ValueError(f"parameter 'preset' must be one of {sorted(PRESETS)}, found {preset!r}")
    train = validate_images(train_images, "train_images")
    test = validate_images(test_images, "test_images")
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(
            f"'test_images' must match 'train_images' in [C, H, W] = {train.shape[1:]}, "
            f"found {test.shape[1:]}"
        )
    for name, value in (("repeats_train", repeats_train), ("repeats_test", repeats_test)):
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise ValueError(f"parameter '{name}' must be an integer >= 1, found {value!r}")
    params = {**PRESETS[preset], **overrides}
    retina = RetinaSimulator(image_size=train.shape[2:], n_cells=n_cells, seed=seed, **params)
    train_seed, test_seed = split_spike_seeds(seed)
    responses = np.concatenate(
        [
            retina.sample_counts(
                retina.rates(train), repeats_train, np.random.default_rng(train_seed)
            ),
            retina.sample_counts(
                retina.rates(test), repeats_test, np.random.default_rng(test_seed)
            ),
        ]
    )
    stimulus_id = np.concatenate(
        [
            np.repeat(np.arange(len(train)), repeats_train),
            len(train) + np.repeat(np.arange(len(test)), repeats_test),
        ]
    )
    split = np.repeat(["train", "test"], [len(train) * repeats_train, len(test) * repeats_test])
    return NeuralDataset(
        responses=responses,
        stimuli=np.concatenate([train, test]),
        stimulus_id=stimulus_id,
        units=retina.units.copy(),
        bin_edges_ms=retina.bin_edges_ms,
        split=split,
        meta=retina_meta(retina, preset, seed, repeats_train, repeats_test),
    )


def retina_meta(
    retina: RetinaSimulator, preset: str, seed: int, repeats_train: int, repeats_test: int
) -> dict[str, Any]:
    """The provenance `simulate_retina` records: simulator, preset, seed, version, parameters.

    Examples
    --------
    >>> meta = retina_meta(RetinaSimulator(8, n_cells=4), "realistic", 0, 1, 2)
    >>> meta["simulator"], meta["repeats_test"], meta["parameters"]["n_cells"]
    ('retina', 2, 4)
    """
    return {
        "simulator": "retina",
        "preset": preset,
        "cell_model": retina.cell_model,
        "seed": int(seed),
        "neuralsight_version": __version__,
        "rf_units": RF_UNITS,
        "response_units": RESPONSE_UNITS,
        "trial_order": "train then test; stimulus-major within each (repeats adjacent)",
        "repeats_train": int(repeats_train),
        "repeats_test": int(repeats_test),
        "parameters": retina.params,
    }
