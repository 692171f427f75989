"""The simulator protocol, the registry of simulators, and what every simulation shares.

A simulator turns images into the responses of a population of units. The retina
(`neuralsight.simulate.retina`) and the cortex (`neuralsight.simulate.cortex`) implement one
small interface, `Simulator`, and everything that runs a simulation (the chunked file
writer `neuralsight.simulate.chunked`, `neuralsight simulate`) uses only that interface:

- `Simulator.rates`: the noiseless response amplitude of every unit to every image
  (firing rates in Hz for the retina; for the cortex the drive that scales each
  electrode's time course);
- `Simulator.responses`: sampled single trials ``[N * repeats, n_units, n_bins]``;
- `Simulator.sampler`: the same noise for a recording made chunk by chunk (see
  `TrialSampler`);
- `Simulator.units`, `Simulator.bin_edges_ms`: the units table and the time bins;
- `Simulator.meta`: provenance (simulator name, seed, version, parameters).

Each simulator registers a builder in `SIMULATORS` under its short name; the builder takes
the image side, the seed and the simulator's own options.

Examples
--------
>>> import numpy as np
>>> import neuralsight.simulate
>>> SIMULATORS.names()
('cortex', 'retina')
>>> retina = SIMULATORS.get("retina")(16, seed=0, n_cells=6)
>>> isinstance(retina, Simulator), retina.rates(np.zeros((2, 1, 16, 16))).shape
(True, (2, 6))
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from neuralsight.registry import Registry

SPLITS: tuple[Literal["train"], Literal["test"]] = ("train", "test")


class TrialSampler(Protocol):
    """The noise of one recording, drawn in two steps so chunks can be made in parallel.

    `per_stimulus` may run in any process and in any order (noise seeded by the global
    index of the stimulus); `in_order` runs in the writing process, chunk after chunk in
    stimulus order (noise drawn from one generator per split). A simulator puts each draw
    in one of the two steps and returns its input unchanged from the other, so the trials
    of a file are the same whichever chunks and processes made them.
    """

    def per_stimulus(self, rates: np.ndarray, split: str, first: int) -> np.ndarray:
        """Values for the ``[k, n_units]`` rates of stimuli ``first`` to ``first + k - 1``."""
        ...

    def in_order(self, values: np.ndarray, split: str) -> np.ndarray:
        """Trials ``[k * repeats, n_units, n_bins]`` from the next chunk's `per_stimulus` values."""
        ...


@runtime_checkable
class Simulator(Protocol):
    """What every simulator offers; see the module docstring."""

    seed: int
    units: pd.DataFrame

    @property
    def n_units(self) -> int:
        """Number of units (rows of `units`)."""
        ...

    @property
    def n_bins(self) -> int:
        """Number of time bins of a trial."""
        ...

    @property
    def bin_edges_ms(self) -> np.ndarray:
        """``[n_bins + 1]`` bin edges in ms relative to stimulus onset."""
        ...

    @property
    def chunk_trials(self) -> int:
        """Trials per HDF5 chunk of a file of this simulator's responses."""
        ...

    def rates(self, images: np.ndarray) -> np.ndarray:
        """Noiseless amplitudes ``[N, n_units]`` float32 for images ``[N, C, H, W]``."""
        ...

    def responses(
        self, images: np.ndarray, repeats: int = 1, seed: int | None = None
    ) -> np.ndarray:
        """Sampled trials ``[N * repeats, n_units, n_bins]`` float32, stimulus-major."""
        ...

    def sampler(self, repeats: dict[str, int]) -> TrialSampler:
        """The noise of a recording with ``repeats[split]`` trials per stimulus."""
        ...

    def meta(self, repeats: dict[str, int] | None = None) -> dict[str, Any]:
        """Provenance; given ``repeats``, that of a recording with those repeats."""
        ...


SIMULATORS: Registry[Any] = Registry("simulator")
"""Builders of simulators by short name: ``SIMULATORS.get(name)(image_size, seed, **options)``."""


def trial_layout(counts: dict[str, int], repeats: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``stimulus_id`` and ``split`` of every trial: train then test, stimulus-major.

    Examples
    --------
    >>> stimulus_id, split = trial_layout({"train": 2, "test": 1}, {"train": 1, "test": 2})
    >>> stimulus_id.tolist(), split.tolist()
    ([0, 1, 2, 2], ['train', 'train', 'test', 'test'])
    """
    stimulus_id = np.concatenate(
        [
            np.repeat(np.arange(counts["train"]), repeats["train"]),
            counts["train"] + np.repeat(np.arange(counts["test"]), repeats["test"]),
        ]
    )
    split = np.repeat(list(SPLITS), [counts[s] * repeats[s] for s in SPLITS])
    return stimulus_id, split


def check_repeats(**repeats: Any) -> None:
    """Each named value must be an integer >= 1 (trials per stimulus, stimuli per split).

    Examples
    --------
    >>> check_repeats(repeats_train=1, repeats_test=0)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'repeats_test' must be an integer >= 1, found 0
    """
    for name, value in repeats.items():
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise ValueError(f"parameter '{name}' must be an integer >= 1, found {value!r}")


def check_positive(name: str, value: float) -> None:
    """``value`` must be > 0.

    Examples
    --------
    >>> check_positive("gain", -1.0)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'gain' must be > 0, found -1.0
    """
    if not value > 0:
        raise ValueError(f"parameter '{name}' must be > 0, found {value}")


def check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    """``value`` must be a range ``(lo, hi)`` with ``low <= lo <= hi <= high``.

    Examples
    --------
    >>> check_range("baseline_hz", (3.0, 2.0), 0.0, 10.0)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'baseline_hz' must be a range (lo, hi) with 0.0 <= lo <= hi <= 10.0, found (3.0, 2.0)
    """
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise ValueError(
            f"parameter '{name}' must be a range (lo, hi) with {low} <= lo <= hi <= {high}, "
            f"found {value}"
        )


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
