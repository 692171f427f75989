"""Read one NWB session into a `NeuralDataset`: `read`, the reader ``neuralsight convert nwb`` runs.

It opens the file, gathers units, presentations and stimuli (`spikes`, `units`,
`presentations`, `stimuli`), bins the spikes and records where everything came from in
``meta``. The rules behind each option are in the package's docstring,
`neuralsight.data.readers.nwb`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pynwb import NWBHDF5IO, NWBFile
from pynwb.misc import Units

from neuralsight.data.dataset import DatasetError, NeuralDataset
from neuralsight.data.readers.nwb.presentations import (
    Presentations,
    check_frames,
    choose_split,
    read_presentations,
)
from neuralsight.data.readers.nwb.spikes import (
    SpikeTrains,
    bin_edges,
    bin_spikes,
    bin_width,
    check_spikes_within_session,
    read_spike_trains,
    require_units,
)
from neuralsight.data.readers.nwb.stimuli import load_nwb_stimuli, load_stimulus_path
from neuralsight.data.readers.nwb.units import unit_mask, unit_table


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

    What each option does in detail, and the defaults it falls back on, is in
    `neuralsight.data.readers.nwb`, whose example writes a session and reads it back.

    Parameters
    ----------
    paths
        One NWB file (a list holding one path, as every reader takes, or the path itself).
    intervals, index_column
        The intervals tables holding the presentations, and their stimulus index column.
    window_ms, bin_ms
        Counting window relative to onset and bin width, in ms.
    stimulus, stimulus_path
        The stimulus in the file holding the pixels, or a folder of images or ``.npy``.
    unit_filters
        Conditions on the units table's columns that a unit must pass to be kept.
    test_fraction, split_column, test_stimuli, split_seed
        How the trials are split into ``train`` and ``test``.
    check_session_end
        Raise when a spike lies after the session end.
    chunk_size, progress
        Presentations binned at a time; show a progress bar while binning.
    """
    path = _single_path(paths)
    if test_stimuli is not None and split_column is not None:
        raise ValueError("give either test_stimuli or split_column, not both")
    with _open_nwb(path) as nwb:
        units_table = require_units(nwb, path)
        presentations = read_presentations(
            nwb, path, intervals, index_column, split_column, stimulus
        )
        spikes, units, keep = _read_units(nwb, units_table, path, unit_filters, check_session_end)
        stimuli, stimulus_info = _read_stimuli(nwb, path, stimulus, stimulus_path)
        check_frames(presentations, len(stimuli), stimulus_info["stimulus_source"], path)
        edges_ms = bin_edges(nwb, window_ms, bin_ms)
        responses = bin_spikes(
            spikes, np.flatnonzero(keep), presentations.onsets_s, edges_ms, chunk_size, progress
        )
        split, split_rule = choose_split(
            presentations, test_stimuli, test_fraction, split_seed, len(stimuli)
        )
        session = _session_meta(nwb, path)
    return NeuralDataset(
        responses=responses,
        stimuli=stimuli,
        stimulus_id=presentations.frames,
        units=units[keep].reset_index(drop=True),
        bin_edges_ms=edges_ms,
        split=split,
        meta={
            **session,
            **_reading_meta(edges_ms, presentations, unit_filters, keep, split_rule),
            **stimulus_info,
        },
    )


def _read_units(
    nwb: NWBFile,
    units_table: Units,
    path: Path,
    unit_filters: dict[str, Any] | None,
    check_end: bool,
) -> tuple[SpikeTrains, pd.DataFrame, np.ndarray]:
    """Every unit's spike trains (checked against the session end when asked), the units
    table and the mask of the units ``unit_filters`` keep."""
    spikes = read_spike_trains(units_table, path)
    if check_end:
        check_spikes_within_session(nwb, units_table, spikes, path)
    units = unit_table(nwb, units_table)
    return spikes, units, unit_mask(units, unit_filters, path)


def _read_stimuli(
    nwb: NWBFile, path: Path, stimulus: str | None, stimulus_path: str | os.PathLike | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The stimuli from ``stimulus_path`` when given, else from the file, with their meta."""
    if stimulus_path is not None:
        return load_stimulus_path(Path(stimulus_path))
    return load_nwb_stimuli(nwb, path, stimulus)


def _reading_meta(
    edges_ms: np.ndarray,
    presentations: Presentations,
    unit_filters: dict[str, Any] | None,
    keep: np.ndarray,
    split_rule: str,
) -> dict[str, Any]:
    """How the responses were made: window, bins, tables, dropped presentations, units, split."""
    return {
        "window_ms": [float(edges_ms[0]), float(edges_ms[-1])],
        "bin_ms": bin_width(edges_ms),
        "response_units": "spike counts",
        "intervals": presentations.tables,
        "blank_presentations_dropped": presentations.n_blank,
        "duplicate_presentations_dropped": presentations.n_duplicate,
        "unit_filters": _json_ready(unit_filters or {}),
        "units_kept": int(keep.sum()),
        "units_in_file": len(keep),
        "split_rule": split_rule,
    }


def _single_path(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> Path:
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
