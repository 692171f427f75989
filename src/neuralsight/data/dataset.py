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
memory streams.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
SPLITS = ("train", "test")
REQUIRED_UNIT_COLUMNS = ("unit_id", "area")

ArrayLike = np.ndarray | h5py.Dataset


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
        n_trials, n_units, n_bins = responses.shape if responses.ndim == 3 else (0, 0, 0)
        if stimulus_id is None:
            stimulus_id = np.arange(n_trials)
        if units is None:
            units = {"unit_id": np.arange(n_units), "area": ["unknown"] * n_units}
        if bin_edges_ms is None:
            bin_edges_ms = np.arange(n_bins + 1, dtype=np.float64)
        if split is None:
            split = np.full(n_trials, "train")
        return cls(
            responses=responses,
            stimuli=stimuli,
            stimulus_id=np.asarray(stimulus_id),
            units=pd.DataFrame(units),
            bin_edges_ms=np.asarray(bin_edges_ms),
            split=np.asarray(split),
            meta=dict(meta or {}),
        )

    @property
    def n_trials(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.responses.shape[1])

    @property
    def n_bins(self) -> int:
        return int(self.responses.shape[2])

    @property
    def n_stimuli(self) -> int:
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
        src = self.source
        _check_ndim(src, "responses", self.responses, 3, "[n_trials, n_units, n_bins]")
        _check_ndim(src, "stimuli", self.stimuli, 4, "[n_stimuli, channels, height, width]")
        n_trials, n_units, n_bins = (int(s) for s in self.responses.shape)
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
        if full:
            self._validate_values()

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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                self._write(f, compression, chunk_trials)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def _write(self, f: h5py.File, compression: str, chunk_trials: int) -> None:
        f.attrs["schema"] = "neuralsight.NeuralDataset"
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["meta"] = json.dumps(self.meta, default=_json_default)
        n_t, n_u, n_b = (int(s) for s in self.responses.shape)
        resp = f.create_dataset(
            "responses",
            shape=(n_t, n_u, n_b),
            dtype="float32",
            chunks=(max(1, min(chunk_trials, n_t)), n_u, n_b),
            compression=compression,
        )
        _copy_in_blocks(self.responses, resp, chunk_trials * 16)
        c, h, w = self.image_shape
        stim = f.create_dataset(
            "stimuli",
            shape=(self.n_stimuli, c, h, w),
            dtype="float32",
            chunks=(max(1, min(16, self.n_stimuli)), c, h, w),
            compression=compression,
        )
        _copy_in_blocks(self.stimuli, stim, 1024)
        f.create_dataset("stimulus_id", data=self.stimulus_id, compression=compression)
        f.create_dataset("split", data=self.split.astype("S5"))
        f.create_dataset("bin_edges_ms", data=self.bin_edges_ms)
        units = f.create_group("units")
        units.attrs["columns"] = json.dumps(list(self.units.columns))
        for column in self.units.columns:
            values = self.units[column].to_numpy()
            if values.dtype.kind in "OUS":
                units.create_dataset(column, data=values.astype(str).astype(h5py.string_dtype()))
            else:
                units.create_dataset(column, data=values)

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
