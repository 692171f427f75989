"""The `NeuralDataset`: one data model for every recording, simulator and model.

A dataset pairs neural responses with the stimuli that evoked them:

- ``responses``: float32 ``[n_trials, n_units, n_bins]``; repeated presentations of one
  stimulus keep their own trials and share a ``stimulus_id``.
- ``stimuli``: float32 ``[n_stimuli, channels, height, width]`` in [0, 1]. In memory this is
  a NumPy array; a dataset opened from disk keeps an ``h5py.Dataset`` and reads lazily.
- ``stimulus_id``: int64 ``[n_trials]``, the row of ``stimuli`` shown on each trial.
- ``units``: a ``pandas.DataFrame`` with at least ``unit_id`` and ``area``.
- ``bin_edges_ms``: float64 ``[n_bins + 1]``, time relative to stimulus onset.
- ``split``: ``"train"`` / ``"test"`` per trial.
- ``meta``: provenance, a JSON-serialisable dict.

It is stored as one chunked, compressed HDF5 file with a schema version (`save`, `open`).
`open` is lazy: responses and stimuli stay on disk until indexed, so a data set larger than
memory streams. `create` writes such a file block by block (a `DatasetWriter`), so one
larger than memory can also be made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import h5py
import numpy as np
import pandas as pd

from neuralsight.files import move_into_place, temporary_sibling

SCHEMA_VERSION = 1
SPLITS = ("train", "test")
REQUIRED_UNIT_COLUMNS = ("unit_id", "area")
CHUNK_STIMULI = 16

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


@dataclass
class NeuralDataset:
    """Neural responses paired with the stimuli that evoked them.

    Parameters
    ----------
    responses
        ``[n_trials, n_units, n_bins]`` float32 (NumPy array, or an ``h5py.Dataset`` when lazy).
    stimuli
        ``[n_stimuli, channels, height, width]`` float32 in [0, 1].
    stimulus_id
        ``[n_trials]`` integer index into ``stimuli``.
    units
        Table with at least ``unit_id`` and ``area``; optional ``array``, ``rf_x``, ``rf_y``,
        ``rf_sigma`` (coordinate system named in ``meta["rf_units"]``), ``reliability``.
    bin_edges_ms
        ``[n_bins + 1]`` bin edges in ms relative to stimulus onset.
    split
        ``[n_trials]`` strings, each ``"train"`` or ``"test"``.
    meta
        Provenance: source file, animal, simulator and seed, units of the values.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(
    ...     responses=np.zeros((4, 3), np.float32), stimuli=np.zeros((4, 1, 8, 8), np.float32)
    ... )
    >>> ds.n_trials, ds.n_units, ds.n_bins, ds.image_shape
    (4, 3, 1, (1, 8, 8))
    """

    responses: ArrayLike
    stimuli: ArrayLike
    stimulus_id: np.ndarray
    units: pd.DataFrame
    bin_edges_ms: np.ndarray
    split: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        self.stimulus_id = np.asarray(self.stimulus_id, dtype=np.int64)
        self.split = np.asarray(self.split).astype(str)
        self.bin_edges_ms = np.asarray(self.bin_edges_ms, dtype=np.float64)
        self.units = pd.DataFrame(self.units).reset_index(drop=True)
        self.validate(full=isinstance(self.responses, np.ndarray))

    @classmethod
    def from_arrays(
        cls,
        responses: np.ndarray,
        stimuli: np.ndarray,
        stimulus_id: Sequence[int] | np.ndarray | None = None,
        units: pd.DataFrame | dict | None = None,
        bin_edges_ms: Sequence[float] | np.ndarray | None = None,
        split: Sequence[str] | np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> NeuralDataset:
        """Build a dataset from plain arrays, filling sensible defaults.

        ``responses`` may be ``[n_trials, n_units]`` (one window) or
        ``[n_trials, n_units, n_bins]``. Without ``stimulus_id`` trial *i* shows stimulus *i*;
        without ``split`` every trial is ``train``; without ``units`` units are numbered and of
        area ``unknown``; without ``bin_edges_ms`` the bins are numbered ``0, 1, ..., n_bins``.

        Examples
        --------
        >>> import numpy as np
        >>> ds = NeuralDataset.from_arrays(
        ...     np.ones((2, 5), np.float32), np.zeros((2, 1, 4, 4), np.float32), split=["train", "test"]
        ... )
        >>> ds.split.tolist()
        ['train', 'test']
        """
        responses = np.asarray(responses, dtype=np.float32)
        if responses.ndim == 2:
            responses = responses[:, :, None]
        stimuli = np.asarray(stimuli, dtype=np.float32)
        if stimuli.ndim == 3:
            stimuli = stimuli[:, None]
        shape = responses.shape if responses.ndim == 3 else (0, 0, 0)
        return cls(
            responses=responses,
            stimuli=stimuli,
            **_default_fields(shape, stimulus_id, units, bin_edges_ms, split, meta),
        )

    @property
    def n_trials(self) -> int:
        """Number of trials (rows of ``responses``)."""
        return int(self.responses.shape[0])

    @property
    def n_units(self) -> int:
        """Number of units (recorded or simulated cells, sites, voxels)."""
        return int(self.responses.shape[1])

    @property
    def n_bins(self) -> int:
        """Number of time bins per trial."""
        return int(self.responses.shape[2])

    @property
    def n_stimuli(self) -> int:
        """Number of distinct stimuli."""
        return int(self.stimuli.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the stimuli."""
        return tuple(int(s) for s in self.stimuli.shape[1:])  # type: ignore[return-value]

    @property
    def is_lazy(self) -> bool:
        """True when responses or stimuli are read from disk on demand."""
        return isinstance(self.responses, h5py.Dataset) or isinstance(self.stimuli, h5py.Dataset)

    def trials(self, split: str) -> np.ndarray:
        """Indices of the trials in ``split`` (``"train"`` or ``"test"``)."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split '{split}'; expected one of {SPLITS}")
        return np.flatnonzero(self.split == split)

    def validate(self, full: bool = True) -> None:
        """Check shapes, dtypes and values; raise `DatasetError` naming the field.

        With ``full=False`` only shapes and metadata are checked (values of a lazily opened
        file are not read).
        """
        self._validate_shapes()
        self._validate_labels()
        if full:
            self._validate_values()

    def _validate_shapes(self) -> None:
        """Check the ndim and the lengths of every array field against each other."""
        src = self.source
        _check_ndim(src, "responses", self.responses, 3, "[n_trials, n_units, n_bins]")
        _check_ndim(src, "stimuli", self.stimuli, 4, "[n_stimuli, channels, height, width]")
        n_trials, _, n_bins = (int(s) for s in self.responses.shape)
        if self.stimuli.shape[1] not in (1, 3):
            raise DatasetError(
                f"{_where(src)}field 'stimuli' must have 1 or 3 channels at axis 1, "
                f"found shape {tuple(self.stimuli.shape)}"
            )
        for name, arr in (("stimulus_id", self.stimulus_id), ("split", self.split)):
            if arr.shape != (n_trials,):
                raise DatasetError(
                    f"{_where(src)}field '{name}' must have shape [n_trials] = ({n_trials},), "
                    f"found shape {arr.shape}"
                )
        if self.bin_edges_ms.shape != (n_bins + 1,):
            raise DatasetError(
                f"{_where(src)}field 'bin_edges_ms' must have shape [n_bins + 1] = "
                f"({n_bins + 1},), found shape {self.bin_edges_ms.shape}"
            )
        if n_bins and np.any(np.diff(self.bin_edges_ms) <= 0):
            raise DatasetError(f"{_where(src)}field 'bin_edges_ms' must increase strictly")

    def _validate_labels(self) -> None:
        """Check the units table, the split names and the stimulus ids."""
        src = self.source
        n_trials, n_units = self.n_trials, self.n_units
        if len(self.units) != n_units:
            raise DatasetError(
                f"{_where(src)}field 'units' must have one row per unit ({n_units}), "
                f"found {len(self.units)} rows"
            )
        missing = [c for c in REQUIRED_UNIT_COLUMNS if c not in self.units.columns]
        if missing:
            raise DatasetError(
                f"{_where(src)}field 'units' lacks column(s) {missing}; "
                f"found columns {list(self.units.columns)}"
            )
        unknown = sorted({str(s) for s in np.unique(self.split)} - set(SPLITS))
        if unknown:
            raise DatasetError(
                f"{_where(src)}field 'split' holds unknown value(s) {unknown}; "
                f"expected only {list(SPLITS)}"
            )
        if n_trials and (self.stimulus_id.min() < 0 or self.stimulus_id.max() >= self.n_stimuli):
            raise DatasetError(
                f"{_where(src)}field 'stimulus_id' must index stimuli in [0, {self.n_stimuli}), "
                f"found values in [{self.stimulus_id.min()}, {self.stimulus_id.max()}]"
            )

    def _validate_values(self) -> None:
        src = self.source
        for name, arr in (("responses", self.responses), ("stimuli", self.stimuli)):
            if np.dtype(arr.dtype) != np.float32:
                raise DatasetError(
                    f"{_where(src)}field '{name}' must be float32, found {np.dtype(arr.dtype)}"
                )
        _check_finite_chunks(src, "responses", self.responses)
        _check_finite_chunks(src, "stimuli", self.stimuli)
        for start in range(0, self.n_stimuli, 1024):
            block = np.asarray(self.stimuli[start : start + 1024])
            if block.size and (block.min() < 0.0 or block.max() > 1.0):
                raise DatasetError(
                    f"{_where(src)}field 'stimuli' must lie in [0, 1], found values in "
                    f"[{block.min():.4g}, {block.max():.4g}] (rows {start}-{start + len(block) - 1})"
                )

    def to_memory(self) -> NeuralDataset:
        """Return a copy with responses and stimuli read fully into memory."""
        return NeuralDataset(
            responses=np.asarray(self.responses[:]),
            stimuli=np.asarray(self.stimuli[:]),
            stimulus_id=self.stimulus_id.copy(),
            units=self.units.copy(),
            bin_edges_ms=self.bin_edges_ms.copy(),
            split=self.split.copy(),
            meta=dict(self.meta),
            source=self.source,
        )

    def select_trials(self, index: np.ndarray) -> NeuralDataset:
        """A new in-memory dataset with the trials in ``index`` (all stimuli are kept)."""
        index = np.asarray(index)
        order = np.argsort(index)
        sorted_rows = np.asarray(self.responses[np.sort(index)])
        responses = np.empty_like(sorted_rows)
        responses[order] = sorted_rows
        return NeuralDataset(
            responses=responses,
            stimuli=np.asarray(self.stimuli[:]),
            stimulus_id=self.stimulus_id[index],
            units=self.units.copy(),
            bin_edges_ms=self.bin_edges_ms.copy(),
            split=self.split[index],
            meta=dict(self.meta),
        )

    def save(
        self,
        path: str | os.PathLike,
        compression: str = "lzf",
        chunk_trials: int = 256,
    ) -> Path:
        """Write the dataset to one chunked, compressed HDF5 file, atomically.

        The file is written under a temporary name in the same folder and renamed when
        complete, so a failure never leaves a half-written file.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
        >>> path = ds.save(os.path.join(tempfile.mkdtemp(), "toy.h5"))
        >>> NeuralDataset.open(path).n_units
        3
        """
        path = Path(path)
        tmp = temporary_sibling(path)
        try:
            with h5py.File(tmp, "w") as f:
                responses, stimuli = _create_layout(
                    f, self, compression, chunk_trials, CHUNK_STIMULI
                )
                _copy_in_blocks(self.responses, responses, chunk_trials * 16)
                _copy_in_blocks(self.stimuli, stimuli, 1024)
            move_into_place(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        n_trials: int,
        n_units: int,
        n_bins: int,
        n_stimuli: int,
        image_shape: tuple[int, int, int],
        stimulus_id: Sequence[int] | np.ndarray | None = None,
        units: pd.DataFrame | dict | None = None,
        bin_edges_ms: Sequence[float] | np.ndarray | None = None,
        split: Sequence[str] | np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
        compression: str | None = "lzf",
        chunk_trials: int = 256,
        chunk_stimuli: int = CHUNK_STIMULI,
    ) -> DatasetWriter:
        """Start a dataset file too large to build in memory; fill it block by block.

        Everything but ``responses`` and ``stimuli`` is given here (defaults as in
        `from_arrays`) and checked at once; the returned `DatasetWriter` takes the two large
        fields in blocks of rows and, on `DatasetWriter.close`, checks that every row was
        written and renames the file into place. Until then it lives under a temporary
        name, and an error inside a ``with`` block removes it.

        Parameters
        ----------
        path
            The dataset file to write.
        n_trials, n_units, n_bins
            Shape of ``responses``.
        n_stimuli, image_shape
            Number of stimuli and their ``(channels, height, width)``.
        stimulus_id, units, bin_edges_ms, split, meta
            As in the `NeuralDataset` fields.
        compression
            HDF5 filter (``"lzf"``, ``"gzip"`` or None).
        chunk_trials, chunk_stimuli
            Rows per HDF5 chunk of ``responses`` and ``stimuli``.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "big.h5")
        >>> with NeuralDataset.create(path, 6, 3, 1, 6, (1, 4, 4)) as writer:
        ...     for start in (0, 3):
        ...         writer.write_responses(start, np.ones((3, 3, 1), np.float32))
        ...         writer.write_stimuli(start, np.zeros((3, 1, 4, 4), np.float32))
        >>> NeuralDataset.open(path).n_trials
        6
        """
        shape = (int(n_trials), int(n_units), int(n_bins))
        template = cls(
            responses=_Placeholder(shape),
            stimuli=_Placeholder((int(n_stimuli), *(int(s) for s in image_shape))),
            **_default_fields(shape, stimulus_id, units, bin_edges_ms, split, meta),
            source=str(path),
        )
        return DatasetWriter(path, template, compression, chunk_trials, chunk_stimuli)

    @classmethod
    def open(
        cls, path: str | os.PathLike, lazy: bool = True, cache_bytes: int = 64 * 2**20
    ) -> NeuralDataset:
        """Open a dataset file written by `save`.

        With ``lazy=True`` (default) responses and stimuli stay on disk as ``h5py.Dataset``
        objects and are read on indexing, through a chunk cache of ``cache_bytes``; the file
        stays open while the dataset lives.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such dataset file")
        try:
            f = h5py.File(path, "r", rdcc_nbytes=cache_bytes, rdcc_nslots=100_003)
        except OSError as err:
            raise DatasetError(f"{path}: not an HDF5 file ({err})") from err
        if f.attrs.get("schema") != "neuralsight.NeuralDataset":
            f.close()
            raise DatasetError(f"{path}: not a neuralsight dataset (attribute 'schema' missing)")
        version = int(f.attrs.get("schema_version", -1))
        if version > SCHEMA_VERSION:
            f.close()
            raise DatasetError(
                f"{path}: schema version {version} is newer than this neuralsight "
                f"({SCHEMA_VERSION}); upgrade neuralsight"
            )
        for name in ("responses", "stimuli", "stimulus_id", "split", "bin_edges_ms", "units"):
            if name not in f:
                f.close()
                raise DatasetError(f"{path}: field '{name}' is missing")
        columns = json.loads(f["units"].attrs["columns"])
        units = pd.DataFrame({c: _read_column(f["units"][c]) for c in columns})
        ds = cls(
            responses=f["responses"] if lazy else f["responses"][:],
            stimuli=f["stimuli"] if lazy else f["stimuli"][:],
            stimulus_id=f["stimulus_id"][:],
            units=units,
            bin_edges_ms=f["bin_edges_ms"][:],
            split=f["split"][:].astype(str),
            meta=json.loads(f.attrs["meta"]),
            source=str(path),
        )
        if not lazy:
            f.close()
        return ds

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description: sizes, areas, splits, time bins and provenance."""
        return {
            "n_trials": self.n_trials,
            "n_units": self.n_units,
            "n_bins": self.n_bins,
            "n_stimuli": self.n_stimuli,
            "image_shape": list(self.image_shape),
            "areas": self.units["area"].value_counts().to_dict(),
            "splits": {s: int((self.split == s).sum()) for s in SPLITS},
            "bin_edges_ms": [float(self.bin_edges_ms[0]), float(self.bin_edges_ms[-1])],
            "meta": self.meta,
        }


def _default_fields(
    shape: tuple[int, int, int],
    stimulus_id: Sequence[int] | np.ndarray | None,
    units: pd.DataFrame | dict | None,
    bin_edges_ms: Sequence[float] | np.ndarray | None,
    split: Sequence[str] | np.ndarray | None,
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields besides responses and stimuli, with `NeuralDataset.from_arrays`' defaults."""
    n_trials, n_units, n_bins = shape
    return {
        "stimulus_id": np.arange(n_trials) if stimulus_id is None else np.asarray(stimulus_id),
        "units": pd.DataFrame(
            {"unit_id": np.arange(n_units), "area": ["unknown"] * n_units}
            if units is None
            else units
        ),
        "bin_edges_ms": (
            np.arange(n_bins + 1, dtype=np.float64)
            if bin_edges_ms is None
            else np.asarray(bin_edges_ms)
        ),
        "split": np.full(n_trials, "train") if split is None else np.asarray(split),
        "meta": dict(meta or {}),
    }


@dataclass(frozen=True)
class _Placeholder:
    """The shape of a field whose values are not there yet (checked by `validate` only)."""

    shape: tuple[int, ...]


class DatasetWriter:
    """A dataset file being filled block by block; made by `NeuralDataset.create`.

    ``responses`` and ``stimuli`` are written by rows, in blocks of any size and in any
    order, each block checked (shape, finite values, stimuli in [0, 1]). `close` checks that
    every row was written and renames the temporary file to its final name; `discard` removes
    it. As a context manager it closes on success and discards on an exception.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        template: NeuralDataset,
        compression: str | None,
        chunk_trials: int,
        chunk_stimuli: int,
    ) -> None:
        self.path = Path(path)
        self._tmp = temporary_sibling(self.path)
        self._file: h5py.File | None = None
        try:
            self._file = h5py.File(self._tmp, "w")
            self._fields = dict(
                zip(
                    ("responses", "stimuli"),
                    _create_layout(self._file, template, compression, chunk_trials, chunk_stimuli),
                    strict=True,
                )
            )
        except BaseException:
            self.discard()
            raise
        self._written = {name: np.zeros(d.shape[0], bool) for name, d in self._fields.items()}

    def write_responses(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` (``[k, n_units, n_bins]``; ``[k, n_units]`` for one bin) at ``start``."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 2:
            block = block[:, :, None]
        self._write("responses", start, block, "[k, n_units, n_bins]")

    def write_stimuli(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` (``[k, channels, height, width]`` in [0, 1]) at row ``start``."""
        self._write(
            "stimuli", start, np.asarray(block, dtype=np.float32), "[k, channels, height, width]"
        )

    def _write(self, name: str, start: int, block: np.ndarray, expected: str) -> None:
        if self._file is None:
            raise DatasetError(f"{self.path}: the writer is closed")
        target = self._fields[name]
        if block.shape[1:] != target.shape[1:] or not 0 <= start <= target.shape[0] - len(block):
            raise DatasetError(
                f"{self.path}: a block of field '{name}' must have shape {expected} = "
                f"[k, {', '.join(str(s) for s in target.shape[1:])}] and fit rows "
                f"[0, {target.shape[0]}), found shape {block.shape} at row {start}"
            )
        if not np.all(np.isfinite(block)):
            raise DatasetError(
                f"{self.path}: field '{name}' holds NaN or infinite values (block at row {start})"
            )
        if name == "stimuli" and block.size and (block.min() < 0.0 or block.max() > 1.0):
            raise DatasetError(
                f"{self.path}: field 'stimuli' must lie in [0, 1], found values in "
                f"[{block.min():.4g}, {block.max():.4g}] (rows {start}-{start + len(block) - 1})"
            )
        target[start : start + len(block)] = block
        self._written[name][start : start + len(block)] = True

    def close(self) -> Path:
        """Check that every row was written, then move the file into place; returns its path."""
        if self._file is None:
            raise DatasetError(f"{self.path}: the writer is closed")
        for name, written in self._written.items():
            if not written.all():
                missing = np.flatnonzero(~written)
                self.discard()
                raise DatasetError(
                    f"{self.path}: field '{name}' is incomplete: {len(missing)} of "
                    f"{len(written)} rows never written (first: row {missing[0]}); "
                    "nothing was saved"
                )
        self._file.close()
        self._file = None
        move_into_place(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Abandon the file: close it and remove the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _create_layout(
    f: h5py.File,
    ds: NeuralDataset,
    compression: str | None,
    chunk_trials: int,
    chunk_stimuli: int,
) -> tuple[h5py.Dataset, h5py.Dataset]:
    """Write the schema and the small fields of ``ds``; create the two large ones, empty.

    Returns the chunked, compressed ``(responses, stimuli)`` datasets, to be filled.
    """
    f.attrs["schema"] = "neuralsight.NeuralDataset"
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["meta"] = json.dumps(ds.meta, default=_json_default)
    n_t, n_u, n_b = ds.n_trials, ds.n_units, ds.n_bins
    responses = f.create_dataset(
        "responses",
        shape=(n_t, n_u, n_b),
        dtype="float32",
        chunks=(max(1, min(chunk_trials, n_t)), n_u, n_b),
        compression=compression,
    )
    stimuli = f.create_dataset(
        "stimuli",
        shape=(ds.n_stimuli, *ds.image_shape),
        dtype="float32",
        chunks=(max(1, min(chunk_stimuli, ds.n_stimuli)), *ds.image_shape),
        compression=compression,
    )
    f.create_dataset("stimulus_id", data=ds.stimulus_id, compression=compression)
    f.create_dataset("split", data=ds.split.astype("S5"))
    f.create_dataset("bin_edges_ms", data=ds.bin_edges_ms)
    units = f.create_group("units")
    units.attrs["columns"] = json.dumps(list(ds.units.columns))
    for column in ds.units.columns:
        values = ds.units[column].to_numpy()
        if values.dtype.kind in "OUS":
            units.create_dataset(column, data=values.astype(str).astype(h5py.string_dtype()))
        else:
            units.create_dataset(column, data=values)
    return responses, stimuli


def _read_column(dataset: h5py.Dataset) -> np.ndarray:
    values = dataset[:]
    if dataset.dtype.kind in "OS" or h5py.check_string_dtype(dataset.dtype):
        return dataset.asstr()[:].astype(object)
    return values


def _copy_in_blocks(source: ArrayLike, target: h5py.Dataset, block: int) -> None:
    for start in range(0, source.shape[0], block):
        target[start : start + block] = np.asarray(source[start : start + block], dtype=np.float32)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"meta value of type {type(value).__name__} is not JSON-serialisable")
