"""`CortexSimulator`: seeded V1/V4/IT Utah-array MUA, wired from its parts.

The model is described in `neuralsight.simulate.cortex`. The simulator draws, from its
seed and in this order, the electrode layout (`neuralsight.simulate.cortex.layout`), the
filter bank and the tuning (`neuralsight.simulate.cortex.features`); it pools feature maps
over receptive fields, compresses them and scales the time course of
`neuralsight.simulate.cortex.timecourse`, whose noise makes the trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuralsight import __version__
from neuralsight.simulate.base import SIMULATORS
from neuralsight.simulate.cortex.features import (
    FilterBank,
    area_tuning,
    global_features,
    naka_rushton,
    pool,
    reference_images,
)
from neuralsight.simulate.cortex.layout import (
    electrode_layout,
    pixel_centres,
    pooling,
    pooling_weights,
)
from neuralsight.simulate.cortex.parameters import (
    AREA_PARAMETERS,
    AREAS,
    EPS,
    LAYOUTS,
    MODES,
    N_REFERENCE_IMAGES,
    RESPONSE_UNITS,
    RF_UNITS,
    TVSD_ARRAYS,
    check_arrays,
    check_choice,
    check_image_size,
    check_non_negative,
    check_optional_positive,
    check_positive_int,
    check_windows,
    count_bins,
)
from neuralsight.simulate.cortex.timecourse import TrialModel


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
        Images per batch inside `rates` (bounds memory).

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
        self.image_size = check_image_size(image_size)
        self.arrays = check_arrays(TVSD_ARRAYS if arrays is None else arrays)
        self.electrodes_per_array = check_positive_int("electrodes_per_array", electrodes_per_array)
        self.seed = int(seed)
        self.mode = check_choice("mode", mode, MODES)
        self.layout = check_choice("layout", layout, LAYOUTS)
        self.t_start_ms, self.t_stop_ms, self.bin_ms = (
            float(t_start_ms),
            float(t_stop_ms),
            float(bin_ms),
        )
        self._n_time_bins = count_bins(self.t_start_ms, self.t_stop_ms, self.bin_ms)
        self.window_ms = check_windows(window_ms)
        self.duration_ms = check_optional_positive("duration_ms", duration_ms)
        self.noise = check_non_negative("noise", noise)
        self.field_of_view_deg = check_optional_positive("field_of_view_deg", field_of_view_deg)
        self.batch_size = check_positive_int("batch_size", batch_size)

        rng = np.random.default_rng([0, self.seed])
        self._areas = [a for a in AREAS if self.arrays.get(a, 0) > 0]
        self._layout = {
            a: electrode_layout(a, self.arrays[a], self.electrodes_per_array, self.layout, rng)
            for a in self._areas
        }
        self._bank = FilterBank(self.image_size, rng)
        self._tuning = area_tuning(self._layout, self._bank, rng)
        self._pooling = pooling(self._layout, self.image_size)
        self._model = TrialModel(
            self._layout,
            self.mode,
            self.window_ms,
            self.bin_ms,
            self.duration_ms,
            self.noise,
            self.t_start_ms - self.bin_ms / 2,
            self._n_time_bins,
        )
        self._calibrate(reference_images(self.image_size, N_REFERENCE_IMAGES, self.seed))
        self.units = self._units_table()

    @property
    def n_units(self) -> int:
        """Number of electrodes."""
        return int(sum(len(self._layout[a]["rf_x"]) for a in self._areas))

    @property
    def n_bins(self) -> int:
        """Number of time bins of `responses` (1 in window mode)."""
        return 1 if self.mode == "window" else self._n_time_bins

    @property
    def bin_edges_ms(self) -> np.ndarray:
        """Bin edges in ms relative to stimulus onset, ``[n_bins + 1]``.

        In window mode, the single bin spans the union of the per-area windows (the windows
        themselves are in ``window_ms`` and in the dataset's ``meta``).

        Examples
        --------
        >>> sim = CortexSimulator(image_size=32, arrays={"V1": 1}, electrodes_per_array=1)
        >>> sim.bin_edges_ms[[0, -1]]
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
        return self._model.templates.numpy().copy()

    @property
    def chunk_trials(self) -> int:
        """Trials per HDF5 chunk of a file of responses: about 2 MB, at most 4096."""
        bytes_per_trial = self.n_units * self.n_bins * 4
        return max(1, min(4096, 2**21 // bytes_per_trial))

    def rates(self, images: np.ndarray) -> np.ndarray:
        """Stimulus-driven amplitude (drive) of every electrode, noiseless, ``[N, n_units]`` float32.

        Normalised so that the mean over the 1/f-noise reference images is 1 per electrode;
        the noiseless response is ``drive * time_course()``.

        Examples
        --------
        >>> import numpy as np
        >>> sim = CortexSimulator(image_size=32, arrays={"V4": 1}, electrodes_per_array=3)
        >>> sim.rates(np.full((2, 1, 32, 32), 0.5, np.float32)).shape
        (2, 3)
        """
        return self._drive_checked(self.check_images(images))

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
        images = self.check_images(images)
        repeats = check_positive_int("repeats", repeats)
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
        images = self.check_images(images)
        repeats = check_positive_int("repeats", repeats)
        chunk_size = check_positive_int("chunk_size", chunk_size)
        return self._chunks(images, repeats, seed, chunk_size)

    def trials(
        self, drive: np.ndarray, first: int = 0, repeats: int = 1, seed: int | None = None
    ) -> np.ndarray:
        """Single trials ``[N * repeats, n_units, n_bins]`` from a noiseless drive ``[N, n_units]``.

        The rows of ``drive`` are stimuli ``first``, ``first + 1``, ... of a stimulus set,
        and each stimulus's noise is seeded by that index, so a large set can be simulated
        block by block, in any process, with the trials `responses` gives for the whole set
        (up to float rounding of the drive, which depends on the batch it was computed in);
        ``drive`` is what `rates` returns.

        Examples
        --------
        >>> import numpy as np
        >>> sim = CortexSimulator(32, {"V1": 1}, electrodes_per_array=2, mode="window")
        >>> images = np.random.default_rng(0).random((3, 1, 32, 32))
        >>> whole = sim.responses(images, repeats=2)
        >>> part = sim.trials(sim.rates(images)[2:], first=2, repeats=2)
        >>> bool(np.allclose(part, whole[4:], atol=1e-5))
        True
        """
        drive = np.asarray(drive, dtype=np.float32)
        if drive.ndim != 2 or drive.shape[1] != self.n_units:
            raise ValueError(
                f"drive must have shape [N, n_units] = [N, {self.n_units}], found {drive.shape}"
            )
        repeats = check_positive_int("repeats", repeats)
        if not (isinstance(first, int | np.integer) and first >= 0):
            raise ValueError(f"parameter 'first' must be an integer >= 0, found {first!r}")
        index = np.arange(first, first + len(drive))
        return self._model.trials(drive, index, repeats, self._noise_seed(seed))

    def _chunks(
        self, images: np.ndarray, repeats: int, seed: int | None, chunk_size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(images), chunk_size):
            stop = min(start + chunk_size, len(images))
            drive = self._drive_checked(images[start:stop])
            index = np.arange(start, stop)
            yield (
                np.repeat(index, repeats),
                self._model.trials(drive, index, repeats, self._noise_seed(seed)),
            )

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
        coords = pixel_centres(self.image_size, 1)
        maps = [pooling_weights(self._layout[a], coords) for a in self._areas]
        return torch.cat(maps).reshape(-1, self.image_size, self.image_size).numpy()

    def sampler(self, repeats: dict[str, int]) -> NoiseSampler:
        """The noise of a recording, seeded per stimulus (see `NoiseSampler`)."""
        return NoiseSampler(self, repeats)

    def meta(self, repeats: dict[str, int] | None = None) -> dict[str, Any]:
        """Provenance and units, for a dataset's ``meta``.

        Given ``repeats`` (trials per stimulus of each split), that of a recording: the
        noise seed (the simulator seed) and the repeats are added.

        Examples
        --------
        >>> meta = CortexSimulator(image_size=32, arrays={"IT": 1}, electrodes_per_array=2).meta()
        >>> meta["simulator"], meta["seed"], meta["window_ms"]
        ('cortex', 0, {'IT': [75.0, 175.0]})
        """
        meta: dict[str, Any] = {
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
        if repeats is None:
            return meta
        return meta | {
            "noise_seed": self.seed,
            "repeats_train": int(repeats["train"]),
            "repeats_test": int(repeats["test"]),
        }

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """``images`` as contiguous float32, checked: ``[N, 1 or 3, image_size, image_size]``
        real numbers in [0, 1]; a clear error otherwise."""
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

    def _noise_seed(self, seed: int | None) -> int:
        return self.seed if seed is None else int(seed)

    def _area_sizes(self) -> list[int]:
        return [len(self._layout[a]["rf_x"]) for a in self._areas]

    def _column(self, name: str) -> np.ndarray:
        return np.concatenate([self._layout[a][name] for a in self._areas])

    def _raw_drive(self, images: torch.Tensor, calibrate: bool = False) -> torch.Tensor:
        """Pooled, tuned, rectified electrode input before normalisation, ``[n, n_units]``."""
        maps = self._bank.feature_maps(images, self._areas, calibrate)
        raw = []
        for area in self._areas:
            pooled = pool(maps[area], self._pooling[area])
            tuning = self._tuning[area]
            if area == "IT":
                glob = global_features(images)[:, :, None].expand(-1, -1, pooled.shape[2])
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
            compressed = naka_rushton(ratio, self._exponents)
            return compressed / self._compressed_reference

    def _calibrate(self, reference: np.ndarray) -> None:
        """Normalise channels and electrode drives to their means over reference images."""
        with torch.no_grad():
            raw = self._raw_drive(torch.from_numpy(reference), calibrate=True)
        self._raw_reference = raw.mean(0).clamp_min(EPS)
        exponents = [AREA_PARAMETERS[a].naka_rushton_exponent for a in self._areas]
        self._exponents = torch.tensor(
            np.repeat(exponents, self._area_sizes()), dtype=torch.float32
        )
        compressed = naka_rushton(raw / self._raw_reference, self._exponents)
        self._compressed_reference = compressed.mean(0).clamp_min(EPS)
        self._reference_drive = (compressed / self._compressed_reference).numpy()

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
                "reliability": self._model.reliability(self._reference_drive),
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


class NoiseSampler:
    """The noise of a recording: each stimulus's trials seeded by its global index.

    `per_stimulus` draws the trials (in any process, in any order); `in_order` passes them
    through, so a file written chunk by chunk holds the trials `CortexSimulator.responses`
    gives for the whole stimulus set.
    """

    def __init__(self, simulator: CortexSimulator, repeats: dict[str, int]) -> None:
        self.simulator, self.repeats = simulator, repeats

    def per_stimulus(self, rates: np.ndarray, split: str, first: int) -> np.ndarray:
        """The trials of stimuli ``first``, ``first + 1``, ... with drives ``rates``."""
        return self.simulator.trials(rates, first, self.repeats[split])

    def in_order(self, values: np.ndarray, split: str) -> np.ndarray:
        """The trials themselves: they were drawn by `per_stimulus`."""
        return values


@SIMULATORS.register("cortex")
def cortex_simulator(image_size: int, seed: int = 0, **options: Any) -> CortexSimulator:
    """The registry's builder: `CortexSimulator` with any of its keyword arguments.

    Examples
    --------
    >>> cortex_simulator(32, arrays={"V1": 1}, electrodes_per_array=2).n_units
    2
    """
    return CortexSimulator(image_size=image_size, seed=seed, **options)
