"""When and how noisily the electrodes respond: time course and trial-to-trial noise.

A gamma-shaped transient followed by a sustained level, decaying after the stimulus offset,
at a per-electrode latency (the time the noiseless response first reaches half its peak),
sampled in bins or averaged over one per-area window. Noise: temporally correlated
Gaussian MUA noise (AR(1), 3 ms time constant) with an electrode-specific SNR, a per-trial
additive baseline offset, and multiplicative gain fluctuations per trial that are partly
shared within an area. `TrialModel` holds both for a simulator's electrodes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.signal import lfilter

from neuralsight.simulate.cortex.parameters import (
    AREA_PARAMETERS,
    BASELINE_OFFSET_FRACTION,
    EPS,
    GAIN_PRIVATE_SD,
    GAIN_SHARED_SD,
    NOISE_TIME_CONSTANT_MS,
    SUBSAMPLES_PER_MS,
    AreaParameters,
)


class TrialModel:
    """Time course and noise of every electrode of a `CortexSimulator`.

    Parameters
    ----------
    layouts
        Per area (in `AREAS` order), the electrode columns of
        `neuralsight.simulate.cortex.layout.electrode_layout`.
    mode, window_ms, bin_ms, duration_ms, noise
        As in `CortexSimulator`.
    first_edge_ms, n_time_bins
        The first bin edge and the number of bins of the time course.

    Attributes
    ----------
    templates
        Noiseless response per unit drive, ``[n_units, n_bins]`` float32 tensor.
    """

    def __init__(
        self,
        layouts: dict[str, dict[str, np.ndarray]],
        mode: str,
        window_ms: dict[str, tuple[float, float]],
        bin_ms: float,
        duration_ms: float | None,
        noise: float,
        first_edge_ms: float,
        n_time_bins: int,
    ) -> None:
        self.layouts, self.areas = layouts, list(layouts)
        self.area_sizes = [len(layouts[a]["rf_x"]) for a in self.areas]
        self.snr = np.concatenate([layouts[a]["snr"] for a in self.areas])
        self.mode, self.window_ms, self.bin_ms = mode, window_ms, bin_ms
        self.duration_ms, self.noise = duration_ms, noise
        self.templates = self._time_templates(first_edge_ms, n_time_bins)
        self._noise_parameters = self._noise_terms()

    def _time_templates(self, first_edge_ms: float, n_time_bins: int) -> torch.Tensor:
        """Noiseless response per unit drive in each output bin, ``[n_units, n_bins]``."""
        if self.mode == "window":
            return torch.from_numpy(self.window_means()[:, None].astype(np.float32))
        per_bin = max(1, round(self.bin_ms * SUBSAMPLES_PER_MS))
        step = self.bin_ms / per_bin
        t = first_edge_ms + step * (np.arange(n_time_bins * per_bin) + 0.5)
        shapes = np.concatenate([self._area_shape(a, t) for a in self.areas])
        binned = shapes.reshape(len(shapes), n_time_bins, per_bin).mean(2)
        return torch.from_numpy(binned.astype(np.float32))

    def window_means(self) -> np.ndarray:
        """Mean noiseless response per unit drive over each electrode's area window."""
        step = 1.0 / SUBSAMPLES_PER_MS
        means = []
        for area in self.areas:
            start, stop = self.window_ms[area]
            means.append(self._area_shape(area, np.arange(start + step / 2, stop, step)).mean(1))
        return np.concatenate(means)

    def _area_shape(self, area: str, t: np.ndarray) -> np.ndarray:
        """Noiseless time course of an area's electrodes at times ``t`` (ms), peak 1."""
        p = AREA_PARAMETERS[area]
        onset = self.layouts[area]["latency_ms"][:, None] - _half_peak_delay(p)
        return _unit_shape(t[None, :] - onset, p, self.duration_ms) / _shape_peak(p)

    def _window_noise_factor(self) -> np.ndarray:
        """Per electrode: SD of the mean of 1 ms noise over its area's window, per unit SD."""
        rho = math.exp(-1.0 / NOISE_TIME_CONSTANT_MS)
        factors = [
            np.full(n, ar1_mean_sd(rho, round(self.window_ms[a][1] - self.window_ms[a][0])))
            for a, n in zip(self.areas, self.area_sizes, strict=True)
        ]
        return np.concatenate(factors)

    def _noise_terms(self) -> dict[str, Any]:
        """Per-electrode SDs of the noise terms at the output's time resolution."""
        sd_1ms = self.noise / self.snr
        rho_1ms = math.exp(-1.0 / NOISE_TIME_CONSTANT_MS)
        factor: np.ndarray | float
        if self.mode == "window":
            factor, rho = self._window_noise_factor(), 0.0
        else:
            factor = ar1_mean_sd(rho_1ms, max(1, round(self.bin_ms)))
            rho = rho_1ms**self.bin_ms
        return {
            "additive": (sd_1ms * factor).astype(np.float32),
            "baseline": (BASELINE_OFFSET_FRACTION * sd_1ms).astype(np.float32),
            "rho": np.float32(rho),
        }

    def trials(
        self, drive: np.ndarray, index: np.ndarray, repeats: int, noise_seed: int
    ) -> np.ndarray:
        """Trials ``[N * repeats, n_units, n_bins]`` for the images with global indices
        ``index`` and noiseless ``drive`` ``[N, n_units]``; each image's noise is seeded by
        ``noise_seed`` and its index."""
        templates = self.templates.numpy()
        clean = drive[:, None, :, None] * templates[None, None]
        out = np.repeat(clean, repeats, axis=1)
        if self.noise > 0:
            params = self._noise_parameters
            area_index = np.repeat(np.arange(len(self.areas)), self.area_sizes)
            for row, stimulus in enumerate(index):
                rng = np.random.default_rng([1, noise_seed, int(stimulus)])
                out[row] = self._noisy(out[row], rng, params, area_index)
        return out.reshape(-1, *templates.shape)

    def _noisy(
        self,
        clean: np.ndarray,
        rng: np.random.Generator,
        params: dict[str, Any],
        area_index: np.ndarray,
    ) -> np.ndarray:
        repeats, n_units, n_bins = clean.shape
        shared_sd, private_sd = GAIN_SHARED_SD * self.noise, GAIN_PRIVATE_SD * self.noise
        log_gain = shared_sd * rng.standard_normal((repeats, len(self.areas)))[:, area_index]
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

    def reliability(self, reference_drive: np.ndarray) -> np.ndarray:
        """Expected test-retest correlation of window responses, given the noiseless drive
        ``[n_images, n_units]`` of the reference images."""
        window_mean = self.window_means()
        variance = reference_drive.var(0)
        gain_second_moment = math.exp((GAIN_SHARED_SD**2 + GAIN_PRIVATE_SD**2) * self.noise**2)
        sd_1ms = self.noise / self.snr
        additive = sd_1ms * self._window_noise_factor()
        baseline = BASELINE_OFFSET_FRACTION * sd_1ms
        signal = window_mean**2 * variance
        gain_noise = window_mean**2 * (gain_second_moment - 1) * (variance + 1)
        return signal / np.maximum(signal + gain_noise + baseline**2 + additive**2, EPS)


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


def ar1_mean_sd(rho: float, length: int) -> float:
    """SD of the mean of ``length`` consecutive samples of a unit-variance AR(1) process."""
    lags = np.arange(1, length)
    total = length + 2 * np.sum((length - lags) * rho**lags)
    return float(math.sqrt(total) / length)
