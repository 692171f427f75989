"""`RetinaSimulator`: the seeded ON/OFF ganglion cell population, and its presets.

The model is described in `neuralsight.simulate.retina`; the mosaic and receptive fields
come from `neuralsight.simulate.retina.mosaic`, the temporal filter and streaming from
`neuralsight.simulate.retina.stream`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from scipy.special import expit

from neuralsight import __version__
from neuralsight.simulate.base import (
    SIMULATORS,
    SPLITS,
    check_positive,
    check_range,
    check_repeats,
    validate_images,
)
from neuralsight.simulate.retina.mosaic import (
    draw_mosaic,
    drive_matrix,
    subunit_layers,
)
from neuralsight.simulate.retina.stream import RetinaStream, biphasic_kernel

CellModel = Literal["ln", "subunit"]
CELL_MODELS = ("ln", "subunit")
LUMINANCE_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
ADAPTATION_FLOOR = 0.05
RF_UNITS = "normalised [-1, 1] image coordinates"
RESPONSE_UNITS = "spike counts"
TRIAL_ORDER = "train then test; stimulus-major within each (repeats adjacent)"

PRESETS: dict[str, dict[str, Any]] = {
    "realistic": {"cell_model": "subunit"},
    "ln": {"cell_model": "ln"},
}
"""Named parameter sets for `simulate_retina`: ``"realistic"`` uses subunit cells (not
linearly decodable), ``"ln"`` a purely linear-nonlinear population."""

_SPIKE_STREAM = 1
_IMAGES_PER_CHUNK = 512
_FRAMES_PER_CHUNK = 256
_POISSON_VALUES_PER_CHUNK = 2**22
_CHUNK_TRIALS = 256


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
    >>> retina.rates(images).shape, retina.responses(images, repeats=2).shape
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
        self.preset: str | None = None
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
        mosaic = draw_mosaic(self.params, self.seed)
        self._gain = mosaic.gain
        self._offset = np.log(mosaic.baseline / (self.max_rate_hz - mosaic.baseline)).astype(
            np.float32
        )
        self._layers = (
            subunit_layers(mosaic, self.image_size, subunit_scale)
            if cell_model == "subunit"
            else []
        )
        self.units = mosaic.units(self.max_rate_hz, self._layers)
        self._drive = drive_matrix(mosaic, self.image_size, cell_model)

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
            check_positive(name, p[name])
        check_range("baseline_hz", tuple(p["baseline_hz"]), 1e-3, p["max_rate_hz"] / 2)
        check_range("surround_scale", tuple(p["surround_scale"]), 1.0, math.inf)
        check_range("surround_weight", tuple(p["surround_weight"]), 0.0, 1.0)
        if not 0.0 <= p["subunit_leak"] <= 1.0:
            raise ValueError(
                f"parameter 'subunit_leak' must lie in [0, 1], found {p['subunit_leak']}"
            )
        check_positive("subunit_scale", p["subunit_scale"])
        biphasic_kernel(1.0, p["tau_fast_ms"], p["tau_slow_ms"], p["biphasic_ratio"])

    @property
    def bin_edges_ms(self) -> np.ndarray:
        """``[n_bins + 1]`` edges of the counting bins, ms after stimulus onset."""
        return np.linspace(0.0, self.window_ms, self.n_bins + 1)

    @property
    def n_units(self) -> int:
        """Number of cells (the protocol's name for `n_cells`)."""
        return self.n_cells

    @property
    def n_features(self) -> int:
        """Rows of `linear_features`: every layer's subunits, then one drive per cell."""
        return sum(layer.n_subunits for layer in self._layers) + self.n_cells

    @property
    def chunk_trials(self) -> int:
        """Trials per HDF5 chunk of a file of spike counts."""
        return _CHUNK_TRIALS

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

    def linear_features(self, contrast: np.ndarray) -> np.ndarray:
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

    def rates_from_features(self, features: np.ndarray) -> np.ndarray:
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
            out[start : start + len(chunk)] = self.rates_from_features(self.linear_features(chunk))
        return out

    def spike_rng(self, seed: int | None = None) -> np.random.Generator:
        """The spike-sampling generator: from ``seed``, or derived from the simulator seed."""
        if seed is None:
            return np.random.default_rng(np.random.SeedSequence([self.seed, _SPIKE_STREAM]))
        return np.random.default_rng(seed)

    def responses(
        self, images: np.ndarray, repeats: int = 1, seed: int | None = None
    ) -> np.ndarray:
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
        >>> retina.responses(np.full((2, 1, 8, 8), 0.5), repeats=3, seed=7).shape
        (6, 6, 4)
        """
        check_repeats(repeats=repeats)
        return self.sample_counts(self.rates(images), int(repeats), self.spike_rng(seed))

    def sample_counts(
        self, rates: np.ndarray, repeats: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw Poisson counts for ``[N, n_cells]`` rates in Hz (see `responses` for the layout).

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

    def sampler(self, repeats: dict[str, int]) -> SpikeSampler:
        """Spikes of a recording, drawn in stimulus order per split (see `SpikeSampler`)."""
        return SpikeSampler(self, repeats)

    def meta(self, repeats: dict[str, int] | None = None) -> dict[str, Any]:
        """Provenance: simulator, preset, seed, version, units and all parameters.

        Given ``repeats`` (trials per stimulus of each split), that of a recording: the
        trial order and the repeats are added.

        Examples
        --------
        >>> meta = RetinaSimulator(8, n_cells=4).meta({"train": 1, "test": 2})
        >>> meta["simulator"], meta["repeats_test"], meta["parameters"]["n_cells"]
        ('retina', 2, 4)
        """
        meta: dict[str, Any] = {
            "simulator": "retina",
            "preset": self.preset,
            "cell_model": self.cell_model,
            "seed": self.seed,
            "neuralsight_version": __version__,
            "rf_units": RF_UNITS,
            "response_units": RESPONSE_UNITS,
        }
        if repeats is not None:
            meta["trial_order"] = TRIAL_ORDER
            meta["repeats_train"] = int(repeats["train"])
            meta["repeats_test"] = int(repeats["test"])
        meta["parameters"] = self.params
        return meta

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


class SpikeSampler:
    """The spikes of a recording: one generator per split, drawn in stimulus order.

    The streams are those of `split_spike_seeds` with the simulator seed, so a file written
    chunk by chunk holds the counts `simulate_retina` draws for the same rates. Rates pass
    `per_stimulus` unchanged; `in_order` draws the counts.
    """

    def __init__(self, retina: RetinaSimulator, repeats: dict[str, int]) -> None:
        self.retina, self.repeats = retina, repeats
        seeds = split_spike_seeds(retina.seed)
        self._rngs = dict(zip(SPLITS, map(np.random.default_rng, seeds), strict=True))

    def per_stimulus(self, rates: np.ndarray, split: str, first: int) -> np.ndarray:
        """The rates themselves: spikes are drawn in order, by `in_order`."""
        return rates

    def in_order(self, values: np.ndarray, split: str) -> np.ndarray:
        """Poisson counts of the next rates of ``split``."""
        return self.retina.sample_counts(values, self.repeats[split], self._rngs[split])


@SIMULATORS.register("retina")
def retina_from_preset(
    image_size: int | tuple[int, int],
    seed: int = 0,
    preset: str = "realistic",
    n_cells: int = 300,
    **overrides: Any,
) -> RetinaSimulator:
    """The retina of a preset (a key of `PRESETS`), any parameter overridden.

    Examples
    --------
    >>> retina = retina_from_preset(16, preset="ln", n_cells=8)
    >>> retina.cell_model, retina.meta()["preset"]
    ('ln', 'ln')
    """
    if preset not in PRESETS:
        raise ValueError(f"parameter 'preset' must be one of {sorted(PRESETS)}, found {preset!r}")
    retina = RetinaSimulator(
        image_size=image_size, n_cells=n_cells, seed=seed, **{**PRESETS[preset], **overrides}
    )
    retina.preset = preset
    return retina


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
