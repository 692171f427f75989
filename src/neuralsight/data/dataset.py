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
larger than memory can also be made. The file format lives in `neuralsight.data.store`, the
checks of `NeuralDataset.validate` in `neuralsight.data.validation`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from neuralsight.data.store import (
    CHUNK_STIMULI,
    SCHEMA_VERSION,
    DatasetWriter,
    Placeholder,
    read_fields,
    write_dataset,
)
from neuralsight.data.validation import (
    SPLITS,
    ArrayLike,
    DatasetError,
    as_stimulus_ids,
    validate_dataset,
)

__all__ = [
    "SCHEMA_VERSION",
    "SPLITS",
    "DatasetError",
    "DatasetWriter",
    "NeuralDataset",
    "open_dataset",
]


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
        self.stimulus_id = as_stimulus_ids(self.stimulus_id, self.source)
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
        validate_dataset(self, full)

    def fingerprint(self) -> str:
        """A short hash of what evaluation compares: trial layout, test responses and stimuli.

        It covers the sizes, every trial's ``stimulus_id`` and ``split``, and the responses
        and stimuli of the test trials (read in blocks, so a large lazily opened file is
        cheap), so a results file made from one data set can be checked against another.
        The same data give the same fingerprint in memory and on disk.

        Examples
        --------
        >>> ds = NeuralDataset.from_arrays(np.ones((4, 2), np.float32), np.zeros((4, 1, 4, 4)),
        ...                                split=["train", "train", "test", "test"])
        >>> other = NeuralDataset.from_arrays(np.ones((4, 2), np.float32), np.ones((4, 1, 4, 4)),
        ...                                   split=["train", "train", "test", "test"])
        >>> len(ds.fingerprint()), ds.fingerprint() == ds.to_memory().fingerprint() != other.fingerprint()
        (16, True)
        """
        digest = hashlib.sha256()
        shape = (self.n_trials, self.n_units, self.n_bins, self.n_stimuli, *self.image_shape)
        digest.update(np.asarray(shape, np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.stimulus_id, np.int64).tobytes())
        digest.update("\n".join(self.split.tolist()).encode())
        test_trials = self.trials("test")
        test_stimuli = np.unique(self.stimulus_id[test_trials])
        for values, rows in ((self.responses, test_trials), (self.stimuli, test_stimuli)):
            for start in range(0, len(rows), 256):
                block = np.asarray(values[rows[start : start + 256]], np.float32)
                digest.update(np.ascontiguousarray(block).tobytes())
        return digest.hexdigest()[:16]

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
        return write_dataset(self, path, compression, chunk_trials)

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
            responses=Placeholder(shape),
            stimuli=Placeholder((int(n_stimuli), *(int(s) for s in image_shape))),
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
        return cls(**read_fields(path, lazy, cache_bytes))

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


def open_dataset(dataset: NeuralDataset | str | os.PathLike) -> NeuralDataset:
    """``dataset`` itself, or the dataset file at that path, opened lazily.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> open_dataset(ds) is ds
    True
    """
    return dataset if isinstance(dataset, NeuralDataset) else NeuralDataset.open(dataset)


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
