"""The HDF5 store of a `NeuralDataset`: one chunked, compressed file with a schema version.

`write_dataset` writes a dataset held in memory (or lazily) atomically; a `DatasetWriter`
fills a file block by block, for one larger than memory; `read_fields` opens a file, checks
its schema and returns the dataset's fields, the large ones left on disk when lazy. The
`NeuralDataset` methods `save`, `create` and `open` are the way in. Every array carries a
Fletcher-32 checksum per HDF5 chunk, so bytes changed since writing are an error on reading
(naming the file and field), never silent data; a missing or malformed attribute is named
too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from neuralsight.data.validation import ArrayLike, DatasetError
from neuralsight.files import FileWriter, move_into_place, temporary_sibling

if TYPE_CHECKING:
    from neuralsight.data.dataset import NeuralDataset

SCHEMA = "neuralsight.NeuralDataset"
SCHEMA_VERSION = 1
CHUNK_STIMULI = 16
FIELDS = ("responses", "stimuli", "stimulus_id", "split", "bin_edges_ms", "units")


@dataclass(frozen=True)
class Placeholder:
    """The shape of a field whose values are not there yet (checked by `validate` only)."""

    shape: tuple[int, ...]


def write_dataset(
    ds: NeuralDataset, path: str | os.PathLike, compression: str | None, chunk_trials: int
) -> Path:
    """Write ``ds`` to one chunked, compressed HDF5 file at ``path``, atomically.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from neuralsight.data.dataset import NeuralDataset
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> path = write_dataset(ds, os.path.join(tempfile.mkdtemp(), "toy.h5"), "lzf", 256)
    >>> read_fields(path, lazy=False, cache_bytes=2**20)["responses"].shape
    (2, 3, 1)
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        with h5py.File(tmp, "w") as f:
            responses, stimuli = _create_layout(f, ds, compression, chunk_trials, CHUNK_STIMULI)
            _copy_in_blocks(ds.responses, responses, chunk_trials * 16)
            _copy_in_blocks(ds.stimuli, stimuli, 1024)
        move_into_place(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_fields(path: str | os.PathLike, lazy: bool, cache_bytes: int) -> dict[str, Any]:
    """The `NeuralDataset` fields stored in the file at ``path``, after checking its schema.

    With ``lazy=True`` responses and stimuli are ``h5py.Dataset`` objects read through a
    chunk cache of ``cache_bytes``, and the file stays open; otherwise all is read and the
    file is closed. A missing file is a `FileNotFoundError`; a file that is not HDF5, not a
    neuralsight dataset, of a newer schema or missing a field is a `DatasetError`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file")
    try:
        f = h5py.File(path, "r", rdcc_nbytes=cache_bytes, rdcc_nslots=100_003)
    except OSError as err:
        raise DatasetError(f"{path}: not an HDF5 file ({err})") from err
    try:
        _check_schema(path, f)
    except DatasetError:
        f.close()
        raise
    try:
        fields = _fields(path, f, lazy)
    except DatasetError:
        f.close()
        raise
    if not lazy:
        f.close()
    return fields


def _fields(path: Path, f: h5py.File, lazy: bool) -> dict[str, Any]:
    columns = _json_attribute(path, f["units"], "columns", "units/")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise DatasetError(
            f"{path}: attribute 'units/columns' must be a JSON list of column names, "
            f"found {columns!r}"
        )
    missing = [c for c in columns if c not in f["units"]]
    if missing:
        raise DatasetError(f"{path}: field 'units/{missing[0]}' is missing (named in columns)")
    return {
        "responses": f["responses"] if lazy else _read(path, "responses", f["responses"]),
        "stimuli": f["stimuli"] if lazy else _read(path, "stimuli", f["stimuli"]),
        "stimulus_id": _read(path, "stimulus_id", f["stimulus_id"]),
        "units": pd.DataFrame({c: _read(path, f"units/{c}", f["units"][c]) for c in columns}),
        "bin_edges_ms": _read(path, "bin_edges_ms", f["bin_edges_ms"]),
        "split": _read(path, "split", f["split"]).astype(str),
        "meta": _json_attribute(path, f, "meta"),
        "source": str(path),
    }


def _read(path: Path, name: str, dataset: h5py.Dataset) -> np.ndarray:
    """All of one field; a checksum mismatch or an unreadable chunk is a `DatasetError`."""
    kind = dataset.dtype.kind
    text = name.startswith("units/") and (kind in "OS" or h5py.check_string_dtype(dataset.dtype))
    try:
        return dataset.asstr()[:].astype(object) if text else dataset[:]
    except OSError as err:
        raise unreadable(dataset, err) from err


def unreadable(dataset: h5py.Dataset, error: OSError) -> DatasetError:
    """The error for a field of a dataset file that h5py cannot read (`read_fields`, and the
    lazy reads of training and evaluation): the file and field named, and why."""
    return DatasetError(
        f"{dataset.file.filename}: field '{dataset.name.lstrip('/')}' cannot be read: the file "
        f"is corrupt or truncated (its checksum or compression does not match what was "
        f"written: {error})"
    )


def _json_attribute(path: Path, node: h5py.HLObject, name: str, where: str = "") -> Any:
    """A JSON-encoded attribute; missing or not JSON is a `DatasetError` naming it."""
    if name not in node.attrs:
        raise DatasetError(f"{path}: attribute '{where}{name}' is missing")
    try:
        return json.loads(node.attrs[name])
    except (TypeError, ValueError) as err:
        raise DatasetError(
            f"{path}: attribute '{where}{name}' must be JSON text, found {node.attrs[name]!r:.60}"
        ) from err


def _check_schema(path: Path, f: h5py.File) -> None:
    """Check the schema attributes of ``f`` and that every field is there."""
    if f.attrs.get("schema") != SCHEMA:
        raise DatasetError(f"{path}: not a neuralsight dataset (attribute 'schema' missing)")
    _check_schema_version(path, f.attrs.get("schema_version"))
    for name in FIELDS:
        if name not in f:
            raise DatasetError(f"{path}: field '{name}' is missing")


def _check_schema_version(path: Path, version: object) -> None:
    """Refuse a missing, non-integer, non-positive or newer ``schema_version`` attribute.

    Version 1 is the first schema, so there is no older one to migrate from; a later schema
    will migrate version-1 files here, on reading.
    """
    expected = f"expected an integer from 1 to {SCHEMA_VERSION}"
    if isinstance(version, np.generic):
        version = version.item()
    if version is None:
        raise DatasetError(f"{path}: attribute 'schema_version' is missing; {expected}")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DatasetError(
            f"{path}: attribute 'schema_version' must be an integer, {expected}; "
            f"found {version!r} ({type(version).__name__})"
        )
    if version > SCHEMA_VERSION:
        raise DatasetError(
            f"{path}: schema version {version} is newer than this neuralsight "
            f"({SCHEMA_VERSION}); upgrade neuralsight"
        )
    if version < 1:
        raise DatasetError(f"{path}: attribute 'schema_version' is {version}; {expected}")


class DatasetWriter(FileWriter):
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
    f.attrs["schema"] = SCHEMA
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["meta"] = json.dumps(ds.meta, default=_json_default)
    n_t, n_u, n_b = ds.n_trials, ds.n_units, ds.n_bins
    responses = f.create_dataset(
        "responses",
        shape=(n_t, n_u, n_b),
        dtype="float32",
        chunks=(max(1, min(chunk_trials, n_t)), n_u, n_b),
        compression=compression,
        fletcher32=True,
    )
    stimuli = f.create_dataset(
        "stimuli",
        shape=(ds.n_stimuli, *ds.image_shape),
        dtype="float32",
        chunks=(max(1, min(chunk_stimuli, ds.n_stimuli)), *ds.image_shape),
        compression=compression,
        fletcher32=True,
    )
    checked = {"compression": compression, "fletcher32": True}
    f.create_dataset("stimulus_id", data=ds.stimulus_id, **checked)
    f.create_dataset("split", data=ds.split.astype("S5"), fletcher32=True)
    f.create_dataset("bin_edges_ms", data=ds.bin_edges_ms, fletcher32=True)
    units = f.create_group("units")
    units.attrs["columns"] = json.dumps(list(ds.units.columns))
    for column in ds.units.columns:
        values = ds.units[column].to_numpy()
        if values.dtype.kind in "OUS":
            units.create_dataset(column, data=values.astype(str).astype(h5py.string_dtype()))
        else:
            units.create_dataset(column, data=values, fletcher32=True)
    return responses, stimuli


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
