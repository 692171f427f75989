"""NWB (Neurodata Without Borders) sessions in and out of a `NeuralDataset`.

NWB is the format of DANDI and the Allen Brain Observatory. `read` translates one session
into a `NeuralDataset`:

- **spikes** come from the ``units`` table (its ragged ``spike_times`` column);
- **presentations** come from intervals tables (default: every table in ``nwb.intervals``
  whose name ends in ``_presentations``, plus ``trials``); a presentation's ``start_time`` is
  its onset and one integer column (``frame``, ``image_index``, ``stimulus_index`` or
  ``image_id``) names the image it showed;
- **pixels** come from an ``ImageSeries`` / ``OpticalSeries`` or an ``Images`` container in
  ``nwb.stimulus`` or ``nwb.stimulus_template`` (an ``IndexSeries`` is followed to the images
  it indexes), or from a folder of images or a ``.npy`` stack given as ``stimulus_path``;
- **responses** are spike counts per presentation, unit and time bin, counted with
  ``np.searchsorted`` on each unit's sorted spike times, presentations in chunks.

`write_nwb` exports a `NeuralDataset` of spike counts so that `read` gives it back: the
stimuli become an ``OpticalSeries`` template, the trials a ``stimulus_presentations`` table
with ``frame`` and ``split`` columns, and the counts spike times placed evenly inside their
bins.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdmf.common import VectorData, VectorIndex
from hdmf.data_utils import DataChunkIterator
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.base import Images
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject
from pynwb.image import ImageSeries, IndexSeries, OpticalSeries
from pynwb.misc import Units
from rich.progress import track

from neuralsight.data.dataset import SPLITS, DatasetError, NeuralDataset
from neuralsight.files import atomic_path

DEFAULT_INDEX_COLUMNS = ("frame", "image_index", "stimulus_index", "image_id")
AREA_COLUMNS = ("area", "brain_area", "location")
DEFAULT_WINDOW_MS = (0.0, 250.0)
DEFAULT_BIN_MS = 10.0
BIN_EDGES_SCRATCH = "neuralsight_bin_edges_ms"
PRESENTATIONS_TABLE = "stimulus_presentations"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
_OPERATORS = {
    ">=": np.greater_equal,
    "<=": np.less_equal,
    "==": np.equal,
    ">": np.greater,
    "<": np.less,
}


@dataclass
class _Presentations:
    """Stimulus presentations gathered from intervals tables, sorted by onset."""

    onsets_s: np.ndarray
    frames: np.ndarray
    split: np.ndarray | None
    tables: dict[str, str]
    n_blank: int
    n_duplicate: int


@dataclass
class _SpikeTrains:
    """All units' spike times as one flat array, each unit's slice sorted."""

    times_s: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def unit(self, row: int) -> np.ndarray:
        return self.times_s[self.starts[row] : self.ends[row]]


def read(
    paths: Sequence[str] | str,
    intervals: Sequence[str] | None = None,
    index_column: str | None = None,
    window_ms: tuple[float, float] | None = None,
    bin_ms: float | None = None,
    stimulus: str | None = None,
    stimulus_path: str | os.PathLike | None = None,
    unit_filters: dict[str, Any] | None = None,
    test_fraction: float = 0.2,
    split_column: str | None = None,
    test_stimuli: Sequence[int] | None = None,
    split_seed: int = 0,
    check_session_end: bool = True,
    chunk_size: int = 2048,
    progress: bool = True,
) -> NeuralDataset:
    """Read one NWB session into a `NeuralDataset` of binned spike counts.

    Parameters
    ----------
    paths
        One NWB file (a list holding one path, as every reader takes, or the path itself).
    intervals
        Names of the intervals tables that hold the presentations. Default: the table
        ``<stimulus>_presentations`` when ``stimulus`` names one that exists, else every table
        whose name ends in ``_presentations`` plus ``trials``; default tables without an index
        column are skipped. Presentations of all tables are merged and sorted by onset; a
        presentation listed twice (same onset, same image) is kept once.
    index_column
        Column giving the stimulus frame of each presentation. Default: the first of
        ``frame``, ``image_index``, ``stimulus_index``, ``image_id`` that the table has.
        Negative or NaN values (blank sweeps, as in the Allen Brain Observatory) are dropped.
    window_ms, bin_ms
        Counting window relative to onset and bin width, in ms. Default: the bin edges stored
        by `write_nwb` when the file has them, else (0, 250) ms in 10 ms bins. Bins are
        half-open, ``[left, right)``; ``bin_ms`` equal to the window length gives one bin.
    stimulus
        Name of the ``ImageSeries`` / ``OpticalSeries`` / ``Images`` / ``IndexSeries`` in
        ``nwb.stimulus`` or ``nwb.stimulus_template``; default: the single one found.
    stimulus_path
        Pixels from outside the file instead: a folder of images read in sorted file-name
        order, or a ``.npy`` array ``[n, H, W]`` or ``[n, H, W, C]``.
    unit_filters
        Keep only units whose columns pass every condition, e.g.
        ``{"snr": ">=2", "quality": "good", "area": ["V1", "V4"]}``. A condition is a string
        starting with ``>=``, ``<=``, ``>``, ``<`` or ``==`` followed by a value, a plain value
        (equality) or a list of values (membership). Missing values (NaN) never pass.
    test_fraction, split_column, test_stimuli, split_seed
        How trials are split, first rule that applies: ``test_stimuli`` (stimulus ids whose
        trials are ``test``); ``split_column`` (a ``train`` / ``test`` column of the intervals
        tables; a column named ``split`` is used without being named); otherwise the
        ``test_fraction`` of shown stimuli with the most presentations form the test split
        (repeated images are held out, as in many data sets), ties broken by a permutation
        seeded with ``split_seed``. All trials of one stimulus share its split.
    check_session_end
        Raise when a spike lies after the session end, the latest time of the unit
        observation intervals, the ``epochs`` table and the time series in the file (the
        check is skipped when the file has none of these).
    chunk_size
        Presentations binned at a time.
    progress
        Show a progress bar while binning.

    Stimulus pixels become float32 ``[n, C, H, W]`` in [0, 1]: arrays are read as
    ``[n, H, W]`` or ``[n, H, W, C]`` (rows first; an alpha channel is dropped); ``uint8``
    is divided by 255; other types are kept when already in [0, 1], divided by 255 when in
    [0, 255], and min-max rescaled over the whole stack otherwise (``meta["stimulus_scaling"]``
    says which).

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> toy = NeuralDataset.from_arrays(
    ...     np.ones((4, 2, 3), np.float32), np.zeros((4, 1, 8, 8), np.float32),
    ...     bin_edges_ms=[0, 10, 20, 30],
    ... )
    >>> path = write_nwb(toy, os.path.join(tempfile.mkdtemp(), "toy.nwb"))
    >>> back = read([str(path)], progress=False)
    >>> back.responses.shape, back.bin_edges_ms.tolist()
    ((4, 2, 3), [0.0, 10.0, 20.0, 30.0])
    """
    path = _single_path(paths)
    if test_stimuli is not None and split_column is not None:
        raise ValueError("give either test_stimuli or split_column, not both")
    with _open_nwb(path) as nwb:
        units_table = _require_units(nwb, path)
        presentations = _read_presentations(
            nwb, path, intervals, index_column, split_column, stimulus
        )
        spikes = _read_spike_trains(units_table, path)
        if check_session_end:
            _check_session_end(nwb, units_table, spikes, path)
        units = _unit_table(nwb, units_table)
        keep = _unit_mask(units, unit_filters, path)
        if stimulus_path is not None:
            stimuli, stimulus_info = _load_stimulus_path(Path(stimulus_path))
        else:
            stimuli, stimulus_info = _load_nwb_stimuli(nwb, path, stimulus)
        _check_frames(presentations, len(stimuli), stimulus_info["stimulus_source"], path)
        edges_ms = _bin_edges(nwb, window_ms, bin_ms)
        responses = _bin_spikes(
            spikes, np.flatnonzero(keep), presentations.onsets_s, edges_ms, chunk_size, progress
        )
        split, split_rule = _choose_split(
            presentations, test_stimuli, test_fraction, split_seed, len(stimuli)
        )
        meta = {
            **_session_meta(nwb, path),
            "window_ms": [float(edges_ms[0]), float(edges_ms[-1])],
            "bin_ms": _bin_width(edges_ms),
            "response_units": "spike counts",
            "intervals": presentations.tables,
            "blank_presentations_dropped": presentations.n_blank,
            "duplicate_presentations_dropped": presentations.n_duplicate,
            "unit_filters": _json_ready(unit_filters or {}),
            "units_kept": int(keep.sum()),
            "units_in_file": len(units),
            "split_rule": split_rule,
            **stimulus_info,
        }
    return NeuralDataset(
        responses=responses,
        stimuli=stimuli,
        stimulus_id=presentations.frames,
        units=units[keep].reset_index(drop=True),
        bin_edges_ms=edges_ms,
        split=split,
        meta=meta,
    )


def write_nwb(
    dataset: NeuralDataset,
    path: str | os.PathLike,
    session_description: str = "neuralsight dataset exported to NWB",
    bin_ms: float | None = None,
) -> Path:
    """Export a `NeuralDataset` of spike counts to an NWB file that `read` gives back.

    The stimuli are written as an ``OpticalSeries`` named ``stimuli`` in
    ``nwb.stimulus_template`` (float32 in [0, 1], ``[n, H, W]`` or ``[n, H, W, 3]``); each
    trial becomes one row of the intervals table ``stimulus_presentations`` (onsets spaced so
    that windows never overlap; ``frame`` = stimulus id, ``split``); each count of k spikes in
    bin ``[a, b)`` becomes k spike times at ``a + (b - a) * j / (k + 1)``, j = 1..k, so
    re-binning reproduces the counts exactly. Units keep their ``unit_id`` as table ids (or
    0..n-1 with ``original_unit_id`` when the ids are not unique integers) and their other
    columns (``area``, quality, receptive fields ...). The bin edges are stored in
    ``nwb.scratch`` so `read` uses them by default. The file is written under a temporary
    name and renamed when complete.

    Parameters
    ----------
    dataset
        Responses must be non-negative integer counts.
    path
        Output ``.nwb`` file.
    session_description
        The NWB ``session_description``.
    bin_ms
        Bin width in ms for datasets whose ``bin_edges_ms`` number the bins rather than time
        them: the bins are then written as consecutive ``bin_ms`` wide bins from onset. By
        default the dataset's ``bin_edges_ms`` are used as they are.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> toy = NeuralDataset.from_arrays(np.eye(3, dtype=np.float32), np.zeros((3, 1, 4, 4), np.float32))
    >>> write_nwb(toy, os.path.join(tempfile.mkdtemp(), "toy.nwb")).suffix
    '.nwb'
    """
    path = Path(path)
    _check_spike_counts(dataset)
    edges_ms = dataset.bin_edges_ms
    if bin_ms is not None:
        if bin_ms <= 0:
            raise ValueError(f"bin_ms must be positive, got {bin_ms}")
        edges_ms = bin_ms * np.arange(dataset.n_bins + 1, dtype=np.float64)
    onsets_s = _synthetic_onsets(dataset.n_trials, edges_ms)
    session_end_s = float(onsets_s[-1] + max(edges_ms[-1], 0.0) / 1000.0) if len(onsets_s) else 0.0
    nwb = _new_nwb_file(dataset.meta, session_description)
    nwb.add_stimulus_template(_stimulus_series(dataset))
    nwb.add_time_intervals(_presentation_table(dataset, onsets_s, edges_ms))
    spike_times = _synthetic_spike_times(dataset, onsets_s, edges_ms)
    nwb.units = _units_table(dataset, spike_times, session_end_s)
    nwb.add_scratch(
        np.asarray(edges_ms, dtype=np.float64),
        name=BIN_EDGES_SCRATCH,
        description="bin edges (ms from onset) of the neuralsight dataset this file was written from",
    )
    with atomic_path(path) as tmp, NWBHDF5IO(tmp, "w") as io:
        io.write(nwb)
    return path


# --- opening the file -------------------------------------------------------------------


def _single_path(paths: Sequence[str] | str | os.PathLike) -> Path:
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if len(paths) != 1:
        raise ValueError(f"the NWB reader reads one session file, got {len(paths)} paths: {paths}")
    path = Path(paths[0])
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such NWB file")
    return path


@contextmanager
def _open_nwb(path: Path) -> Iterator[NWBFile]:
    """The `NWBFile` of ``path``, open while the context lasts; a non-NWB file is a `DatasetError`."""
    try:
        io = NWBHDF5IO(str(path), "r")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{path}: not a readable NWB file ({err})") from err
    try:
        try:
            nwb = io.read()
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"{path}: not a readable NWB file ({err})") from err
        yield nwb
    finally:
        io.close()


# --- spikes -----------------------------------------------------------------------------


def _require_units(nwb: NWBFile, path: Path) -> Units:
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


def _read_spike_trains(units: Units, path: Path) -> _SpikeTrains:
    column = units["spike_times"]
    if not isinstance(column, VectorIndex):
        raise DatasetError(
            f"{path}: field 'units/spike_times' must be a ragged (indexed) column, "
            f"found a plain {type(column).__name__}"
        )
    ends = np.asarray(column.data[:], dtype=np.int64)
    times = np.asarray(column.target.data[:], dtype=np.float64)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    spikes = _SpikeTrains(times, starts, ends)
    _sort_within_units(spikes)
    if times.size and times.min() < 0:
        row = int(np.searchsorted(ends, int(np.argmin(times)), side="right"))
        raise DatasetError(
            f"{path}: field 'units/spike_times' of unit {units.id[row]} holds a spike at "
            f"{times.min():.6g} s; expected times >= 0 (the session start)"
        )
    return spikes


def _sort_within_units(spikes: _SpikeTrains) -> None:
    steps = np.diff(spikes.times_s)
    boundaries = spikes.ends[:-1] - 1
    boundaries = boundaries[(boundaries >= 0) & (boundaries < steps.size)]
    steps[boundaries] = 0.0
    if np.any(steps < 0):
        for start, end in zip(spikes.starts, spikes.ends, strict=True):
            spikes.times_s[start:end].sort()


def _check_session_end(nwb: NWBFile, units: Units, spikes: _SpikeTrains, path: Path) -> None:
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


def _bin_spikes(
    spikes: _SpikeTrains,
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


def _bin_edges(
    nwb: NWBFile, window_ms: tuple[float, float] | None, bin_ms: float | None
) -> np.ndarray:
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


def _bin_width(edges_ms: np.ndarray) -> float | list[float]:
    widths = np.diff(edges_ms)
    return float(widths[0]) if np.allclose(widths, widths[0]) else widths.tolist()


# --- units ------------------------------------------------------------------------------


def _unit_table(nwb: NWBFile, units: Units) -> pd.DataFrame:
    table = pd.DataFrame({"unit_id": np.asarray(units.id.data[:], dtype=np.int64)})
    table["area"] = _unit_areas(nwb, units)
    for name in units.colnames:
        values = _scalar_column(units[name])
        if values is not None and name not in table.columns:
            table[name] = values
    return table


def _scalar_column(column) -> np.ndarray | None:
    """Values of a one-value-per-row column of numbers or strings, else None."""
    if type(column) is not VectorData or len(getattr(column.data, "shape", ())) != 1:
        return None
    values = np.asarray(column.data[:])
    if values.dtype.kind in "biuf":
        return values
    if values.dtype.kind in "SUO" and all(isinstance(v, str | bytes) for v in values):
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    return None


def _unit_areas(nwb: NWBFile, units: Units) -> np.ndarray:
    """Area of each unit: an area column of the units table, else its electrode's location."""
    n_units = len(units.id)
    for name in AREA_COLUMNS:
        if name in units.colnames:
            values = _scalar_column(units[name])
            if values is not None and values.dtype.kind == "O":
                return _clean_areas(values)
    if "electrodes" in units.colnames:
        region = units["electrodes"]
        rows = _first_electrode_rows(region)
        locations = _scalar_column(_region_table(region)["location"])
        if locations is not None:
            areas = np.full(n_units, "unknown", dtype=object)
            has = rows >= 0
            areas[has] = locations[rows[has]]
            return _clean_areas(areas)
    if "peak_channel_id" in units.colnames and nwb.electrodes is not None:
        locations = _scalar_column(nwb.electrodes["location"])
        if locations is not None:
            position = {int(e): i for i, e in enumerate(nwb.electrodes.id.data[:])}
            peaks = units["peak_channel_id"].data[:]
            return _clean_areas(
                np.array([locations[position[int(p)]] if int(p) in position else "" for p in peaks])
            )
    return np.full(n_units, "unknown", dtype=object)


def _first_electrode_rows(region) -> np.ndarray:
    """Row (in the electrodes table) of each unit's first electrode; -1 where it has none."""
    if isinstance(region, VectorIndex):
        ends = np.asarray(region.data[:], dtype=np.int64)
        flat = np.asarray(region.target.data[:], dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        first = np.full(len(ends), -1, dtype=np.int64)
        has = ends > starts
        first[has] = flat[starts[has]]
        return first
    return np.asarray(region.data[:], dtype=np.int64)


def _region_table(region):
    return region.target.table if isinstance(region, VectorIndex) else region.table


def _clean_areas(values: np.ndarray) -> np.ndarray:
    text = np.array([str(v).strip() for v in values], dtype=object)
    missing = np.isin(np.char.lower(text.astype(str)), ["", "none", "nan", "unknown"])
    text[missing] = "unknown"
    return text


def _unit_mask(units: pd.DataFrame, filters: dict[str, Any] | None, path: Path) -> np.ndarray:
    """Rows of ``units`` passing every condition of ``filters`` (see `read`)."""
    keep = np.ones(len(units), dtype=bool)
    for column, condition in (filters or {}).items():
        if column not in units.columns:
            raise DatasetError(
                f"{path}: unit_filters names column '{column}', which the units table lacks; "
                f"found columns {list(units.columns)}"
            )
        keep &= _condition_mask(units[column].to_numpy(), condition, column, path)
    if not keep.any():
        raise DatasetError(
            f"{path}: unit_filters {filters} leave no unit of the {len(units)} in the file"
        )
    return keep


def _condition_mask(values: np.ndarray, condition: Any, column: str, path: Path) -> np.ndarray:
    if isinstance(condition, list | tuple | set):
        return np.isin(values, list(condition))
    operator, operand = "==", condition
    if isinstance(condition, str):
        text = condition.strip()
        for symbol in _OPERATORS:
            if text.startswith(symbol):
                operator, operand = symbol, text[len(symbol) :].strip()
                break
    if values.dtype.kind in "biuf":
        try:
            number = float(operand)
        except (TypeError, ValueError) as err:
            raise DatasetError(
                f"{path}: unit_filters condition {condition!r} on numeric column '{column}' "
                f"needs a number, found {operand!r}"
            ) from err
        return _OPERATORS[operator](values.astype(np.float64), number)
    if operator != "==":
        raise DatasetError(
            f"{path}: unit_filters condition {condition!r} compares column '{column}' of "
            f"text values; only equality or a list of values applies to text"
        )
    return values.astype(str) == str(operand)


# --- presentations ----------------------------------------------------------------------


def _read_presentations(
    nwb: NWBFile,
    path: Path,
    intervals: Sequence[str] | None,
    index_column: str | None,
    split_column: str | None,
    stimulus: str | None,
) -> _Presentations:
    tables, named = _candidate_tables(nwb, path, intervals, stimulus)
    chosen = _index_columns(tables, index_column, named, path)
    split_name = split_column
    if split_name is None and all("split" in tables[name].colnames for name in chosen):
        split_name = "split"
    onsets, frames, splits = [], [], []
    for name, column in chosen.items():
        table = tables[name]
        if len(table) == 0:
            raise DatasetError(
                f"{path}: intervals table '{name}' is empty; expected at least one presentation"
            )
        onsets.append(np.asarray(table["start_time"].data[:], dtype=np.float64))
        frames.append(_frame_values(table, name, column, path))
        if split_name is not None:
            splits.append(_split_values(table, name, split_name, path))
    return _merge_presentations(
        np.concatenate(onsets),
        np.concatenate(frames),
        np.concatenate(splits) if split_name is not None else None,
        chosen,
        path,
    )


def _candidate_tables(
    nwb: NWBFile, path: Path, intervals: Sequence[str] | None, stimulus: str | None
) -> tuple[dict[str, TimeIntervals], bool]:
    available = dict(nwb.intervals)
    if intervals is not None:
        missing = [name for name in intervals if name not in available]
        if missing:
            raise DatasetError(
                f"{path}: intervals table(s) {missing} not found; "
                f"found intervals tables {sorted(available)}"
            )
        return {name: available[name] for name in intervals}, True
    if stimulus is not None and f"{stimulus}_presentations" in available:
        return {f"{stimulus}_presentations": available[f"{stimulus}_presentations"]}, False
    names = [n for n in available if n.endswith("_presentations")]
    names += ["trials"] if "trials" in available else []
    if not names:
        raise DatasetError(
            f"{path}: field 'intervals' holds no presentations table; expected a table named "
            f"'*_presentations' or 'trials', found {sorted(available)}"
        )
    return {name: available[name] for name in names}, False


def _index_columns(
    tables: dict[str, TimeIntervals], index_column: str | None, named: bool, path: Path
) -> dict[str, str]:
    """The index column of each table; default tables without one are left out."""
    wanted = (index_column,) if index_column else DEFAULT_INDEX_COLUMNS
    chosen = {}
    for name, table in tables.items():
        column = next((c for c in wanted if c in table.colnames), None)
        if column is not None:
            chosen[name] = column
        elif named:
            raise DatasetError(_missing_index_message(path, {name: table}, wanted))
    if not chosen:
        raise DatasetError(_missing_index_message(path, tables, wanted))
    return chosen


def _missing_index_message(
    path: Path, tables: dict[str, TimeIntervals], wanted: Sequence[str]
) -> str:
    found = "; ".join(f"'{name}': {list(table.colnames)}" for name, table in tables.items())
    return (
        f"{path}: no stimulus index column in intervals table(s) {list(tables)}; "
        f"expected one of {list(wanted)}, found columns {found}; name it with index_column"
    )


def _frame_values(table: TimeIntervals, name: str, column: str, path: Path) -> np.ndarray:
    """Frame index per row as float64 (NaN and negative values mark blank presentations)."""
    raw = np.asarray(table[column].data[:])
    if raw.ndim != 1:
        raise DatasetError(
            f"{path}: column '{column}' of intervals table '{name}' must hold one index per "
            f"row, found shape {raw.shape}"
        )
    try:
        values = raw.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise DatasetError(
            f"{path}: column '{column}' of intervals table '{name}' must hold integer frame "
            f"indices, found {raw.dtype} values such as {raw[0]!r}"
        ) from err
    finite = values[np.isfinite(values)]
    if np.any(finite != np.round(finite)):
        bad = finite[finite != np.round(finite)][0]
        raise DatasetError(
            f"{path}: column '{column}' of intervals table '{name}' must hold integer frame "
            f"indices, found {bad}"
        )
    return values


def _split_values(table: TimeIntervals, name: str, column: str, path: Path) -> np.ndarray:
    if column not in table.colnames:
        raise DatasetError(
            f"{path}: split column '{column}' is missing from intervals table '{name}'; "
            f"found columns {list(table.colnames)}"
        )
    raw = np.asarray(table[column].data[:])
    values = np.array(
        [(v.decode() if isinstance(v, bytes) else str(v)).strip().lower() for v in raw]
    )
    unknown = sorted(set(values.tolist()) - set(SPLITS))
    if unknown:
        raise DatasetError(
            f"{path}: split column '{column}' of intervals table '{name}' must hold "
            f"{list(SPLITS)}, found {unknown}"
        )
    return values


def _merge_presentations(
    onsets: np.ndarray,
    frames: np.ndarray,
    split: np.ndarray | None,
    tables: dict[str, str],
    path: Path,
) -> _Presentations:
    shown = np.isfinite(frames) & (frames >= 0)
    n_blank = int((~shown).sum())
    order = np.lexsort((frames[shown], onsets[shown]))
    onsets, frames = onsets[shown][order], frames[shown][order].astype(np.int64)
    if split is not None:
        split = split[shown][order]
    unique = np.ones(len(onsets), dtype=bool)
    unique[1:] = (np.diff(onsets) != 0) | (np.diff(frames) != 0)
    if not unique.any():
        raise DatasetError(
            f"{path}: intervals table(s) {list(tables)} hold no presentation of an image "
            f"({n_blank} blank presentations with a negative or NaN index)"
        )
    return _Presentations(
        onsets_s=onsets[unique],
        frames=frames[unique],
        split=None if split is None else split[unique],
        tables=tables,
        n_blank=n_blank,
        n_duplicate=int((~unique).sum()),
    )


def _check_frames(presentations: _Presentations, n_frames: int, source: str, path: Path) -> None:
    highest = int(presentations.frames.max())
    if highest >= n_frames:
        tables = ", ".join(f"'{t}' column '{c}'" for t, c in presentations.tables.items())
        raise DatasetError(
            f"{path}: stimulus index {highest} in intervals table {tables} is beyond the "
            f"stimulus frames; expected indices in [0, {n_frames}) for {n_frames} frames of "
            f"{source}"
        )


# --- split ------------------------------------------------------------------------------


def _choose_split(
    presentations: _Presentations,
    test_stimuli: Sequence[int] | None,
    test_fraction: float,
    seed: int,
    n_stimuli: int,
) -> tuple[np.ndarray, str]:
    stimulus_id = presentations.frames
    if test_stimuli is not None:
        test = np.asarray(list(test_stimuli), dtype=np.int64)
        outside = test[(test < 0) | (test >= n_stimuli)]
        if outside.size:
            raise ValueError(f"test_stimuli {outside.tolist()} are not in [0, {n_stimuli})")
        return np.where(np.isin(stimulus_id, test), "test", "train"), "test_stimuli"
    if presentations.split is not None:
        return presentations.split, "split column"
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    test = _most_repeated(stimulus_id, test_fraction, seed)
    rule = f"most repeated {test_fraction:.0%} of shown stimuli (seed {seed})"
    return np.where(np.isin(stimulus_id, test), "test", "train"), rule


def _most_repeated(stimulus_id: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The ``fraction`` of distinct stimuli shown most often; ties broken by a seeded shuffle."""
    shown, counts = np.unique(stimulus_id, return_counts=True)
    n_test = round(fraction * len(shown))
    if fraction > 0 and len(shown) > 1:
        n_test = min(max(n_test, 1), len(shown) - 1)
    tie_break = np.random.default_rng(seed).permutation(len(shown))
    order = np.lexsort((tie_break, -counts))
    return shown[order[:n_test]]


# --- stimuli ----------------------------------------------------------------------------


def _load_nwb_stimuli(
    nwb: NWBFile, path: Path, stimulus: str | None
) -> tuple[np.ndarray, dict[str, Any]]:
    name, source = _find_stimulus(nwb, path, stimulus)
    where = f"{path}: stimulus '{name}'"
    if isinstance(source, Images):
        frames = _images_stack(source, where)
    elif source.external_file is not None:
        raise DatasetError(
            f"{where} keeps its frames in external files {list(source.external_file[:])}; "
            "expected frames stored in the file; pass them as stimulus_path"
        )
    else:
        frames = source.data
    stimuli, scaling = _frames_to_float(frames, where)
    return stimuli, {"stimulus_source": name, "stimulus_scaling": scaling}


def _find_stimulus(
    nwb: NWBFile, path: Path, stimulus: str | None
) -> tuple[str, ImageSeries | Images]:
    groups = {"stimulus": nwb.stimulus, "stimulus_template": nwb.stimulus_template}
    found = {
        f"{group}/{name}": obj for group, items in groups.items() for name, obj in items.items()
    }
    if stimulus is not None:
        for group in groups:
            if f"{group}/{stimulus}" in found:
                return _resolve_stimulus(f"{group}/{stimulus}", found[f"{group}/{stimulus}"], path)
        raise DatasetError(
            f"{path}: stimulus '{stimulus}' not found; expected it in nwb.stimulus or "
            f"nwb.stimulus_template, found {sorted(found)}"
        )
    candidates: dict[int, tuple[str, ImageSeries | Images]] = {}
    for key, obj in found.items():
        if isinstance(obj, ImageSeries | Images | IndexSeries):
            resolved = _resolve_stimulus(key, obj, path)
            candidates.setdefault(id(resolved[1]), resolved)
    if len(candidates) != 1:
        names = sorted(name for name, _ in candidates.values())
        raise DatasetError(
            f"{path}: expected exactly one ImageSeries, OpticalSeries or Images in "
            f"nwb.stimulus / nwb.stimulus_template, found {len(candidates)} {names} among "
            f"{sorted(found)}; name one with stimulus, or give stimulus_path"
        )
    return next(iter(candidates.values()))


def _resolve_stimulus(key: str, obj: Any, path: Path) -> tuple[str, ImageSeries | Images]:
    if isinstance(obj, IndexSeries):
        target = obj.indexed_images or obj.indexed_timeseries
        return f"{key} -> {target.name}", target
    if isinstance(obj, ImageSeries | Images):
        return key, obj
    raise DatasetError(
        f"{path}: stimulus '{key}' is a {type(obj).__name__}; expected an ImageSeries, "
        "OpticalSeries, Images or IndexSeries"
    )


def _images_stack(images: Images, where: str) -> np.ndarray:
    """The images of an ``Images`` container in ``order_of_images`` (else by name)."""
    if images.order_of_images is not None:
        ordered = list(images.order_of_images.data)
    else:
        ordered = [images.images[name] for name in sorted(images.images)]
    arrays = [np.asarray(image.data[:]) for image in ordered]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DatasetError(f"{where}: images must share one shape, found shapes {sorted(shapes)}")
    return np.stack(arrays)


def _load_stimulus_path(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    if path.is_dir():
        frames = _image_folder(path)
    elif path.suffix.lower() == ".npy" and path.is_file():
        frames = np.load(path, mmap_mode="r")
    else:
        raise DatasetError(
            f"{path}: stimulus_path must be a folder of images or a .npy array, "
            f"found {'a ' + path.suffix + ' file' if path.exists() else 'nothing'}"
        )
    stimuli, scaling = _frames_to_float(frames, f"{path}")
    return stimuli, {"stimulus_source": str(path), "stimulus_scaling": scaling}


def _image_folder(folder: Path) -> np.ndarray:
    """Images of ``folder`` in sorted file-name order, ``[n, H, W]`` or ``[n, H, W, 3]``."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(
            f"{folder}: stimulus_path folder holds no images; expected files ending in "
            f"{list(IMAGE_SUFFIXES)}"
        )
    arrays = []
    for file in files:
        with Image.open(file) as image:
            gray = image.mode in ("1", "L", "LA", "I", "I;16", "F")
            arrays.append(np.asarray(image.convert("L" if gray else "RGB")))
        if arrays[-1].shape[:2] != arrays[0].shape[:2]:
            raise DatasetError(
                f"{file}: image must have the size of {files[0].name}, "
                f"{arrays[0].shape[:2]} (height, width), found {arrays[-1].shape[:2]}"
            )
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
    return np.stack(arrays)


def _frames_to_float(frames: Any, where: str, chunk: int = 256) -> tuple[np.ndarray, str]:
    """``[n, H, W]`` / ``[n, H, W, C]`` frames to float32 ``[n, C, H, W]`` in [0, 1]."""
    shape = tuple(int(s) for s in frames.shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        raise DatasetError(
            f"{where}: frames must have shape [n, H, W] or [n, H, W, C] with C in 1, 3, 4, "
            f"found shape {shape}"
        )
    channels = 1 if len(shape) == 3 or shape[3] == 1 else 3
    offset, scale, rule = _intensity_scaling(frames, where, chunk)
    stimuli = np.empty((shape[0], channels, shape[1], shape[2]), dtype=np.float32)
    for start in range(0, shape[0], chunk):
        block = np.asarray(frames[start : start + chunk], dtype=np.float64)
        block = block[..., None] if block.ndim == 3 else block[..., :channels]
        block = np.clip((block - offset) / scale, 0.0, 1.0)
        stimuli[start : start + chunk] = block.transpose(0, 3, 1, 2)
    return stimuli, rule


def _intensity_scaling(frames: Any, where: str, chunk: int) -> tuple[float, float, str]:
    """``(offset, scale, rule)`` mapping the frames' values into [0, 1]."""
    dtype = np.dtype(frames.dtype)
    if dtype == np.uint8:
        return 0.0, 255.0, "uint8 / 255"
    if dtype == np.bool_:
        return 0.0, 1.0, "bool as 0 / 1"
    low, high = np.inf, -np.inf
    for start in range(0, int(frames.shape[0]), chunk):
        block = np.asarray(frames[start : start + chunk], dtype=np.float64)
        if not np.all(np.isfinite(block)):
            raise DatasetError(f"{where}: frames hold NaN or infinite values")
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0, "unchanged (already in [0, 1])"
    if low >= 0.0 and high <= 255.0:
        return 0.0, 255.0, "values in [0, 255] / 255"
    return low, (high - low) or 1.0, f"min-max rescaled from [{low:.6g}, {high:.6g}]"


def _session_meta(nwb: NWBFile, path: Path) -> dict[str, Any]:
    subject = nwb.subject
    return {
        "format": "nwb",
        "source_file": str(path),
        "session_id": nwb.session_id,
        "identifier": nwb.identifier,
        "session_description": nwb.session_description,
        "subject": {}
        if subject is None
        else {
            "species": subject.species,
            "subject_id": subject.subject_id,
        },
    }


def _json_ready(filters: dict[str, Any]) -> dict[str, Any]:
    """``unit_filters`` with tuples and sets as lists, so meta stays JSON-serialisable."""
    return {c: list(v) if isinstance(v, tuple | set) else v for c, v in filters.items()}


# --- writing ----------------------------------------------------------------------------


def _check_spike_counts(dataset: NeuralDataset, chunk: int = 4096) -> None:
    for start in range(0, dataset.n_trials, chunk):
        block = np.asarray(dataset.responses[start : start + chunk])
        bad = ~np.isfinite(block) | (block < 0) | (block != np.round(block))
        if bad.any():
            trial, unit, time_bin = np.argwhere(bad)[0]
            raise DatasetError(
                f"{_name(dataset)}field 'responses' must hold spike counts (non-negative "
                f"integers) to be written as NWB spike times, found "
                f"{block[trial, unit, time_bin]!r} at trial {start + trial}, unit {unit}, "
                f"bin {time_bin}"
            )


def _name(dataset: NeuralDataset) -> str:
    return f"{dataset.source}: " if dataset.source else ""


def _synthetic_onsets(n_trials: int, edges_ms: np.ndarray, gap_s: float = 0.1) -> np.ndarray:
    """Onsets in s, spaced so each window fits after ``gap_s`` of silence and none overlap."""
    span_s = float(edges_ms[-1] - edges_ms[0]) / 1000.0
    lead_s = max(0.0, -float(edges_ms[0]) / 1000.0)
    return gap_s + lead_s + (span_s + gap_s) * np.arange(n_trials, dtype=np.float64)


def _synthetic_spike_times(
    dataset: NeuralDataset, onsets_s: np.ndarray, edges_ms: np.ndarray, chunk: int = 1024
) -> list[np.ndarray]:
    """Per unit, k spike times evenly inside each bin holding a count of k."""
    widths_ms = np.diff(edges_ms)
    pieces: list[list[np.ndarray]] = [[] for _ in range(dataset.n_units)]
    for start in range(0, dataset.n_trials, chunk):
        counts = np.asarray(dataset.responses[start : start + chunk]).astype(np.int64)
        per_unit = counts.transpose(1, 0, 2).reshape(dataset.n_units, -1)
        for unit, unit_counts in enumerate(per_unit):
            pieces[unit].append(
                _spikes_in_bins(unit_counts, onsets_s[start : start + chunk], edges_ms, widths_ms)
            )
    return [np.concatenate(p) if p else np.zeros(0) for p in pieces]


def _spikes_in_bins(
    counts: np.ndarray, onsets_s: np.ndarray, edges_ms: np.ndarray, widths_ms: np.ndarray
) -> np.ndarray:
    """Spike times for ``counts`` laid out ``[trial, bin]`` (flattened), in time order."""
    n_bins = len(widths_ms)
    cell = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    rank = np.arange(cell.size) - first[cell] + 1
    trial, time_bin = np.divmod(cell, n_bins)
    offset_ms = edges_ms[time_bin] + widths_ms[time_bin] * rank / (counts[cell] + 1)
    return onsets_s[trial] + offset_ms / 1000.0


def _new_nwb_file(meta: dict[str, Any], session_description: str) -> NWBFile:
    subject = meta.get("subject")
    has_subject = isinstance(subject, dict) and subject.get("subject_id")
    session_id = meta.get("session_id")
    return NWBFile(
        session_description=session_description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.now(timezone.utc),
        session_id=None if session_id is None else str(session_id),
        subject=Subject(subject_id=str(subject["subject_id"]), species=subject.get("species"))
        if has_subject
        else None,
    )


def _stimulus_series(dataset: NeuralDataset, buffer: int = 64) -> OpticalSeries:
    channels, height, width = dataset.image_shape
    shape = (dataset.n_stimuli, height, width) + ((3,) if channels == 3 else ())
    frames = DataChunkIterator(
        data=_frames_rows_first(dataset.stimuli, buffer),
        maxshape=shape,
        dtype=np.dtype(np.float32),
        buffer_size=buffer,
    )
    return OpticalSeries(
        name="stimuli",
        data=frames,
        unit="intensity in [0, 1]",
        rate=1.0,
        starting_time=0.0,
        distance=0.0,
        field_of_view=[0.0, 0.0],
        orientation="row 0 is the top of the image",
        description="neuralsight stimuli: frame i is stimulus_id i, [n, H, W(, 3)] float32",
    )


def _frames_rows_first(stimuli: Any, block: int) -> Iterator[np.ndarray]:
    """Frames ``[H, W]`` (gray) or ``[H, W, 3]`` one at a time, read ``block`` at a time."""
    for start in range(0, int(stimuli.shape[0]), block):
        chunk = np.asarray(stimuli[start : start + block], dtype=np.float32)
        for frame in chunk:
            yield frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0)


def _presentation_table(
    dataset: NeuralDataset, onsets_s: np.ndarray, edges_ms: np.ndarray
) -> TimeIntervals:
    frame = pd.DataFrame(
        {
            "start_time": onsets_s,
            "stop_time": onsets_s + max(float(edges_ms[-1]), 0.0) / 1000.0,
            "frame": dataset.stimulus_id.astype(np.int64),
            "split": dataset.split.astype(str).astype(object),
        }
    )
    return TimeIntervals.from_dataframe(
        frame,
        name=PRESENTATIONS_TABLE,
        table_description="one row per neuralsight trial: frame is the stimulus_id",
        columns=[
            {"name": "start_time", "description": "onset (s)"},
            {"name": "stop_time", "description": "end of the response window (s)"},
            {"name": "frame", "description": "frame of the 'stimuli' template shown"},
            {"name": "split", "description": "train or test"},
        ],
    )


def _units_table(
    dataset: NeuralDataset, spike_times: list[np.ndarray], session_end_s: float
) -> Units:
    """The units table, built column by column from whole arrays (fast for many spikes)."""
    units = dataset.units
    ids = units["unit_id"].to_numpy()
    integer_ids = ids.dtype.kind in "iu" and len(np.unique(ids)) == len(ids)
    columns = {c: _nwb_column_values(units[c].to_numpy()) for c in units.columns if c != "unit_id"}
    if not integer_ids:
        columns["original_unit_id"] = _nwb_column_values(ids)
    spikes = VectorData(
        name="spike_times",
        description="spike times (s), placed evenly inside their bins",
        data=np.concatenate([np.zeros(0), *spike_times]),
    )
    observed = VectorData(
        name="obs_intervals",
        description="observation interval of each unit (s): the whole session",
        data=np.tile([[0.0, session_end_s]], (dataset.n_units, 1)),
    )
    ends = np.cumsum([len(t) for t in spike_times]).astype(np.int64)
    table = Units(
        name="units",
        description="neuralsight units; spike times synthesised from spike counts",
        id=ids.astype(np.int64) if integer_ids else np.arange(dataset.n_units),
        columns=[
            spikes,
            VectorIndex(name="spike_times_index", data=ends, target=spikes),
            observed,
            VectorIndex(
                name="obs_intervals_index",
                data=np.arange(1, dataset.n_units + 1, dtype=np.int64),
                target=observed,
            ),
            *(
                VectorData(name=c, description=f"neuralsight unit column '{c}'", data=v)
                for c, v in columns.items()
            ),
        ],
    )
    return table


def _nwb_column_values(values: np.ndarray) -> np.ndarray:
    """Numbers and booleans as they are, anything else as text."""
    return values if values.dtype.kind in "biuf" else values.astype(str).astype(object)
