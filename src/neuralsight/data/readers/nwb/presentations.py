"""Presentations of an NWB session: onsets and frames from intervals tables, and the train/test split.

`read_presentations` merges the presentations of the chosen intervals tables, sorted by
onset, dropping blank sweeps (a negative or NaN index) and presentations listed twice;
`check_frames` checks their frames against the stimuli; `choose_split` gives every trial
its split, all trials of one stimulus alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pynwb import NWBFile
from pynwb.epoch import TimeIntervals

from neuralsight.data.dataset import SPLITS, DatasetError

DEFAULT_INDEX_COLUMNS = ("frame", "image_index", "stimulus_index", "image_id")


@dataclass
class Presentations:
    """Stimulus presentations gathered from intervals tables, sorted by onset."""

    onsets_s: np.ndarray
    frames: np.ndarray
    split: np.ndarray | None
    tables: dict[str, str]
    n_blank: int
    n_duplicate: int


def read_presentations(
    nwb: NWBFile,
    path: Path,
    intervals: Sequence[str] | None,
    index_column: str | None,
    split_column: str | None,
    stimulus: str | None,
) -> Presentations:
    """The presentations of the chosen intervals tables, merged and sorted by onset."""
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
) -> Presentations:
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
    return Presentations(
        onsets_s=onsets[unique],
        frames=frames[unique],
        split=None if split is None else split[unique],
        tables=tables,
        n_blank=n_blank,
        n_duplicate=int((~unique).sum()),
    )


def check_frames(presentations: Presentations, n_frames: int, source: str, path: Path) -> None:
    """Raise when a presentation shows a frame beyond the ``n_frames`` stimulus frames."""
    highest = int(presentations.frames.max())
    if highest >= n_frames:
        tables = ", ".join(f"'{t}' column '{c}'" for t, c in presentations.tables.items())
        raise DatasetError(
            f"{path}: stimulus index {highest} in intervals table {tables} is beyond the "
            f"stimulus frames; expected indices in [0, {n_frames}) for {n_frames} frames of "
            f"{source}"
        )


def choose_split(
    presentations: Presentations,
    test_stimuli: Sequence[int] | None,
    test_fraction: float,
    seed: int,
    n_stimuli: int,
) -> tuple[np.ndarray, str]:
    """``train`` / ``test`` per presentation, and the rule that chose it (see `read`)."""
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
