"""Write a `NeuralDataset` of spike counts as an NWB file that `neuralsight.data.readers.nwb.read` gives back.

The stimuli become an ``OpticalSeries`` template, the trials a ``stimulus_presentations``
table with ``frame`` and ``split`` columns, the counts spike times placed evenly inside
their bins, and the bin edges a scratch array `read` uses by default.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdmf.common import VectorData, VectorIndex
from hdmf.data_utils import DataChunkIterator
from pynwb import NWBHDF5IO, NWBFile
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject
from pynwb.image import OpticalSeries
from pynwb.misc import Units

from neuralsight.data.dataset import DatasetError, NeuralDataset
from neuralsight.data.readers.nwb.spikes import BIN_EDGES_SCRATCH
from neuralsight.files import atomic_path

PRESENTATIONS_TABLE = "stimulus_presentations"


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
    session_id = meta.get("session_id")
    return NWBFile(
        session_description=session_description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.now(timezone.utc),
        session_id=None if session_id is None else str(session_id),
        subject=Subject(subject_id=str(subject["subject_id"]), species=subject.get("species"))
        if isinstance(subject, dict) and subject.get("subject_id")
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
