"""Simulated macaque V1/V4/IT multi-unit activity (MUA) of Utah arrays responding to images.

A ground-truth encoder standing in for the THINGS ventral-stream spiking data set (TVSD,
Papale et al. 2025) so that MonkeySee (Le et al., NeurIPS 2024) and the other decoders can
run without a monkey. It models, per electrode:

Layout
    Utah arrays of ``electrodes_per_array`` electrodes in V1, V4 and IT; by default the TVSD
    layout of 7 V1, 4 V4 and 4 IT arrays of 64 electrodes (960 electrodes).
    ``layout="tvsd"`` places V1 and V4 array centres in the lower-left and lower-right
    quadrants near the fovea, as in the TVSD monkeys (the upper visual field is then barely
    sampled), and IT arrays at the fovea; ``layout="spread"`` spreads the array centres of
    each area over the image on a golden-angle spiral, for better coverage.
Receptive fields
    Isotropic Gaussians. Electrode RF centres follow the retinotopic map across their array's
    8 x 8 grid, plus scatter. RF size ``sigma = a + b * eccentricity`` grows with eccentricity
    and along the hierarchy (V1 small, V4 medium, IT large); IT pools further with a uniform
    component over the whole image, so it is nearly position invariant.
Feature selectivity
    Fixed filter banks drawn from the simulator seed, no pretrained network. V1: quadrature
    Gabor energy (complex cells) and rectified even Gabors (simple cells) at 8 orientations and
    2 wavelengths, centre-surround (contrast) luminance on/off, surface luminance on/off
    (blurred luminance above or below mid-grey: V1 MUA follows surface brightness, not only
    edges) and red-green / blue-yellow opponent channels; each electrode has a preferred
    orientation and wavelength, a simple/complex mix, a contrast/surface luminance mix and a
    colour weight. V4: curvature/corner channels (geometric means of V1 energies 45
    degrees apart) and rectified random combinations of V1 channels, pooled over a larger RF
    with sparse excitatory and inhibitory weights. IT: rectified random combinations of V4
    channels, pooled over a large, nearly position-invariant RF, plus a global luminance and
    colour component. Each stage is one ``conv2d`` / FFT over the whole batch, and the RF
    pooling of every electrode one matrix product. The result is compressed by a Naka-Rushton
    nonlinearity.
Time course
    A gamma-shaped transient followed by a sustained level, decaying after the stimulus offset
    (``duration_ms``), at a per-electrode latency (V1 30-50 ms, V4 50-70 ms, IT 80-100 ms; the
    latency is the time the noiseless response first reaches half its peak), sampled in
    ``bin_ms`` bins centred on ``t_start_ms`` to ``t_stop_ms`` (-100 to 200 ms, 1 ms, 301 bins
    with edges -100.5 to 200.5 ms by default), or averaged over one per-area window
    (``mode="window"``; the TVSD windows V1 25-125 ms, V4 50-150 ms, IT 75-175 ms by default).
Noise
    Temporally correlated Gaussian MUA noise (AR(1), 3 ms time constant) with an
    electrode-specific SNR, a per-trial additive baseline offset, and multiplicative gain
    fluctuations per trial that are partly shared within an area. Repeats are independent
    trials.

Units
    Coordinates (``rf_x``, ``rf_y``, ``rf_sigma``) are normalised image coordinates in
    [-1, 1]: x from -1 (left image edge) to +1 (right edge), y from -1 (top edge) to +1
    (bottom edge), pixel k of n centred at -1 + (2k + 1) / n, so lower visual field means ``rf_y > 0`` (the ``torch.nn.functional.grid_sample``
    convention with ``align_corners=False``). With ``field_of_view_deg`` the table also has
    ``rf_x_deg``, ``rf_y_deg``, ``rf_sigma_deg`` (same axes, image width = field of view).
    Responses are normalised MUA in the spirit of the TVSD's normMUA: baseline-subtracted
    (pre-stimulus mean 0) and divided by the electrode's mean noiseless peak response to a
    fixed set of 1/f-noise reference images (so a typical image peaks near 1).

Layout, receptive fields and filters come from the simulator ``seed``; the noise of a call
from its own ``seed``, per stimulus, so results do not depend on how trials are chunked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.signal import lfilter

from neuralsight import __version__
from neuralsight.data.dataset import NeuralDataset

AREAS = ("V1", "V4", "IT")
TVSD_ARRAYS = {"V1": 7, "V4": 4, "IT": 4}
TVSD_WINDOWS_MS = {"V1": (25.0, 125.0), "V4": (50.0, 150.0), "IT": (75.0, 175.0)}
MODES = ("timecourse", "window")
LAYOUTS = ("tvsd", "spread")
RF_UNITS = (
    "normalised [-1, 1] image coordinates: x -1 left to +1 right, y -1 top to +1 bottom "
    "(grid_sample, align_corners=False); rf_sigma in the same units"
)
RESPONSE_UNITS = (
    "normalised MUA (baseline-subtracted, divided by the electrode's mean noiseless peak "
    "response to 1/f-noise reference images)"
)

N_ORIENTATIONS = 8
N_REFERENCE_IMAGES = 32
NOISE_TIME_CONSTANT_MS = 3.0
SUBSAMPLES_PER_MS = 10
_EPS = 1e-6


@dataclass(frozen=True)
class AreaParameters:
    """Ground-truth parameters of one cortical area (normalised image units, ms).

    Attributes
    ----------
    sigma_at_fovea, sigma_slope
        RF Gaussian SD is ``sigma_at_fovea + sigma_slope * eccentricity``, times a lognormal
        jitter of 15 %.
    array_spread
        Half-width of the retinotopic map across one array, at the fovea (grows with
        eccentricity as ``1 + 2 * eccentricity``).
    rf_scatter
        SD of the electrode RF centre scatter around the retinotopic map.
    eccentricity_range
        Range of array-centre eccentricities in the ``"tvsd"`` layout.
    latency_range_ms
        Range of half-peak latencies.
    rise_to_peak_ms, sustained
        Transient time-to-peak after onset, and the sustained level as a fraction of the
        transient.
    snr_median
        Median of the lognormal SNR: peak response to reference images over the SD of the
        1 ms noise.
    uniform_pool
        Range of the fraction of the RF pooling that is uniform over the image.
    naka_rushton_exponent
        Exponent of the contrast-response nonlinearity.
    inhibition
        Weight of the inhibitory feature pool (0 for V1).
    """

    sigma_at_fovea: float
    sigma_slope: float
    array_spread: float
    rf_scatter: float
    eccentricity_range: tuple[float, float]
    latency_range_ms: tuple[float, float]
    rise_to_peak_ms: float
    sustained: float
    snr_median: float
    uniform_pool: tuple[float, float]
    naka_rushton_exponent: float
    inhibition: float


AREA_PARAMETERS = {
    "V1": AreaParameters(
        sigma_at_fovea=0.035,
        sigma_slope=0.08,
        array_spread=0.05,
        rf_scatter=0.015,
        eccentricity_range=(0.12, 0.45),
        latency_range_ms=(30, 50),
        rise_to_peak_ms=12,
        sustained=0.35,
        snr_median=5.0,
        uniform_pool=(0, 0),
        naka_rushton_exponent=2.0,
        inhibition=0.0,
    ),
    "V4": AreaParameters(
        sigma_at_fovea=0.10,
        sigma_slope=0.25,
        array_spread=0.10,
        rf_scatter=0.05,
        eccentricity_range=(0.2, 0.55),
        latency_range_ms=(50, 70),
        rise_to_peak_ms=15,
        sustained=0.45,
        snr_median=3.5,
        uniform_pool=(0, 0),
        naka_rushton_exponent=1.6,
        inhibition=0.4,
    ),
    "IT": AreaParameters(
        sigma_at_fovea=0.45,
        sigma_slope=0.30,
        array_spread=0.08,
        rf_scatter=0.10,
        eccentricity_range=(0.0, 0.15),
        latency_range_ms=(80, 100),
        rise_to_peak_ms=20,
        sustained=0.5,
        snr_median=2.5,
        uniform_pool=(0.5, 0.8),
        naka_rushton_exponent=1.4,
        inhibition=0.6,
    ),
}

GAIN_SHARED_SD = 0.15
GAIN_PRIVATE_SD = 0.2
BASELINE_OFFSET_FRACTION = 0.3
V1_POINT_CHANNELS = 8
V1_CHANNELS = 2 * N_ORIENTATIONS * 2 + V1_POINT_CHANNELS
V4_RANDOM_CHANNELS = 24
IT_CHANNELS = 48
GLOBAL_CHANNELS = 6
GLOBAL_SCALE = 0.1
RANDOM_FILTER_MEAN = 0.5


class CortexSimulator:
    """Seeded V1/V4/IT Utah-array MUA simulator (see the module docstring for the model).

    Parameters
    ----------
    image_size
        Side of the square input images in pixels; a multiple of 8, at least 32.
    arrays
        Arrays per area, e.g. ``{"V1": 7, "V4": 4, "IT": 4}`` (the TVSD layout, default).
    electrodes_per_array
        Electrodes per array (64 for a Utah array).
    seed
        Seed of the layout, receptive fields, tuning and filters.
    t_start_ms, t_stop_ms, bin_ms
        Time axis relative to stimulus onset (``mode="timecourse"``): samples at
        ``t_start_ms, t_start_ms + bin_ms, ..., t_stop_ms`` (both ends included, so 301 by
        default), each the mean over a ``bin_ms`` bin centred on it; the span must be a whole
        number of bins.
    mode
        ``"timecourse"`` (``n_bins`` bins) or ``"window"`` (one bin: the mean over each
        area's ``window_ms``).
    window_ms
        Per-area ``(start, stop)`` windows for ``mode="window"`` and for ``reliability``;
        TVSD windows by default.
    duration_ms
        Stimulus duration; responses decay after it (TVSD: 200 ms). ``None``: no offset.
    noise
        Scale of all trial-to-trial variability (0: noiseless, 1: default SNRs).
    layout
        ``"tvsd"`` or ``"spread"`` array placement.
    field_of_view_deg
        Image width in degrees; adds ``rf_*_deg`` columns to ``units`` when given.
    batch_size
        Images per batch inside `drive` (bounds memory).

    Attributes
    ----------
    units
        One row per electrode: ``unit_id``, ``area``, ``array``, ``electrode``, ``rf_x``,
        ``rf_y``, ``rf_sigma`` (SD of the Gaussian that pools the feature maps, as in
        `receptive_field_maps`; V1 features add their own Gabor extent, SD half the
        preferred wavelength), ``latency_ms``, ``snr``, ``reliability`` (expected test-retest
        correlation of the window response over the reference images),
        ``pref_orientation_deg`` (orientation of the preferred bars, degrees clockwise on
        screen from horizontal) and ``pref_wavelength_px`` (V1 only, else NaN).

    Examples
    --------
    >>> import numpy as np
    >>> sim = CortexSimulator(image_size=32, arrays={"V1": 1, "IT": 1}, electrodes_per_array=4)
    >>> images = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    >>> sim.responses(images, repeats=3, seed=1).shape
    (6, 8, 301)
    >>> sim.units["area"].tolist()
    ['V1', 'V1', 'V1', 'V1', 'IT', 'IT', 'IT', 'IT']
    """

    def __init__(
        self,
        image_size: int = 96,
        arrays: dict[str, int] | None = None,
        electrodes_per_array: int = 64,
        seed: int = 0,
        t_start_ms: float = -100.0,
        t_stop_ms: float = 200.0,
        bin_ms: float = 1.0,
        mode: str = "timecourse",
        window_ms: dict[str, tuple[float, float]] | None = None,
        duration_ms: float | None = 200.0,
        noise: float = 1.0,
        layout: str = "tvsd",
        field_of_view_deg: float | None = None,
        batch_size: int = 64,
    ) -> None:
        self.image_size = _check_image_size(image_size)
        self.arrays = _check_arrays(TVSD_ARRAYS if arrays is None else arrays)
        self.electrodes_per_array = _check_positive_int(
            "electrodes_per_array", electrodes_per_array
        )
        self.seed = int(seed)
        self.mode = _check_choice("mode", mode, MODES)
        self.layout = _check_choice("layout", layout, LAYOUTS)
        self.t_start_ms, self.t_stop_ms, self.bin_ms = (
            float(t_start_ms),
            float(t_stop_ms),
            float(bin_ms),
        )
        self._n_time_bins = _count_bins(self.t_start_ms, self.t_stop_ms, self.bin_ms)
        self.window_ms = _check_windows(window_ms)
        self.duration_ms = _check_optional_positive("duration_ms", duration_ms)
        self.noise = _check_non_negative("noise", noise)
        self.field_of_view_deg = _check_optional_positive("field_of_view_deg", field_of_view_deg)
        self.batch_size = _check_positive_int("batch_size", batch_size)

        rng = np.random.default_rng([0, self.seed])
        self._areas = [a for a in AREAS if self.arrays.get(a, 0) > 0]
        self._layout = {a: self._electrode_layout(a, rng) for a in self._areas}
        self._build_filters(rng)
        self._build_tuning(rng)
        self._build_pooling()
        self._templates = self._time_templates()
        self._noise_parameters = self._noise_terms()
        self._calibrate(reference_images(self.image_size, N_REFERENCE_IMAGES, self.seed))
        self.units = self._units_table()

    # ------------------------------------------------------------------ public API

    @property
    def n_units(self) -> int:
        """Number of electrodes."""
        return int(sum(len(self._layout[a]["rf_x"]) for a in self._areas))

    @property
    def n_bins(self) -> int:
        """Number of time bins of `responses` (1 in window mode)."""
        return 1 if self.mode == "window" else self._n_time_bins

    def bin_edges_ms(self) -> np.ndarray:
        """Bin edges in ms relative to stimulus onset, ``[n_bins + 1]``.

        In window mode, the single bin spans the union of the per-area windows (the windows
        themselves are in ``window_ms`` and in the dataset's ``meta``).

        Examples
        --------
        >>> sim = CortexSimulator(image_size=32, arrays={"V1": 1}, electrodes_per_array=1)
        >>> sim.bin_edges_ms()[[0, -1]]
        array([-100.5,  200.5])
        """
        if self.mode == "window":
            windows = [self.window_ms[a] for a in self._areas]
            return np.array([min(w[0] for w in windows), max(w[1] for w in windows)], float)
        centres = self.t_start_ms + self.bin_ms * np.arange(self._n_time_bins, dtype=float)
        return np.append(centres - self.bin_ms / 2, centres[-1] + self.bin_ms / 2)

    def time_course(self) -> np.ndarray:
        """Noiseless response per unit of drive, ``[n_units, n_bins]`` float32 (peak 1).

        Examples
        --------
        >>> sim = CortexSimulator(image_size=32, arrays={"V1": 1}, electrodes_per_array=2)
        >>> sim.time_course().shape
        (2, 301)
        """
        return self._templates.numpy().copy()

    def drive(self, images: np.ndarray) -> np.ndarray:
        """Stimulus-driven amplitude of every electrode, noiseless, ``[N, n_units]`` float32.

        Normalised so that the mean over the 1/f-noise reference images is 1 per electrode;
        the noiseless response is ``drive * time_course()``.

        Examples
        --------
        >>> import numpy as np
        >>> sim = CortexSimulator(image_size=32, arrays={"V4": 1}, electrodes_per_array=3)
        >>> sim.drive(np.full((2, 1, 32, 32), 0.5, np.float32)).shape
        (2, 3)
        """
        return self._drive_checked(self._check_images(images))

    def _drive_checked(self, images: np.ndarray) -> np.ndarray:
        blocks = [
            self._drive_tensor(torch.from_numpy(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        if not blocks:
            return np.zeros((0, self.n_units), np.float32)
        return torch.cat(blocks).numpy()

    def responses(
        self, images: np.ndarray, repeats: int = 1, seed: int | None = None
    ) -> np.ndarray:
        """Simulated single-trial normalised MUA, ``[N * repeats, n_units, n_bins]`` float32.

        Trials are ordered image by image: the repeats of image 0, then of image 1, ...
        ``seed`` seeds the noise (``None``: derived from the simulator seed, so a call is
        reproducible; pass different seeds for independent noise).

        Examples
        --------
        >>> import numpy as np
        >>> sim = CortexSimulator(32, {"V1": 1}, electrodes_per_array=2, mode="window")
        >>> sim.responses(np.zeros((3, 1, 32, 32), np.float32), repeats=2).shape
        (6, 2, 1)
        """
        images = self._check_images(images)
        repeats = _check_positive_int("repeats", repeats)
        out = np.empty((len(images) * repeats, self.n_units, self.n_bins), np.float32)
        start = 0
        for _, block in self._chunks(images, repeats, seed, chunk_size=32):
            out[start : start + len(block)] = block
            start += len(block)
        return out

    def iter_responses(
        self,
        images: np.ndarray,
        repeats: int = 1,
        seed: int | None = None,
        chunk_size: int = 32,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Simulate in chunks of ``chunk_size`` images, for data sets larger than memory.

        Yields ``(stimulus_index, responses)`` per chunk: the image index of each trial,
        ``[n_trials]``, and the trials, ``[n_trials, n_units, n_bins]``, in the order of
        `responses`, which equals the concatenation of the chunks whatever ``chunk_size``.

        Examples
        --------
        >>> import numpy as np
        >>> sim = CortexSimulator(image_size=32, arrays={"V1": 1}, electrodes_per_array=2)
        >>> images = np.zeros((3, 1, 32, 32), np.float32)
        >>> [index.tolist() for index, _ in sim.iter_responses(images, repeats=2, chunk_size=2)]
        [[0, 0, 1, 1], [2, 2]]
        """
        images = self._check_images(images)
        repeats = _check_positive_int("repeats", repeats)
        chunk_size = _check_positive_int("chunk_size", chunk_size)
        return self._chunks(images, repeats, seed, chunk_size)

    def trials(
        self, drive: np.ndarray, first: int = 0, repeats: int = 1, seed: int | None = None
    ) -> np.ndarray:
        """Single trials ``[N * repeats, n_units, n_bins]`` from a noiseless `drive` ``[N, n_units]``.

        The rows of ``drive`` are stimuli ``first``, ``first + 1``, ... of a stimulus set,
        and each stimulus's noise is seeded by that index, so a large set can be simulated
        block by block, in any process, with the trials `responses` gives for the whole set
        (up to float rounding of the drive, which depends on the batch it was computed in).

        Examples
        --------
        >>> import numpy as np
        >>> sim = CortexSimulator(32, {"V1": 1}, electrodes_per_array=2, mode="window")
        >>> images = np.random.default_rng(0).random((3, 1, 32, 32))
        >>> whole = sim.responses(images, repeats=2)
        >>> part = sim.trials(sim.drive(images)[2:], first=2, repeats=2)
        >>> bool(np.allclose(part, whole[4:], atol=1e-5))
        True
        """
        drive = np.asarray(drive, dtype=np.float32)
        if drive.ndim != 2 or drive.shape[1] != self.n_units:
            raise ValueError(
                f"drive must have shape [N, n_units] = [N, {self.n_units}], found {drive.shape}"
            )
        repeats = _check_positive_int("repeats", repeats)
        if not (isinstance(first, int | np.integer) and first >= 0):
            raise ValueError(f"parameter 'first' must be an integer >= 0, found {first!r}")
        index = np.arange(first, first + len(drive))
        return self._trials(drive, index, repeats, seed)

    def _chunks(
        self, images: np.ndarray, repeats: int, seed: int | None, chunk_size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(images), chunk_size):
            stop = min(start + chunk_size, len(images))
            drive = self._drive_checked(images[start:stop])
            index = np.arange(start, stop)
            yield np.repeat(index, repeats), self._trials(drive, index, repeats, seed)

    def receptive_field_maps(self) -> np.ndarray:
        """The spatial pooling profile of every electrode, ``[n_units, H, W]`` float32.

        Each map sums to 1; it is the Gaussian RF (plus the uniform component in IT) that
        the simulator pools its feature maps with, evaluated at image resolution.

        Examples
        --------
        >>> sim = CortexSimulator(image_size=32, arrays={"V1": 1}, electrodes_per_array=2)
        >>> maps = sim.receptive_field_maps()
        >>> maps.shape, bool(abs(maps[0].sum() - 1) < 1e-4)
        ((2, 32, 32), True)
        """
        coords = _pixel_centres(self.image_size, 1)
        maps = [self._pooling_weights(a, coords) for a in self._areas]
        return torch.cat(maps).reshape(-1, self.image_size, self.image_size).numpy()

    def meta(self) -> dict[str, Any]:
        """Provenance and units, for a dataset's ``meta``.

        Examples
        --------
        >>> meta = CortexSimulator(image_size=32, arrays={"IT": 1}, electrodes_per_array=2).meta()
        >>> meta["simulator"], meta["seed"], meta["window_ms"]
        ('cortex', 0, {'IT': [75.0, 175.0]})
        """
        return {
            "simulator": "cortex",
            "seed": self.seed,
            "neuralsight_version": __version__,
            "rf_units": RF_UNITS,
            "response_units": RESPONSE_UNITS,
            "time_units": "ms relative to stimulus onset",
            "mode": self.mode,
            "bin_ms": self.bin_ms if self.mode == "timecourse" else None,
            "window_ms": {a: list(self.window_ms[a]) for a in self._areas},
            "duration_ms": self.duration_ms,
            "arrays": dict(self.arrays),
            "electrodes_per_array": self.electrodes_per_array,
            "image_size": self.image_size,
            "layout": self.layout,
            "noise": self.noise,
            "field_of_view_deg": self.field_of_view_deg,
        }

    # ------------------------------------------------------------------ input checks

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        if not isinstance(images, np.ndarray):
            raise TypeError(f"images must be a numpy array, found {type(images).__name__}")
        if images.dtype.kind not in "fiub":
            raise TypeError(f"images must hold real numbers, found dtype {images.dtype}")
        s = self.image_size
        if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2:] != (s, s):
            raise ValueError(
                f"images must have shape [N, 1 or 3, {s}, {s}] (image_size={s}), "
                f"found {images.shape}"
            )
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.size and not np.all(np.isfinite(images)):
            raise ValueError("images hold NaN or infinite values")
        if images.size and (images.min() < 0.0 or images.max() > 1.0):
            raise ValueError(
                f"images must lie in [0, 1], found values in "
                f"[{images.min():.4g}, {images.max():.4g}]"
            )
        return images

    # ------------------------------------------------------------------ layout

    def _electrode_layout(self, area: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
        p = AREA_PARAMETERS[area]
        n_arrays, n_el = self.arrays[area], self.electrodes_per_array
        centres = _array_centres(area, n_arrays, self.layout, rng)
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
        xy = np.concatenate(xy)
        ecc = np.hypot(xy[:, 0], xy[:, 1])
        n = len(xy)
        sigma = (p.sigma_at_fovea + p.sigma_slope * ecc) * rng.lognormal(0, 0.15, n)
        return {
            "rf_x": xy[:, 0],
            "rf_y": xy[:, 1],
            "rf_sigma": sigma,
            "array": np.concatenate(array_id),
            "electrode": np.tile(np.arange(n_el), n_arrays),
            "latency_ms": np.concatenate(latency),
            "snr": p.snr_median * rng.lognormal(0, 0.4, n),
            "uniform": rng.uniform(*p.uniform_pool, n),
        }

    def _area_sizes(self) -> list[int]:
        return [len(self._layout[a]["rf_x"]) for a in self._areas]

    def _column(self, name: str) -> np.ndarray:
        return np.concatenate([self._layout[a][name] for a in self._areas])

    # ------------------------------------------------------------------ filters and tuning

    def _build_filters(self, rng: np.random.Generator) -> None:
        """Gabor pyramid (fine scale at full, coarse at half resolution), DoG and blur."""
        s = self.image_size
        wavelength = max(3.0, s / 16)
        self._wavelengths = np.array([wavelength, 2 * wavelength])
        self._orientations = np.arange(N_ORIENTATIONS) * np.pi / N_ORIENTATIONS
        self._pads = (max(4, s // 6), max(4, s // 12))
        fine, coarse = s + 2 * self._pads[0], s // 2 + 2 * self._pads[1]
        dog = _gaussian_kernel(fine, wavelength / 4) - _gaussian_kernel(fine, 3 * wavelength / 4)
        fine_kernels = [*(_complex_gabor(fine, wavelength, t) for t in self._orientations), dog]
        coarse_kernels = [_complex_gabor(coarse, wavelength, t) for t in self._orientations]
        self._fine_spectra = _spectra(fine_kernels)
        self._coarse_spectra = _spectra(coarse_kernels)
        self._blur_spectrum = _spectra([_gaussian_kernel(coarse, wavelength / 4)])
        v4_inputs = 2 * N_ORIENTATIONS + V1_POINT_CHANNELS
        self._v4_weights = _random_conv(rng, V4_RANDOM_CHANNELS, v4_inputs, 5)
        v4_channels = 2 * N_ORIENTATIONS + V4_RANDOM_CHANNELS
        self._it_weights = _random_conv(rng, IT_CHANNELS, v4_channels, 3)
        self._norm = {
            "V1": torch.ones(V1_CHANNELS),
            "V4": torch.ones(v4_channels),
            "IT": torch.ones(IT_CHANNELS),
        }

    def _build_tuning(self, rng: np.random.Generator) -> None:
        self._tuning: dict[str, dict[str, torch.Tensor]] = {}
        if "V1" in self._areas:
            self._tuning["V1"] = self._v1_tuning(rng)
        v4_channels = 2 * N_ORIENTATIONS + V4_RANDOM_CHANNELS
        if "V4" in self._areas:
            n = len(self._layout["V4"]["rf_x"])
            self._tuning["V4"] = {
                "excitation": _sparse_weights(rng, n, v4_channels),
                "inhibition": _sparse_weights(rng, n, v4_channels),
            }
        if "IT" in self._areas:
            n = len(self._layout["IT"]["rf_x"])
            global_fraction = torch.from_numpy(rng.uniform(0.1, 0.3, (n, 1)).astype(np.float32))
            self._tuning["IT"] = {
                name: torch.cat(
                    [
                        _sparse_weights(rng, n, IT_CHANNELS) * (1 - global_fraction),
                        _sparse_weights(rng, n, GLOBAL_CHANNELS, 0.5) * global_fraction,
                    ],
                    dim=1,
                )
                for name in ("excitation", "inhibition")
            }

    def _v1_tuning(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        n = len(self._layout["V1"]["rf_x"])
        preferred = rng.uniform(0, np.pi, n)
        scale = rng.integers(0, 2, n)
        concentration = rng.uniform(1.5, 3.0, n)
        complex_fraction = rng.uniform(0.5, 1.0, n)
        is_colour = rng.random(n) < 0.3
        colour = np.where(is_colour, rng.uniform(0.3, 0.6, n), 0.05)
        luminance = rng.uniform(0.05, 0.2, n)
        surface = rng.uniform(0.2, 0.8, n)
        gabor = 1 - colour - luminance
        delta = self._orientations[None, :] - preferred[:, None]
        orientation = np.exp(concentration[:, None] * (np.cos(2 * delta) - 1))
        orientation /= orientation.sum(1, keepdims=True)
        weights = np.zeros((n, V1_CHANNELS))
        rows = np.arange(n)[:, None]
        columns = scale[:, None] * N_ORIENTATIONS + np.arange(N_ORIENTATIONS)[None, :]
        weights[rows, columns] = orientation * (gabor * complex_fraction)[:, None]
        weights[rows, columns + 2 * N_ORIENTATIONS] = (
            orientation * (gabor * (1 - complex_fraction))[:, None]
        )
        on_fraction = rng.random(n)
        first_extra = 4 * N_ORIENTATIONS
        on_off = np.stack([on_fraction, 1 - on_fraction], 1) * luminance[:, None]
        weights[:, first_extra : first_extra + 2] = on_off * (1 - surface)[:, None]
        weights[:, first_extra + 2 : first_extra + 4] = on_off * surface[:, None]
        colour_mix = rng.dirichlet(np.full(4, 0.3), n)
        weights[:, first_extra + 4 :] = colour[:, None] * colour_mix
        self._layout["V1"]["pref_orientation_deg"] = np.degrees(preferred)
        self._layout["V1"]["pref_wavelength_px"] = self._wavelengths[scale]
        return {"excitation": torch.from_numpy(weights.astype(np.float32))}

    def _build_pooling(self) -> None:
        self._pooling: dict[str, torch.Tensor] = {}
        for area, factor in (("V1", 2), ("V4", 4), ("IT", 8)):
            if area not in self._areas:
                continue
            weights = self._pooling_weights(area, _pixel_centres(self.image_size, factor))
            if area == "V1":
                weights = torch.where(weights > weights.amax(1, keepdim=True) * 1e-3, weights, 0)
                weights = (weights / weights.sum(1, keepdim=True)).to_sparse()
            self._pooling[area] = weights

    def _pooling_weights(self, area: str, coords: np.ndarray) -> torch.Tensor:
        layout = self._layout[area]
        gx = coords[None, :] - layout["rf_x"][:, None]
        gy = coords[None, :] - layout["rf_y"][:, None]
        inv = 1.0 / (2 * layout["rf_sigma"][:, None, None] ** 2)
        gauss = np.exp(-(gy[:, :, None] ** 2 + gx[:, None, :] ** 2) * inv).reshape(len(gx), -1)
        gauss /= gauss.sum(1, keepdims=True)
        uniform = layout["uniform"][:, None]
        weights = (1 - uniform) * gauss + uniform / gauss.shape[1]
        return torch.from_numpy(weights.astype(np.float32))

    # ------------------------------------------------------------------ feature stages

    def _v1_maps(self, images: torch.Tensor) -> torch.Tensor:
        """V1 channels at half resolution: energy, simple, contrast and surface on/off, colour."""
        lum, rg, by = _opponent_channels(images)
        fine = _filter(lum[:, None], self._fine_spectra, self._pads[0])
        fine = F.avg_pool2d(torch.view_as_real(fine).movedim(-1, 1).flatten(1, 2), 2)
        half = F.avg_pool2d(torch.stack([lum, rg, by], 1), 2)
        coarse = torch.view_as_real(_filter(half[:, :1], self._coarse_spectra, self._pads[1]))
        surface = _filter(half, self._blur_spectrum, self._pads[1]).real
        surface[:, 0] -= 0.5
        n = N_ORIENTATIONS
        fine_even, fine_odd = fine[:, :n], fine[:, n + 1 : 2 * n + 1]
        dog = fine[:, n]
        energy = [torch.sqrt(fine_even**2 + fine_odd**2), coarse.square().sum(-1).sqrt()]
        simple = [fine_even, coarse[..., 0]]
        point = [dog, -dog, *(sign * surface[:, k] for k in range(3) for sign in (1, -1))]
        maps = [*energy, torch.cat(simple, 1).clamp_min(0), torch.stack(point, 1).clamp_min(0)]
        return torch.cat(maps, 1) / self._norm["V1"][None, :, None, None]

    def _v4_maps(self, v1: torch.Tensor) -> torch.Tensor:
        """V4 channels at quarter resolution: curvature and random V1 combinations."""
        low = F.avg_pool2d(v1, 2)
        n = N_ORIENTATIONS
        energy = low[:, : 2 * n].reshape(len(low), 2, n, *low.shape[2:])
        curvature = torch.sqrt(energy * torch.roll(energy, -2, dims=2) + _EPS).flatten(1, 2)
        inputs = torch.cat([low[:, : 2 * n], low[:, 4 * n :]], 1)
        combinations = F.conv2d(inputs, self._v4_weights, padding=2).clamp_min(0)
        maps = torch.cat([curvature, combinations], 1)
        return maps / self._norm["V4"][None, :, None, None]

    def _it_maps(self, v4: torch.Tensor) -> torch.Tensor:
        """IT channels at eighth resolution: random combinations of V4 channels."""
        maps = F.avg_pool2d(F.conv2d(v4, self._it_weights, padding=1).clamp_min(0), 2)
        return maps / self._norm["IT"][None, :, None, None]

    def _feature_maps(
        self, images: torch.Tensor, calibrate: bool = False
    ) -> dict[str, torch.Tensor]:
        """Normalised channel maps of every stage the electrodes need.

        With ``calibrate=True`` each stage's channel normalisers are first set to the
        channel means over ``images``.
        """
        stages = [("V1", self._v1_maps)]
        if "V4" in self._areas or "IT" in self._areas:
            stages.append(("V4", self._v4_maps))
        if "IT" in self._areas:
            stages.append(("IT", self._it_maps))
        maps, previous = {}, images
        for area, stage in stages:
            if calibrate:
                self._norm[area] = torch.ones_like(self._norm[area])
                unnormalised = stage(previous)
                self._norm[area] = unnormalised.mean((0, 2, 3)).clamp_min(_EPS)
                maps[area] = unnormalised / self._norm[area][None, :, None, None]
            else:
                maps[area] = stage(previous)
            previous = maps[area]
        return maps

    def _raw_drive(self, images: torch.Tensor, calibrate: bool = False) -> torch.Tensor:
        """Pooled, tuned, rectified electrode input before normalisation, ``[n, n_units]``."""
        maps = self._feature_maps(images, calibrate)
        raw = []
        for area in self._areas:
            pooled = _pool(maps[area], self._pooling[area])
            tuning = self._tuning[area]
            if area == "IT":
                glob = _global_features(images)[:, :, None].expand(-1, -1, pooled.shape[2])
                pooled = torch.cat([pooled, glob], 1)
            value = torch.einsum("nke,ek->ne", pooled, tuning["excitation"])
            if "inhibition" in tuning:
                inhibition = torch.einsum("nke,ek->ne", pooled, tuning["inhibition"])
                value = value - AREA_PARAMETERS[area].inhibition * inhibition
            raw.append(value.clamp_min(0))
        return torch.cat(raw, 1)

    def _drive_tensor(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ratio = self._raw_drive(images) / self._raw_reference
            compressed = _naka_rushton(ratio, self._exponents)
            return compressed / self._compressed_reference

    def _calibrate(self, reference: np.ndarray) -> None:
        """Normalise channels and electrode drives to their means over reference images."""
        with torch.no_grad():
            raw = self._raw_drive(torch.from_numpy(reference), calibrate=True)
        self._raw_reference = raw.mean(0).clamp_min(_EPS)
        exponents = [AREA_PARAMETERS[a].naka_rushton_exponent for a in self._areas]
        self._exponents = torch.tensor(
            np.repeat(exponents, self._area_sizes()), dtype=torch.float32
        )
        compressed = _naka_rushton(raw / self._raw_reference, self._exponents)
        self._compressed_reference = compressed.mean(0).clamp_min(_EPS)
        self._reference_drive = (compressed / self._compressed_reference).numpy()

    # ------------------------------------------------------------------ time and noise

    def _time_templates(self) -> torch.Tensor:
        """Noiseless response per unit drive in each output bin, ``[n_units, n_bins]``."""
        if self.mode == "window":
            return torch.from_numpy(self._window_means()[:, None].astype(np.float32))
        per_bin = max(1, round(self.bin_ms * SUBSAMPLES_PER_MS))
        step = self.bin_ms / per_bin
        t = self.bin_edges_ms()[0] + step * (np.arange(self._n_time_bins * per_bin) + 0.5)
        shapes = np.concatenate([self._area_shape(a, t) for a in self._areas])
        binned = shapes.reshape(len(shapes), self._n_time_bins, per_bin).mean(2)
        return torch.from_numpy(binned.astype(np.float32))

    def _window_means(self) -> np.ndarray:
        """Mean noiseless response per unit drive over each electrode's area window."""
        step = 1.0 / SUBSAMPLES_PER_MS
        means = []
        for area in self._areas:
            start, stop = self.window_ms[area]
            means.append(self._area_shape(area, np.arange(start + step / 2, stop, step)).mean(1))
        return np.concatenate(means)

    def _area_shape(self, area: str, t: np.ndarray) -> np.ndarray:
        """Noiseless time course of an area's electrodes at times ``t`` (ms), peak 1."""
        p = AREA_PARAMETERS[area]
        onset = self._layout[area]["latency_ms"][:, None] - _half_peak_delay(p)
        return _unit_shape(t[None, :] - onset, p, self.duration_ms) / _shape_peak(p)

    def _window_noise_factor(self) -> np.ndarray:
        """Per electrode: SD of the mean of 1 ms noise over its area's window, per unit SD."""
        rho = math.exp(-1.0 / NOISE_TIME_CONSTANT_MS)
        factors = [
            np.full(n, _ar1_mean_sd(rho, round(self.window_ms[a][1] - self.window_ms[a][0])))
            for a, n in zip(self._areas, self._area_sizes(), strict=True)
        ]
        return np.concatenate(factors)

    def _noise_terms(self) -> dict[str, np.ndarray]:
        """Per-electrode SDs of the noise terms at the output's time resolution."""
        sd_1ms = self.noise / self._column("snr")
        rho_1ms = math.exp(-1.0 / NOISE_TIME_CONSTANT_MS)
        if self.mode == "window":
            factor, rho = self._window_noise_factor(), 0.0
        else:
            factor = _ar1_mean_sd(rho_1ms, max(1, round(self.bin_ms)))
            rho = rho_1ms**self.bin_ms
        return {
            "additive": (sd_1ms * factor).astype(np.float32),
            "baseline": (BASELINE_OFFSET_FRACTION * sd_1ms).astype(np.float32),
            "rho": np.float32(rho),
        }

    def _trials(
        self, drive: np.ndarray, index: np.ndarray, repeats: int, seed: int | None
    ) -> np.ndarray:
        """Trials for the images with global indices ``index`` and noiseless ``drive``."""
        templates = self._templates.numpy()
        clean = drive[:, None, :, None] * templates[None, None]
        out = np.repeat(clean, repeats, axis=1)
        if self.noise > 0:
            params = self._noise_parameters
            area_index = np.repeat(np.arange(len(self._areas)), self._area_sizes())
            noise_seed = self.seed if seed is None else int(seed)
            for row, stimulus in enumerate(index):
                rng = np.random.default_rng([1, noise_seed, int(stimulus)])
                out[row] = self._noisy(out[row], rng, params, area_index)
        return out.reshape(-1, self.n_units, self.n_bins)

    def _noisy(
        self,
        clean: np.ndarray,
        rng: np.random.Generator,
        params: dict[str, np.ndarray],
        area_index: np.ndarray,
    ) -> np.ndarray:
        repeats, n_units, n_bins = clean.shape
        shared_sd, private_sd = GAIN_SHARED_SD * self.noise, GAIN_PRIVATE_SD * self.noise
        log_gain = shared_sd * rng.standard_normal((repeats, len(self._areas)))[:, area_index]
        log_gain += private_sd * rng.standard_normal((repeats, n_units))
        gain = np.exp(log_gain - (shared_sd**2 + private_sd**2) / 2).astype(np.float32)
        baseline = params["baseline"] * rng.standard_normal((repeats, n_units), np.float32)
        white = rng.standard_normal((repeats, n_units, n_bins + 1), np.float32)
        rho = params["rho"]
        numerator, denominator = np.sqrt(1 - rho**2)[None], np.array([1, -rho], np.float32)
        correlated = lfilter(
            numerator, denominator, white[..., 1:], axis=-1, zi=rho * white[..., :1]
        )[0]
        additive = params["additive"][None, :, None] * correlated
        return (clean * gain[..., None] + baseline[..., None] + additive).astype(np.float32)

    def _reliability(self) -> np.ndarray:
        """Expected test-retest correlation of window responses over the reference images."""
        window_mean = self._window_means()
        variance = self._reference_drive.var(0)
        gain_second_moment = math.exp((GAIN_SHARED_SD**2 + GAIN_PRIVATE_SD**2) * self.noise**2)
        sd_1ms = self.noise / self._column("snr")
        additive = sd_1ms * self._window_noise_factor()
        baseline = BASELINE_OFFSET_FRACTION * sd_1ms
        signal = window_mean**2 * variance
        gain_noise = window_mean**2 * (gain_second_moment - 1) * (variance + 1)
        return signal / np.maximum(signal + gain_noise + baseline**2 + additive**2, _EPS)

    def _units_table(self) -> pd.DataFrame:
        area = np.repeat(self._areas, self._area_sizes())
        first_array = np.cumsum([0] + [self.arrays[a] for a in self._areas])[:-1]
        array = np.concatenate(
            [
                self._layout[a]["array"] + first
                for a, first in zip(self._areas, first_array, strict=True)
            ]
        )
        table = pd.DataFrame(
            {
                "unit_id": np.arange(self.n_units),
                "area": area.astype(object),
                "array": array,
                "electrode": self._column("electrode"),
                "rf_x": self._column("rf_x"),
                "rf_y": self._column("rf_y"),
                "rf_sigma": self._column("rf_sigma"),
                "latency_ms": self._column("latency_ms"),
                "snr": self._column("snr"),
                "reliability": self._reliability(),
                "pref_orientation_deg": self._v1_only("pref_orientation_deg"),
                "pref_wavelength_px": self._v1_only("pref_wavelength_px"),
            }
        )
        if self.field_of_view_deg is not None:
            half = self.field_of_view_deg / 2
            for name in ("rf_x", "rf_y", "rf_sigma"):
                table[f"{name}_deg"] = table[name] * half
        return table

    def _v1_only(self, name: str) -> np.ndarray:
        return np.concatenate(
            [
                self._layout[a].get(name, np.full(len(self._layout[a]["rf_x"]), np.nan))
                for a in self._areas
            ]
        )


def simulate_cortex(
    train_images: np.ndarray,
    test_images: np.ndarray | None = None,
    repeats_train: int = 1,
    repeats_test: int = 1,
    seed: int = 0,
    noise_seed: int | None = None,
    path: str | os.PathLike | None = None,
    chunk_trials: int | None = None,
    progress: bool = True,
    **simulator_kwargs: Any,
) -> NeuralDataset:
    """Simulate a TVSD-like V1/V4/IT recording of train and test images as a `NeuralDataset`.

    Parameters
    ----------
    train_images, test_images
        ``[N, 1 or 3, H, W]`` in [0, 1]; test images may be ``None``.
    repeats_train, repeats_test
        Independent trials per image (TVSD: 1 per train image, 30 per test image).
    seed
        Simulator seed (layout, receptive fields, filters).
    noise_seed
        Seed of the trial noise; ``None`` uses ``seed``.
    path
        Where to write the dataset (HDF5). Given, trials are simulated chunk by chunk while
        the file is written, so the responses never need to fit in memory, and the returned
        dataset is opened lazily from the file. ``None``: simulate in memory.
    chunk_trials
        Trials per HDF5 chunk when writing (``None``: chunks of about 2 MB, one trial at
        1 ms resolution, for fast random access); trials are simulated 16 chunks at a time.
    progress
        Show a progress bar while writing to ``path``.
    **simulator_kwargs
        Passed to `CortexSimulator` (``image_size`` defaults to the images' size).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train, test = rng.random((4, 3, 32, 32)), rng.random((2, 3, 32, 32))
    >>> ds = simulate_cortex(train, test, repeats_test=3, arrays={"V1": 1}, electrodes_per_array=4)
    >>> ds.n_trials, ds.n_units, ds.n_bins, ds.split.tolist().count("test")
    (10, 4, 301, 6)
    """
    train = _as_image_array("train_images", train_images)
    test = _as_image_array("test_images", test_images, like=train)
    simulator_kwargs.setdefault("image_size", train.shape[-1])
    simulator = CortexSimulator(seed=seed, **simulator_kwargs)
    stimuli = simulator._check_images(np.concatenate([train, test]))
    repeats = np.concatenate(
        [
            np.full(len(train), _check_positive_int("repeats_train", repeats_train)),
            np.full(len(test), _check_positive_int("repeats_test", repeats_test)),
        ]
    )
    stimulus_id = np.repeat(np.arange(len(stimuli)), repeats)
    split = np.where(stimulus_id < len(train), "train", "test")
    meta = simulator.meta() | {
        "noise_seed": seed if noise_seed is None else int(noise_seed),
        "repeats_train": int(repeats_train),
        "repeats_test": int(repeats_test),
    }
    trials = _SimulatedTrials(simulator, stimuli, repeats, meta["noise_seed"])
    dataset = NeuralDataset(
        responses=trials if path is not None else trials[:],
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        units=simulator.units,
        bin_edges_ms=simulator.bin_edges_ms(),
        split=split,
        meta=meta,
    )
    if path is None:
        return dataset
    if chunk_trials is None:
        bytes_per_trial = simulator.n_units * simulator.n_bins * 4
        chunk_trials = max(1, min(4096, 2**21 // bytes_per_trial))
    if progress:
        trials.show_progress()
    try:
        written = dataset.save(path, chunk_trials=_check_positive_int("chunk_trials", chunk_trials))
    finally:
        trials.close_progress()
    return NeuralDataset.open(written)


class _SimulatedTrials:
    """Array-like ``[n_trials, n_units, n_bins]`` whose trial slices are simulated on access.

    Lets `NeuralDataset.save` stream a simulation to disk block by block; trial ``t`` is the
    same whichever block it falls in, because the noise is seeded per stimulus.
    """

    def __init__(
        self, simulator: CortexSimulator, stimuli: np.ndarray, repeats: np.ndarray, seed: int
    ) -> None:
        self.simulator, self.stimuli, self.repeats, self.seed = simulator, stimuli, repeats, seed
        self.first_trial = np.concatenate([[0], np.cumsum(repeats)])
        self.shape = (int(self.first_trial[-1]), simulator.n_units, simulator.n_bins)
        self.dtype = np.dtype(np.float32)
        self._progress = None
        self._last: tuple[int, np.ndarray] | None = None

    def show_progress(self) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._progress.start()
        self._task = self._progress.add_task("simulating cortex", total=self.shape[0])

    def close_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"simulated trials are read by contiguous slices, found {key!r}")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        out = np.empty((stop - start, *self.shape[1:]), np.float32)
        if stop == start:
            return out
        first = int(np.searchsorted(self.first_trial, start, side="right") - 1)
        last = int(np.searchsorted(self.first_trial, stop, side="left"))
        drive = self.simulator.drive(self.stimuli[first:last])
        filled = 0
        for offset, stimulus in enumerate(range(first, last)):
            block = self._stimulus_trials(stimulus, drive[offset : offset + 1])
            lo = max(start, self.first_trial[stimulus]) - self.first_trial[stimulus]
            hi = min(stop, self.first_trial[stimulus + 1]) - self.first_trial[stimulus]
            out[filled : filled + hi - lo] = block[lo:hi]
            filled += hi - lo
        if self._progress is not None:
            self._progress.advance(self._task, stop - start)
        return out

    def _stimulus_trials(self, stimulus: int, drive: np.ndarray) -> np.ndarray:
        """All trials of one stimulus; the last one is kept, as blocks may split its trials."""
        if self._last is None or self._last[0] != stimulus:
            trials = self.simulator._trials(
                drive, np.array([stimulus]), int(self.repeats[stimulus]), self.seed
            )
            self._last = (stimulus, trials)
        return self._last[1]


# ---------------------------------------------------------------------- helpers


def reference_images(image_size: int, n: int = N_REFERENCE_IMAGES, seed: int = 0) -> np.ndarray:
    """Seeded colour 1/f-noise images, ``[n, 3, size, size]`` float32 in [0, 1].

    Their amplitude spectrum falls as 1/f like natural images, with strongly correlated
    colour channels; the simulator normalises its channels and drives to them.

    Examples
    --------
    >>> reference_images(32, 2).shape
    (2, 3, 32, 32)
    """
    rng = np.random.default_rng([2, seed])
    f = np.fft.fftfreq(image_size)
    radius = np.hypot(f[:, None], f[None, :])
    amplitude = 1.0 / np.maximum(radius, 1.0 / image_size)
    amplitude[0, 0] = 0
    phases = rng.uniform(0, 2 * np.pi, (n, 3, image_size, image_size))
    noise = np.fft.ifft2(amplitude * np.exp(1j * phases)).real
    noise /= noise.std(axis=(2, 3), keepdims=True)
    luminance, red_green, blue_yellow = noise[:, 0], noise[:, 1], noise[:, 2]
    rgb = np.stack(
        [
            luminance + 0.3 * red_green - 0.15 * blue_yellow,
            luminance - 0.3 * red_green - 0.15 * blue_yellow,
            luminance + 0.3 * blue_yellow,
        ],
        1,
    )
    contrast = rng.uniform(0.1, 0.25, (n, 1, 1, 1))
    mean = rng.uniform(0.35, 0.65, (n, 1, 1, 1))
    return np.clip(mean + contrast * rgb, 0, 1).astype(np.float32)


def _opponent_channels(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Luminance, red-green and blue-yellow channels of ``[n, C, H, W]`` images."""
    if images.shape[1] == 1:
        lum = images[:, 0]
        return lum, torch.zeros_like(lum), torch.zeros_like(lum)
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    return 0.299 * r + 0.587 * g + 0.114 * b, r - g, b - (r + g) / 2


def _global_features(images: torch.Tensor) -> torch.Tensor:
    """Whole-image luminance and colour, rectified into ``GLOBAL_CHANNELS`` channels."""
    lum, rg, by = (c.mean((1, 2)) for c in _opponent_channels(images))
    lum = lum - 0.5
    channels = torch.stack([lum, -lum, rg, -rg, by, -by], 1)
    return channels.clamp_min(0) / GLOBAL_SCALE


def _pool(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """RF-pool ``[n, K, H, W]`` maps with ``[E, H * W]`` weights into ``[n, K, E]``."""
    n, k = maps.shape[:2]
    flat = maps.reshape(n * k, -1)
    if weights.is_sparse:
        pooled = torch.sparse.mm(weights, flat.T.contiguous()).T
    else:
        pooled = flat @ weights.T
    return pooled.reshape(n, k, -1)


def _spectra(kernels: list[np.ndarray]) -> torch.Tensor:
    """Fourier transforms of origin-centred kernels, ``[K, size, size]`` complex64."""
    return torch.from_numpy(np.fft.fft2(np.stack(kernels)).astype(np.complex64))


def _filter(images: torch.Tensor, spectra: torch.Tensor, pad: int) -> torch.Tensor:
    """Filter ``[n, C, H, W]`` by ``[K, ...]`` spectra with reflect padding.

    One channel gives ``[n, K, H, W]`` (every filter); C channels with one filter give
    ``[n, C, H, W]``. The result is complex.
    """
    h, w = images.shape[2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    filtered = torch.fft.ifft2(torch.fft.fft2(padded) * spectra[None])
    return filtered[..., pad : pad + h, pad : pad + w]


def _naka_rushton(ratio: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    powered = ratio.clamp_min(0) ** exponent
    return 2 * powered / (powered + 1)


def _unit_shape(u: np.ndarray, p: AreaParameters, duration_ms: float | None) -> np.ndarray:
    """Transient (gamma) plus sustained response ``u`` ms after onset, before peak scaling."""
    after = np.clip(u, 0, None)
    k = 3.0
    transient = (after / p.rise_to_peak_ms) ** k * np.exp(k * (1 - after / p.rise_to_peak_ms))
    sustained = p.sustained * (1 - np.exp(-after / 10.0))
    shape = np.where(u > 0, transient + sustained, 0.0)
    if duration_ms is not None:
        shape = shape * np.exp(-np.clip(u - duration_ms, 0, None) / 20.0)
    return shape


def _shape_peak(p: AreaParameters) -> float:
    return float(_unit_shape(np.arange(0, 200, 0.01), p, None).max())


def _half_peak_delay(p: AreaParameters) -> float:
    u = np.arange(0, 200, 0.01)
    shape = _unit_shape(u, p, None)
    return float(u[np.argmax(shape >= shape.max() / 2)])


def _ar1_mean_sd(rho: float, length: int) -> float:
    """SD of the mean of ``length`` consecutive samples of a unit-variance AR(1) process."""
    lags = np.arange(1, length)
    total = length + 2 * np.sum((length - lags) * rho**lags)
    return float(math.sqrt(total) / length)


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


def _pixel_centres(image_size: int, factor: int) -> np.ndarray:
    """Normalised coordinates of pixel centres after average-pooling by ``factor``."""
    centres = -1.0 + (2.0 * np.arange(image_size) + 1.0) / image_size
    return centres.reshape(-1, factor).mean(1)


def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = np.fft.fftfreq(size, 1.0 / size)
    return np.meshgrid(axis, axis)


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    x, y = _centred_grid(size)
    kernel = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _complex_gabor(size: int, wavelength: float, theta: float) -> np.ndarray:
    """Zero-mean complex Gabor (even real part, odd imaginary), centred at the origin.

    ``theta`` is the orientation of the bars it prefers; the carrier runs across them.
    """
    x, y = _centred_grid(size)
    envelope = np.exp(-(x**2 + y**2) / (2 * (0.5 * wavelength) ** 2))
    across = -x * np.sin(theta) + y * np.cos(theta)
    carrier = np.exp(2j * np.pi * across / wavelength)
    gabor = envelope * carrier
    gabor.real -= envelope * gabor.real.sum() / envelope.sum()
    return gabor / envelope.sum()


def _random_conv(rng: np.random.Generator, out: int, inputs: int, size: int) -> torch.Tensor:
    """Random filters: a zero-sum selective part plus a small positive mean.

    On non-negative inputs they respond to particular feature combinations, a little to
    feature energy in general, and not at all to a blank input.
    """
    fan_in = inputs * size * size
    weights = rng.normal(0, 1 / math.sqrt(fan_in), (out, fan_in))
    weights += (RANDOM_FILTER_MEAN - weights.sum(1, keepdims=True)) / fan_in
    return torch.from_numpy(weights.reshape(out, inputs, size, size).astype(np.float32))


def _sparse_weights(
    rng: np.random.Generator, n: int, channels: int, concentration: float = 0.3
) -> torch.Tensor:
    """Non-negative weights, rows summing to 1, dominated by a few channels."""
    return torch.from_numpy(rng.dirichlet(np.full(channels, concentration), n).astype(np.float32))


def _as_image_array(
    name: str, images: np.ndarray | None, like: np.ndarray | None = None
) -> np.ndarray:
    if images is None:
        if like is None:
            raise ValueError(f"{name} must be an array of images, found None")
        return np.zeros((0, *like.shape[1:]), np.float32)
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"{name} must have shape [N, C, H, W], found {array.shape}")
    if like is not None and array.shape[1:] != like.shape[1:]:
        raise ValueError(
            f"{name} must have the train images' shape [N, {', '.join(map(str, like.shape[1:]))}], "
            f"found {array.shape}"
        )
    return array


def _check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int | np.integer) or image_size < 32 or image_size % 8:
        raise ValueError(
            f"image_size must be an integer multiple of 8, at least 32, found {image_size!r}"
        )
    return int(image_size)


def _check_arrays(arrays: dict[str, int]) -> dict[str, int]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict like {TVSD_ARRAYS}, found {type(arrays).__name__}")
    unknown = sorted(set(arrays) - set(AREAS))
    if unknown:
        raise ValueError(
            f"arrays holds unknown area(s) {unknown}; expected a subset of {list(AREAS)}"
        )
    for area, count in arrays.items():
        if not isinstance(count, int | np.integer) or count < 0:
            raise ValueError(f"arrays['{area}'] must be a non-negative integer, found {count!r}")
    if sum(arrays.values()) == 0:
        raise ValueError(f"arrays must hold at least one array, found {arrays}")
    return {area: int(arrays.get(area, 0)) for area in AREAS if arrays.get(area, 0)}


def _check_windows(
    window_ms: dict[str, tuple[float, float]] | None,
) -> dict[str, tuple[float, float]]:
    windows = dict(TVSD_WINDOWS_MS)
    for area, window in (window_ms or {}).items():
        if area not in AREAS:
            raise ValueError(
                f"window_ms holds unknown area '{area}'; expected one of {list(AREAS)}"
            )
        start, stop = (float(v) for v in window)
        if not stop - start >= 1:
            raise ValueError(
                f"window_ms['{area}'] must be (start, stop) with stop >= start + 1 ms, "
                f"found {window}"
            )
        windows[area] = (start, stop)
    return windows


def _count_bins(t_start_ms: float, t_stop_ms: float, bin_ms: float) -> int:
    if not bin_ms > 0:
        raise ValueError(f"bin_ms must be positive, found {bin_ms}")
    if not t_stop_ms > t_start_ms:
        raise ValueError(f"t_stop_ms must exceed t_start_ms, found {t_start_ms} and {t_stop_ms}")
    n = (t_stop_ms - t_start_ms) / bin_ms
    if abs(n - round(n)) > 1e-6:
        raise ValueError(
            f"t_stop_ms - t_start_ms must be a whole number of bin_ms, found "
            f"{t_stop_ms - t_start_ms} ms and bin_ms={bin_ms}"
        )
    return round(n) + 1


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, found {value!r}")
    return value


def _check_positive_int(name: str, value: int) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, found {value!r}")
    return int(value)


def _check_non_negative(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f"{name} must be non-negative, found {value!r}")
    return float(value)


def _check_optional_positive(name: str, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be positive or None, found {value!r}")
    return None if value is None else float(value)
