"""The checks that make a `NeuralDataset` valid, each raising a `DatasetError` naming the field.

`validate_dataset` checks shapes and metadata (cheap, also for a dataset opened lazily) and,
with ``full=True``, the values: float32, finite, stimuli in [0, 1], read in blocks so a file
larger than memory can be checked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeAlias

import h5py
import numpy as np

if TYPE_CHECKING:
    from neuralsight.data.dataset import NeuralDataset

SPLITS = ("train", "test")
REQUIRED_UNIT_COLUMNS = ("unit_id", "area")

ArrayLike: TypeAlias = np.ndarray | h5py.Dataset


class DatasetError(ValueError):
    """A dataset, or a file holding one, is malformed; the message names what and where."""


def _where(source: str | os.PathLike | None) -> str:
    return f"{source}: " if source else ""


def _check_ndim(source, name: str, array: ArrayLike, ndim: int, expected: str) -> None:
    if len(array.shape) != ndim:
        raise DatasetError(
            f"{_where(source)}field '{name}' must have shape {expected}, "
            f"found shape {tuple(array.shape)}"
        )


def _check_finite_chunks(source, name: str, array: ArrayLike, chunk: int = 4096) -> None:
    for start in range(0, array.shape[0], chunk):
        block = np.asarray(array[start : start + chunk])
        if not np.all(np.isfinite(block)):
            bad = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise DatasetError(
                f"{_where(source)}field '{name}' holds NaN or infinite values (first at row {bad})"
            )


def as_stimulus_ids(values: Any, source: str | os.PathLike | None = None) -> np.ndarray:
    """``values`` as int64 stimulus ids; fractional, non-finite or non-numeric ones are refused.

    Examples
    --------
    >>> as_stimulus_ids([0, 2.0]).tolist()
    [0, 2]
    >>> as_stimulus_ids([9.7])
    Traceback (most recent call last):
    ...
    neuralsight.data.validation.DatasetError: field 'stimulus_id' must hold whole numbers; found 9.7 at trial 0
    """
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind != "f":
        raise DatasetError(
            f"{_where(source)}field 'stimulus_id' must hold integers; found dtype {array.dtype}"
        )
    bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
    if bad.size:
        raise DatasetError(
            f"{_where(source)}field 'stimulus_id' must hold whole numbers; found "
            f"{array.flat[bad[0]]:g} at trial {bad[0]}"
        )
    return array.astype(np.int64)


def validate_dataset(ds: NeuralDataset, full: bool = True) -> None:
    """Check shapes, dtypes and values of ``ds``; raise `DatasetError` naming the field.

    With ``full=False`` only shapes and metadata are checked (values of a lazily opened
    file are not read).

    Examples
    --------
    >>> import numpy as np
    >>> from neuralsight.data.dataset import NeuralDataset
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> ds.split[0] = "val"
    >>> validate_dataset(ds)
    Traceback (most recent call last):
    ...
    neuralsight.data.validation.DatasetError: field 'split' holds unknown value(s) ['val']; expected only ['train', 'test']
    """
    _check_shapes(ds)
    _check_labels(ds)
    if full:
        _check_values(ds)


def _check_shapes(ds: NeuralDataset) -> None:
    """Check the ndim and the lengths of every array field against each other."""
    src = ds.source
    _check_ndim(src, "responses", ds.responses, 3, "[n_trials, n_units, n_bins]")
    _check_ndim(src, "stimuli", ds.stimuli, 4, "[n_stimuli, channels, height, width]")
    n_trials, n_units, n_bins = (int(s) for s in ds.responses.shape)
    if not n_trials or not n_units or not n_bins:
        raise DatasetError(
            f"{_where(src)}field 'responses' must hold at least one trial, unit and time bin, "
            f"found shape {tuple(ds.responses.shape)} "
            f"({n_trials} trials, {n_units} units, {n_bins} bins)"
        )
    if 0 in ds.stimuli.shape[1:]:
        raise DatasetError(
            f"{_where(src)}field 'stimuli' must hold images of at least 1 x 1 pixel, "
            f"found shape {tuple(ds.stimuli.shape)}"
        )
    if ds.stimuli.shape[1] not in (1, 3):
        raise DatasetError(
            f"{_where(src)}field 'stimuli' must have 1 or 3 channels at axis 1, "
            f"found shape {tuple(ds.stimuli.shape)}"
        )
    for name, arr in (("stimulus_id", ds.stimulus_id), ("split", ds.split)):
        if arr.shape != (n_trials,):
            raise DatasetError(
                f"{_where(src)}field '{name}' must have shape [n_trials] = ({n_trials},), "
                f"found shape {arr.shape}"
            )
    if ds.bin_edges_ms.shape != (n_bins + 1,):
        raise DatasetError(
            f"{_where(src)}field 'bin_edges_ms' must have shape [n_bins + 1] = "
            f"({n_bins + 1},), found shape {ds.bin_edges_ms.shape}"
        )
    if n_bins and np.any(np.diff(ds.bin_edges_ms) <= 0):
        raise DatasetError(f"{_where(src)}field 'bin_edges_ms' must increase strictly")


def _check_labels(ds: NeuralDataset) -> None:
    """Check the units table, the split names and the stimulus ids."""
    src = ds.source
    n_trials, n_units = ds.n_trials, ds.n_units
    if len(ds.units) != n_units:
        raise DatasetError(
            f"{_where(src)}field 'units' must have one row per unit ({n_units}), "
            f"found {len(ds.units)} rows"
        )
    missing = [c for c in REQUIRED_UNIT_COLUMNS if c not in ds.units.columns]
    if missing:
        raise DatasetError(
            f"{_where(src)}field 'units' lacks column(s) {missing}; "
            f"found columns {list(ds.units.columns)}"
        )
    unknown = sorted({str(s) for s in np.unique(ds.split)} - set(SPLITS))
    if unknown:
        raise DatasetError(
            f"{_where(src)}field 'split' holds unknown value(s) {unknown}; "
            f"expected only {list(SPLITS)}"
        )
    if n_trials and (ds.stimulus_id.min() < 0 or ds.stimulus_id.max() >= ds.n_stimuli):
        raise DatasetError(
            f"{_where(src)}field 'stimulus_id' must index stimuli in [0, {ds.n_stimuli}), "
            f"found values in [{ds.stimulus_id.min()}, {ds.stimulus_id.max()}]"
        )


def _check_values(ds: NeuralDataset) -> None:
    """Check that responses and stimuli are float32 and finite, and stimuli lie in [0, 1]."""
    src = ds.source
    for name, arr in (("responses", ds.responses), ("stimuli", ds.stimuli)):
        if np.dtype(arr.dtype) != np.float32:
            raise DatasetError(
                f"{_where(src)}field '{name}' must be float32, found {np.dtype(arr.dtype)}"
            )
    _check_finite_chunks(src, "responses", ds.responses)
    _check_finite_chunks(src, "stimuli", ds.stimuli)
    for start in range(0, ds.n_stimuli, 1024):
        block = np.asarray(ds.stimuli[start : start + 1024])
        if block.size and (block.min() < 0.0 or block.max() > 1.0):
            raise DatasetError(
                f"{_where(src)}field 'stimuli' must lie in [0, 1], found values in "
                f"[{block.min():.4g}, {block.max():.4g}] (rows {start}-{start + len(block) - 1})"
            )
