"""Time in a simulated retina: the biphasic temporal filter and frame-by-frame streaming.

Videos pass through a causal biphasic temporal filter (difference of two gamma functions,
`biphasic_kernel`), applied to the linear signals before any rectification (the subunit
inputs and the linear drive), so the response to a frame depends on the recent frames.
`RetinaStream` encodes a stream frame by frame with the same result as
`neuralsight.simulate.retina.RetinaSimulator.simulate_video` on the whole video.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from neuralsight.simulate.base import check_positive, validate_images

if TYPE_CHECKING:
    from neuralsight.simulate.retina.simulator import RetinaSimulator


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
    check_positive("frame_ms", frame_ms)
    check_positive("tau_fast_ms", tau_fast_ms)
    check_positive("tau_slow_ms", tau_slow_ms)
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


def causal_filter(
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
    >>> from neuralsight.simulate.retina import RetinaSimulator
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
        n_features = self.simulator.n_features
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
        features = sim.linear_features(sim.contrast_images(frames))
        filtered, self._history = causal_filter(features, self.kernel, self._history)
        self.rates = sim.rates_from_features(filtered)
        expected = self.rates.astype(np.float64) * (self.frame_ms / 1000.0)
        return self._rng.poisson(expected).astype(np.float32)
