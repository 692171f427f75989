"""NumPy readers: a self-describing ``.npz`` file, and a ``.npy`` response matrix with images.

`read` takes one ``.npz`` holding the `NeuralDataset` fields under their own names.
`read_npy_images` pairs a ``.npy`` response matrix ``[units, images]`` or
``[units, images, repeats]`` (NaN-padded when images have different numbers of repeats, the
layout of Cowley et al. 2023's V4 data) with a folder or zip of the images, taken in natural
sorted order.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuralsight.data.dataset import DatasetError, NeuralDataset
from neuralsight.data.readers._common import (
    ImageCollection,
    PathLike,
    build_dataset,
    expect_paths,
    field_error,
    load_images,
    load_npy,
    missing_field,
    nanmean_quiet,
    open_npz,
    require_file,
    to_unit_range,
)

CHANNEL_COUNTS = (1, 3)


def read(
    paths: Sequence[PathLike] | PathLike, area: str = "unknown", allow_pickle: bool = False
) -> NeuralDataset:
    """Read a ``.npz`` file whose arrays are named after the `NeuralDataset` fields.

    Fields
    ------
    responses
        ``[n_trials, n_units]`` or ``[n_trials, n_units, n_bins]``, any real dtype (required).
    stimuli
        ``[n_stimuli, H, W]``, ``[n_stimuli, C, H, W]`` or ``[n_stimuli, H, W, C]`` with C 1 or
        3; uint8 0-255 or float (scaled to [0, 1] by the rule of `_common.to_unit_range`)
        (required). Channels first is assumed when axis 1 has 1 or 3 entries.
    units
        Optional: a structured array with fields ``unit_id`` and/or ``area`` (other fields
        become extra columns), or, with ``allow_pickle=True``, a pickled dict of columns.
        Top-level arrays ``unit_id`` and ``area`` are read too. Missing areas get ``area``.
    split, stimulus_id, bin_edges_ms
        Optional, as in `NeuralDataset.from_arrays` (without ``stimulus_id`` trial *i* shows
        stimulus *i*, so the counts must match).

    Parameters
    ----------
    paths
        ``[path.npz]``.
    area
        Area given to units whose area the file does not say.
    allow_pickle
        Allow a pickled ``units`` dict (only for files you trust).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, responses=np.ones((4, 3)), stimuli=np.zeros((4, 8, 8), np.uint8))
    >>> read([path]).summary()["n_units"]
    3
    """
    (path,) = expect_paths(paths, ["file.npz"], "npz")
    with open_npz(path, allow_pickle) as npz:
        fields = {name: _load_field(npz, name, path) for name in npz.files}
    for name in ("responses", "stimuli"):
        if name not in fields:
            raise missing_field(path, name, fields)
    responses = _responses(fields["responses"], path)
    stimuli = _stimuli(fields["stimuli"], path)
    stimulus_id = fields.get("stimulus_id")
    if stimulus_id is None and len(stimuli) != len(responses):
        raise field_error(
            path,
            "stimuli",
            f"must hold one image per trial ({len(responses)}) when 'stimulus_id' is absent",
            f"{len(stimuli)} images",
        )
    return build_dataset(
        path,
        responses=responses,
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        units=_units(fields, responses.shape[1], area, path),
        bin_edges_ms=fields.get("bin_edges_ms"),
        split=fields.get("split"),
        meta={"format": "npz", "source_file": str(path)},
    )


def _load_field(npz: Any, name: str, path: Path) -> np.ndarray:
    try:
        return npz[name]
    except ValueError as err:
        raise field_error(
            path, name, "must be a plain array (pass allow_pickle=True for pickled objects)", err
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise field_error(
            path, name, "must be readable", f"a truncated or corrupt entry ({err})"
        ) from err


def _responses(values: np.ndarray, path: Path) -> np.ndarray:
    if values.ndim not in (2, 3):
        raise field_error(
            path, "responses", "must be [n, units] or [n, units, bins]", f"shape {values.shape}"
        )
    if values.dtype.kind not in "buif":
        raise field_error(path, "responses", "must be numeric", f"dtype {values.dtype}")
    return values.astype(np.float32)


def _stimuli(values: np.ndarray, path: Path) -> np.ndarray:
    if values.ndim == 3:
        values = values[:, None]
    elif values.ndim == 4 and values.shape[1] not in CHANNEL_COUNTS:
        if values.shape[3] not in CHANNEL_COUNTS:
            raise field_error(
                path,
                "stimuli",
                "must have 1 or 3 channels, at axis 1 ([n, C, H, W]) or axis 3 ([n, H, W, C])",
                f"shape {values.shape}",
            )
        values = values.transpose(0, 3, 1, 2)
    elif values.ndim != 4:
        raise field_error(
            path,
            "stimuli",
            "must be [n, H, W], [n, C, H, W] or [n, H, W, C]",
            f"shape {values.shape}",
        )
    return to_unit_range(values, path, "stimuli")


def _units(fields: dict[str, np.ndarray], n_units: int, area: str, path: Path) -> pd.DataFrame:
    table = pd.DataFrame(index=range(n_units))
    if "units" in fields:
        for column, values in _unit_columns(fields["units"], path).items():
            table[column] = _unit_column(values, column, n_units, path)
    for column in ("unit_id", "area"):
        if column in fields:
            table[column] = _unit_column(fields[column], column, n_units, path)
    if "unit_id" not in table:
        table["unit_id"] = np.arange(n_units)
    if "area" not in table:
        table["area"] = area
    table["area"] = table["area"].astype(str)
    return table


def _unit_columns(units: np.ndarray, path: Path) -> dict[str, Any]:
    if units.dtype.names:
        return {name: units[name] for name in units.dtype.names}
    if units.dtype.kind == "O" and units.ndim == 0 and isinstance(units.item(), dict):
        return dict(units.item())
    raise field_error(
        path,
        "units",
        "must be a structured array (fields unit_id, area, ...) or a pickled dict of columns",
        f"dtype {units.dtype}, shape {units.shape}",
    )


def _unit_column(values: Any, column: str, n_units: int, path: Path) -> np.ndarray:
    values = np.asarray(values).ravel()
    if len(values) != n_units:
        raise field_error(
            path, f"units.{column}", f"must have one entry per unit ({n_units})", len(values)
        )
    if values.dtype.kind == "S":
        values = values.astype(str)
    return values


def read_npy_images(
    paths: Sequence[PathLike],
    image_size: int | None = None,
    average_repeats: bool = False,
    test_fraction: float = 0.2,
    test_images: Sequence[int] | None = None,
    seed: int = 0,
    area: str = "unknown",
    window_ms: tuple[float, float] | None = None,
    show_progress: bool = True,
) -> NeuralDataset:
    """Read ``[responses.npy, images]``: a response matrix and its images.

    ``responses.npy`` is ``[units, images]`` or ``[units, images, repeats]``; column *i* of
    the images axis belongs to the *i*-th image of the folder or zip (natural sort of the
    file paths, so ``image0001.jpg`` is column 0). Each repeat becomes its own trial sharing
    the image's ``stimulus_id``; repeats that are NaN for every unit are padding and are
    dropped (a repeat NaN for only some units is an error). With ``average_repeats`` each
    image gets one trial, the mean over its repeats. Images without any valid repeat keep
    their stimulus but get no trial.

    The test set is chosen per image, deterministically: ``test_images`` (indices into the
    sorted images) when given, otherwise ``round(test_fraction * n_images)`` images drawn by
    ``numpy.random.default_rng(seed)``. All trials of an image share its split.

    Parameters
    ----------
    paths
        ``[responses.npy, images_folder_or_zip]``.
    image_size
        Centre-crop and resize every image to this size; without it all images must share
        one size, which is kept.
    average_repeats
        One trial per image (the mean over valid repeats) instead of one per repeat.
    test_fraction, test_images, seed
        The held-out images (see above).
    area
        Area of every unit (e.g. ``"V4"``).
    window_ms
        ``(start, end)`` of the counting window relative to stimulus onset, when known; it
        becomes ``bin_edges_ms``. Otherwise the single bin is numbered ``[0, 1]``.
    show_progress
        Show a progress bar while images load.

    Examples
    --------
    >>> ds = read_npy_images(["responses_210325.npy", "images_210325.zip"], area="V4",
    ...                      window_ms=(50, 150))  # doctest: +SKIP
    """
    responses_path, images_path = expect_paths(
        paths, ["responses.npy", "images folder or zip"], "npy_images"
    )
    matrix = _response_matrix(require_file(responses_path))
    collection = ImageCollection(images_path)
    try:
        n_images = _check_image_count(matrix, collection, responses_path, images_path)
        trials, stimulus_id = _trials(matrix, responses_path, average_repeats)
        test = _test_images(n_images, test_fraction, test_images, seed)
        stimuli = load_images(
            collection.names, collection.open, image_size, "loading images", show_progress
        )
    finally:
        collection.close()
    n_units = matrix.shape[0]
    return build_dataset(
        responses_path,
        responses=trials,
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        units={"unit_id": np.arange(n_units), "area": [area] * n_units},
        bin_edges_ms=None if window_ms is None else np.asarray(window_ms, np.float64),
        split=np.where(np.isin(stimulus_id, test), "test", "train"),
        meta=_npy_images_meta(
            responses_path, images_path, collection.names, average_repeats, test, stimulus_id
        ),
    )


def _check_image_count(
    matrix: np.ndarray, collection: ImageCollection, responses_path: Path, images_path: Path
) -> int:
    """The number of images the response matrix holds, which the collection must match."""
    n_images = matrix.shape[1]
    if len(collection) != n_images:
        raise DatasetError(
            f"{responses_path}: field 'responses' holds {n_images} images (axis 1 of "
            f"[units, images(, repeats)]) but {images_path} holds {len(collection)} image files"
        )
    return n_images


def _npy_images_meta(
    responses_path: Path,
    images_path: Path,
    image_files: list[str],
    average_repeats: bool,
    test: np.ndarray,
    stimulus_id: np.ndarray,
) -> dict[str, Any]:
    """Where an ``npy_images`` data set came from, and how its trials and split were made."""
    return {
        "format": "npy_images",
        "source_file": str(responses_path),
        "images": str(images_path),
        "image_files": image_files,
        "response_units": f"as stored in {responses_path.name}",
        "averaged_repeats": average_repeats,
        "test_images": test.tolist(),
        "images_without_trials": int(len(image_files) - len(np.unique(stimulus_id))),
    }


def _response_matrix(path: Path) -> np.ndarray:
    matrix = load_npy(path, "responses")
    if matrix.ndim not in (2, 3) or matrix.dtype.kind not in "buif":
        raise field_error(
            path,
            "responses",
            "must be a numeric [units, images] or [units, images, repeats] array",
            f"dtype {matrix.dtype}, shape {matrix.shape}",
        )
    return matrix.astype(np.float32)


def _trials(matrix: np.ndarray, path: Path, average: bool) -> tuple[np.ndarray, np.ndarray]:
    by_repeat = (matrix if matrix.ndim == 3 else matrix[:, :, None]).transpose(1, 2, 0)
    missing = np.isnan(by_repeat)
    padding = missing.all(axis=2)
    partial = missing.any(axis=2) & ~padding
    if partial.any():
        image, repeat = np.argwhere(partial)[0]
        raise field_error(
            path,
            "responses",
            "must be NaN for all units or none in each repeat (NaN marks padding)",
            f"NaN for some units only at image {image}, repeat {repeat}",
        )
    valid = ~padding
    if average:
        kept = valid.any(axis=1)
        return nanmean_quiet(by_repeat[kept], axis=1), np.flatnonzero(kept)
    image_index = np.nonzero(valid)[0]
    return by_repeat[valid], image_index


def _test_images(
    n_images: int, test_fraction: float, test_images: Sequence[int] | None, seed: int
) -> np.ndarray:
    if test_images is not None:
        chosen = np.unique(np.asarray(test_images, dtype=np.int64))
        if chosen.size and (chosen.min() < 0 or chosen.max() >= n_images):
            raise ValueError(
                f"test_images must index the {n_images} images (0 to {n_images - 1}), "
                f"found values in [{chosen.min()}, {chosen.max()}]"
            )
        return chosen
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    n_test = round(test_fraction * n_images)
    return np.sort(np.random.default_rng(seed).permutation(n_images)[:n_test])
