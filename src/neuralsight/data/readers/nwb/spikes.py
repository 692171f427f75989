"""Spikes of an NWB session: the units table's spike times, checked, and binned per presentation.

`read_spike_trains` gathers every unit's spike times from the ragged ``spike_times`` column
(sorted within each unit), `check_spikes_within_session` refuses spikes after the session end,
and `bin_spikes` counts them in the bins `bin_edges` gives, per presentation, with
``np.searchsorted`` on each unit's sorted times, presentations in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hdmf.common import VectorIndex
from pynwb import NWBFile, TimeSeries
from pynwb.misc import Units
from rich.progress import track

from neuralsight.data.dataset import DatasetError

DEFAULT_WINDOW_MS = (0.0, 250.0)
DEFAULT_BIN_MS = 10.0
BIN_EDGES_SCRATCH = "neuralsight_bin_edges_ms"


@dataclass
class SpikeTrains:
    """All units' spike times as one flat array, each unit's slice sorted."""

    times_s: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def unit(self, row: int) -> np.ndarray:
        """The sorted spike times (s) of the unit in row ``row`` of the units table."""
        return self.times_s[self.starts[row] : self.ends[row]]


def require_units(nwb: NWBFile, path: Path) -> Units:
    """The units table of ``nwb``; an error names what is missing when it has no ``spike_times``."""
    if nwb.units is None:
        raise DatasetError(
            f"{path}: field 'units' is missing; expected a units table with spike_times, "
            f"found none (acquisition: {sorted(nwb.acquisition)}, "
            f"processing: {sorted(nwb.processing)})"
        )
    if "spike_times" not in nwb.units.colnames:
        raise DatasetError(
            f"{path}: field 'units/spike_times' is missing; expected a ragged spike_times "
            f"column, found columns {list(nwb.units.colnames)}"
        )
    return nwb.units


def read_spike_trains(units: Units, path: Path) -> SpikeTrains:
    """Every unit's spike times, sorted within each unit; a NaN or a spike before 0 s is an error."""
    column = units["spike_times"]
    if not isinstance(column, VectorIndex):
        raise DatasetError(
            f"{path}: field 'units/spike_times' must be a ragged (indexed) column, "
            f"found a plain {type(column).__name__}"
        )
    ends = np.asarray(column.data[:], dtype=np.int64)
    times = np.asarray(column.target.data[:], dtype=np.float64)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    if not np.all(np.isfinite(times)):
        row = int(np.searchsorted(ends, int(np.flatnonzero(~np.isfinite(times))[0]), side="right"))
        raise DatasetError(
            f"{path}: field 'units/spike_times' of unit {units.id[row]} holds a NaN or infinite "
            "spike time; expected finite times in seconds"
        )
    spikes = SpikeTrains(times, starts, ends)
    _sort_within_units(spikes)
    if times.size and times.min() < 0:
        row = int(np.searchsorted(ends, int(np.argmin(times)), side="right"))
        raise DatasetError(
            f"{path}: field 'units/spike_times' of unit {units.id[row]} holds a spike at "
            f"{times.min():.6g} s; expected times >= 0 (the session start)"
        )
    return spikes


def _sort_within_units(spikes: SpikeTrains) -> None:
    steps = np.diff(spikes.times_s)
    boundaries = spikes.ends[:-1] - 1
    boundaries = boundaries[(boundaries >= 0) & (boundaries < steps.size)]
    steps[boundaries] = 0.0
    if np.any(steps < 0):
        for start, end in zip(spikes.starts, spikes.ends, strict=True):
            spikes.times_s[start:end].sort()


def check_spikes_within_session(
    nwb: NWBFile, units: Units, spikes: SpikeTrains, path: Path
) -> None:
    """Raise when a spike lies after the session end (see `_session_end`); no end known, no check."""
    end = _session_end(nwb, units)
    if end is None or spikes.times_s.size == 0 or spikes.times_s.max() <= end:
        return
    last = int(np.argmax(spikes.times_s))
    row = int(np.searchsorted(spikes.ends, last, side="right"))
    raise DatasetError(
        f"{path}: field 'units/spike_times' of unit {units.id[row]} holds a spike at "
        f"{spikes.times_s[last]:.6g} s; expected times <= the session end {end:.6g} s "
        "(latest time of the unit obs_intervals, epochs and time series); "
        "pass check_session_end=False to skip this check"
    )


def _session_end(nwb: NWBFile, units: Units) -> float | None:
    """Latest time of the unit observation intervals, epochs and time series, if any."""
    ends: list[float] = []
    if "obs_intervals" in units.colnames:
        observed = np.asarray(units["obs_intervals"].target.data[:], dtype=np.float64)
        if observed.size:
            ends.append(float(observed.max()))
    if nwb.epochs is not None and len(nwb.epochs):
        ends.append(float(np.max(nwb.epochs["stop_time"].data[:])))
    templates = {id(series) for series in nwb.stimulus_template.values()}
    for obj in nwb.objects.values():
        if isinstance(obj, TimeSeries) and id(obj) not in templates:
            series_end = _time_series_end(obj)
            if series_end is not None:
                ends.append(series_end)
    return max(ends) if ends else None


def _time_series_end(series: TimeSeries) -> float | None:
    if series.timestamps is not None:
        timestamps = series.timestamps
        return float(timestamps[-1]) if len(timestamps) else None
    if series.rate and series.num_samples:
        return float(series.starting_time or 0.0) + (series.num_samples - 1) / series.rate
    return None


def bin_spikes(
    spikes: SpikeTrains,
    unit_rows: np.ndarray,
    onsets_s: np.ndarray,
    edges_ms: np.ndarray,
    chunk_size: int,
    progress: bool,
) -> np.ndarray:
    """Counts ``[n_presentations, n_units, n_bins]``: spikes in ``[onset + a, onset + b)``."""
    n_bins = len(edges_ms) - 1
    responses = np.zeros((len(onsets_s), len(unit_rows), n_bins), dtype=np.float32)
    edges_s = np.asarray(edges_ms, dtype=np.float64) / 1000.0
    chunk_size = max(1, int(chunk_size))
    chunks = range(0, len(onsets_s), chunk_size)
    for start in track(chunks, description="binning spikes", disable=not progress, transient=True):
        grid = onsets_s[start : start + chunk_size, None] + edges_s[None, :]
        for column, row in enumerate(unit_rows):
            below = np.searchsorted(spikes.unit(row), grid, side="left")
            responses[start : start + chunk_size, column] = np.diff(below, axis=1)
    return responses


def bin_edges(
    nwb: NWBFile, window_ms: tuple[float, float] | None, bin_ms: float | None
) -> np.ndarray:
    """Bin edges in ms: the ones `write_nwb` stored when no window or width is given,
    else ``window_ms`` (default 0-250 ms) cut into ``bin_ms`` (default 10 ms) bins."""
    if window_ms is None and bin_ms is None and BIN_EDGES_SCRATCH in nwb.scratch:
        return np.asarray(nwb.scratch[BIN_EDGES_SCRATCH].data[:], dtype=np.float64)
    start, stop = (float(v) for v in (window_ms or DEFAULT_WINDOW_MS))
    width = float(DEFAULT_BIN_MS if bin_ms is None else bin_ms)
    if stop <= start or width <= 0:
        raise ValueError(
            f"window_ms must be (start, stop) with stop > start and bin_ms > 0, "
            f"got window_ms={window_ms}, bin_ms={bin_ms}"
        )
    n_bins = (stop - start) / width
    if abs(n_bins - round(n_bins)) > 1e-6:
        raise ValueError(
            f"window_ms {start, stop} is not a whole number of {width} ms bins ({n_bins:.4g})"
        )
    return start + width * np.arange(round(n_bins) + 1, dtype=np.float64)


def bin_width(edges_ms: np.ndarray) -> float | list[float]:
    """The bin width in ms, or every bin's width when they differ.

    Examples
    --------
    >>> bin_width(np.array([0.0, 10.0, 20.0])), bin_width(np.array([0.0, 10.0, 30.0]))
    (10.0, [10.0, 20.0])
    """
    widths = np.diff(edges_ms)
    return float(widths[0]) if np.allclose(widths, widths[0]) else widths.tolist()
