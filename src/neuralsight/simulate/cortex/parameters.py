"""Ground-truth parameters of the simulated areas, the model's constants, argument checks.

`AREA_PARAMETERS` holds, per area, the receptive-field sizes, latencies, time course, SNR,
pooling and nonlinearity of `neuralsight.simulate.cortex`; the constants fix the feature
channels and the noise model; the ``check_*`` functions validate `CortexSimulator`'s
arguments with messages that name the argument, the expected and the found value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
EPS = 1e-6


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


def as_image_array(
    name: str, images: np.ndarray | None, like: np.ndarray | None = None
) -> np.ndarray:
    """``images`` as an array ``[N, C, H, W]`` (``None``: no images, shaped like ``like``)."""
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


def check_image_size(image_size: int) -> int:
    """The image side: an integer multiple of 8, at least 32."""
    if not isinstance(image_size, int | np.integer) or image_size < 32 or image_size % 8:
        raise ValueError(
            f"image_size must be an integer multiple of 8, at least 32, found {image_size!r}"
        )
    return int(image_size)


def check_arrays(arrays: dict[str, int]) -> dict[str, int]:
    """Arrays per area: a subset of `AREAS`, non-negative counts, at least one array."""
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


def check_windows(
    window_ms: dict[str, tuple[float, float]] | None,
) -> dict[str, tuple[float, float]]:
    """Per-area response windows, the TVSD windows where not given."""
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


def count_bins(t_start_ms: float, t_stop_ms: float, bin_ms: float) -> int:
    """Number of time bins from ``t_start_ms`` to ``t_stop_ms`` (both ends included)."""
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


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value``, which must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, found {value!r}")
    return value


def check_positive_int(name: str, value: int) -> int:
    """``value`` as an int, which must be a positive integer."""
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, found {value!r}")
    return int(value)


def check_non_negative(name: str, value: float) -> float:
    """``value`` as a float, which must be non-negative."""
    if not value >= 0:
        raise ValueError(f"{name} must be non-negative, found {value!r}")
    return float(value)


def check_optional_positive(name: str, value: float | None) -> float | None:
    """``value`` as a float or None, which must be positive where given."""
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be positive or None, found {value!r}")
    return None if value is None else float(value)
