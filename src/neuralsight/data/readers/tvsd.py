"""Reader for TVSD, the THINGS Ventral-stream Spiking Dataset (Papale et al., Neuron 2025).

Two macaques (N and F) carry 16 Utah arrays of 64 electrodes (1024 electrodes) in V1, V4 and
IT and saw 22,248 THINGS training images once each and 100 test images 30 times each. The
data set ships per monkey (shapes below as MATLAB sees them; the files are MATLAB v7.3, i.e.
HDF5 with axes stored reversed, which `_common.MatFile` undoes):

``THINGS_normMUA.mat``
    ``train_MUA`` ``[1024 x 22248]``, ``test_MUA`` ``[1024 x 100]`` and ``test_MUA_reps``
    ``[1024 x 100 x 30]``: multi-unit activity averaged in area-specific windows (V1 25-125,
    V4 50-150, IT 75-175 ms after onset) and normalised per electrode and day; ``reliab``
    ``[1024 x 435]`` (correlations between pairs of test repeats), ``SNR`` and ``lats``
    ``[1024 x days]``, ``SNR_max`` and ``oracle`` ``[1 x 1024]``, ``tb`` ``[1 x 300]`` (ms).
``_logs/things_imgs.mat``
    ``train_imgs`` / ``test_imgs``: structs whose ``things_path`` field lists each image's path
    inside the THINGS image database (not shipped with TVSD), in the order of the MUA columns.
``THINGS_MUA_trials.mat``
    ``ALLMUA`` ``[1024 x trials x time]``, the un-normalised time course of every trial, with
    ``tb`` (ms), and ``ALLMAT`` ``[trials x 7]`` with columns trial_idx, train_idx, test_idx,
    rep, count, correct, day (``train_idx`` / ``test_idx`` are 1-based, 0 for the other kind).

Units are electrodes: ``unit_id`` is the 0-based electrode number, ``array`` is
``unit_id // 64``, areas follow the monkey (N: V1 1-512, V4 513-768, IT 769-1024; F: V1
1-512, IT 513-832, V4 833-1024, 1-based), and ``reliability`` (mean of ``reliab``), ``snr``
(mean of ``SNR`` over days), ``snr_max``, ``oracle`` and ``latency_ms`` (mean of ``lats`` over
days) come from the file when present; receptive fields (``rf_x``, ``rf_y``, ``rf_sigma``, in
degrees) from an optional ``rf_path`` (see `read_receptive_fields`).

By default `read` takes the normalised, window-averaged MUA of ``THINGS_normMUA.mat`` as
responses (one bin, ``bin_edges_ms = [25, 175]``, the span of the three area windows listed
in ``meta["windows_ms"]``): one trial per training image, and the 30 repeats of each test
image as their own trials sharing its ``stimulus_id`` (``test_MUA``, one trial per test
image, when ``test_MUA_reps`` is absent or ``average_test`` is set). Trials holding NaN are
dropped and counted in ``meta["dropped_trials"]``.

With ``trials_path`` responses are instead the time courses of ``THINGS_MUA_trials.mat``,
read ``chunk_trials`` trials at a time (never whole), averaged into ``bin_ms`` bins over
``window_ms`` (a sample at time t belongs to the bin with ``start <= t < end``); one trial
per row of ``ALLMAT`` (only correct trials unless ``only_correct`` is false). With
``zscore_per_day`` each electrode is z-scored within each recording day, over that day's
trials and bins together (so the time course keeps its shape). Note the size: ~25,000
trials x 1024 electrodes x 10 bins is ~1 GB of float32.

Stimuli are the THINGS images, found under ``things_root`` (the folder holding the category
folders, or its parent holding ``object_images``), centre-cropped and resized to
``image_size``; training images come first, then the 100 test images. All 22,248 images at
96 x 96 RGB take ~2.5 GB of float32 memory: use ``max_images`` (the first training images
only; test images are always kept) or a smaller ``image_size`` for less.

Examples
--------
>>> ds = read(["monkeyN/THINGS_normMUA.mat"], monkey="N",
...           things_root="THINGS/object_images", max_images=1000)  # doctest: +SKIP
>>> ds.units["area"].value_counts().to_dict()  # doctest: +SKIP
{'V1': 512, 'V4': 256, 'IT': 256}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuralsight.data.dataset import DatasetError, NeuralDataset
from neuralsight.data.readers._common import (
    MatFile,
    PathLike,
    build_dataset,
    expect_paths,
    field_error,
    load_images,
    load_npy,
    missing_field,
    nanmean_quiet,
    open_npz,
    progress,
    require_file,
)

N_ELECTRODES = 1024
ELECTRODES_PER_ARRAY = 64
MONKEY_AREAS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "N": (("V1", 0, 512), ("V4", 512, 768), ("IT", 768, 1024)),
    "F": (("V1", 0, 512), ("IT", 512, 832), ("V4", 832, 1024)),
}
AREA_WINDOWS_MS = {"V1": (25, 125), "V4": (50, 150), "IT": (75, 175)}
ALLMAT_COLUMNS = ("trial_idx", "train_idx", "test_idx", "rep", "count", "correct", "day")
PER_ELECTRODE_FIELDS = {
    "reliability": "reliab",
    "snr": "SNR",
    "snr_max": "SNR_max",
    "oracle": "oracle",
    "latency_ms": "lats",
}
THINGS_SUBFOLDERS = ("", "object_images")


def read(
    paths: Sequence[PathLike] | PathLike,
    monkey: str,
    things_root: PathLike | None = None,
    imgs_path: PathLike | None = None,
    image_size: int = 96,
    max_images: int | None = None,
    min_reliability: float | None = None,
    min_snr: float | None = None,
    average_test: bool = False,
    rf_path: PathLike | None = None,
    trials_path: PathLike | None = None,
    window_ms: tuple[float, float] = (0.0, 200.0),
    bin_ms: float = 20.0,
    zscore_per_day: bool = False,
    only_correct: bool = True,
    chunk_trials: int = 128,
    show_progress: bool = True,
) -> NeuralDataset:
    """Read TVSD for one monkey into a `NeuralDataset`.

    The responses, trials and stimuli it makes are described in the module docstring:
    normalised, window-averaged MUA by default, time courses with ``trials_path``.

    Parameters
    ----------
    paths
        ``[THINGS_normMUA.mat]``.
    monkey
        ``"N"`` or ``"F"`` (``"monkeyN"`` / ``"monkeyF"`` also accepted): sets the areas.
    things_root
        Folder of THINGS images (required: TVSD does not ship them).
    imgs_path
        ``things_imgs.mat``; by default ``_logs/things_imgs.mat`` or ``things_imgs.mat``
        beside the normMUA file.
    image_size, max_images
        Side of the square stimuli in pixels; keep only the first ``max_images`` training
        images (and their trials).
    min_reliability, min_snr
        Keep only electrodes whose mean ``reliab`` / mean ``SNR`` over days reach this.
    average_test
        Use the repeat-averaged ``test_MUA`` even when the repeats are present.
    rf_path
        Receptive fields per electrode, in degrees of visual angle.
    trials_path, window_ms, bin_ms, zscore_per_day, only_correct, chunk_trials
        Time-resolved responses from ``THINGS_MUA_trials.mat``.
    show_progress
        Show progress bars.
    """
    (normmua_path,) = expect_paths(paths, ["THINGS_normMUA.mat"], "tvsd")
    require_file(normmua_path)
    monkey = _monkey(monkey)
    things_root = _checked_things_root(things_root, trials_path, zscore_per_day)
    imgs_path = Path(imgs_path) if imgs_path is not None else _default_imgs_path(normmua_path)
    train_images, test_images = read_image_list(imgs_path)
    n_train = len(train_images) if max_images is None else min(max_images, len(train_images))
    counts = (len(train_images), n_train, len(test_images))
    units, keep = _electrodes(normmua_path, monkey, min_reliability, min_snr)
    if trials_path is None:
        trials = _normalised_trials(normmua_path, keep, counts, average_test)
    else:
        timing = TimeCourse(window_ms, bin_ms, zscore_per_day, only_correct, chunk_trials)
        trials = _time_resolved_trials(Path(trials_path), keep, counts, timing, show_progress)
    if rf_path is not None:
        units = units.assign(**read_receptive_fields(Path(rf_path)))
    images = train_images[:n_train] + test_images
    stimuli = load_things_images(things_root, images, n_train, imgs_path, image_size, show_progress)
    meta = _meta(normmua_path, imgs_path, things_root, monkey, counts, image_size, rf_path)
    return build_dataset(
        normmua_path,
        responses=trials.pop("responses"),
        stimuli=stimuli,
        stimulus_id=trials.pop("stimulus_id"),
        units=units.iloc[keep].reset_index(drop=True),
        bin_edges_ms=trials.pop("bin_edges_ms"),
        split=trials.pop("split"),
        meta=meta | trials,
    )


@dataclass(frozen=True)
class TimeCourse:
    """How time-resolved responses are read from ``THINGS_MUA_trials.mat`` (see `read`)."""

    window_ms: tuple[float, float]
    bin_ms: float
    zscore_per_day: bool
    only_correct: bool
    chunk_trials: int


def _checked_things_root(
    things_root: PathLike | None, trials_path: PathLike | None, zscore_per_day: bool
) -> PathLike:
    """``things_root``, once it is known to be given and ``zscore_per_day`` to have its file."""
    if things_root is None:
        raise ValueError(
            "TVSD does not ship its stimuli: pass things_root=, the folder of THINGS images "
            "(https://things-initiative.org)"
        )
    if trials_path is None and zscore_per_day:
        raise ValueError("zscore_per_day applies to time-resolved data: pass trials_path= too")
    return things_root


def _electrodes(
    normmua_path: Path, monkey: str, min_reliability: float | None, min_snr: float | None
) -> tuple[pd.DataFrame, np.ndarray]:
    with MatFile(normmua_path) as mat:
        units = electrode_table(mat, monkey)
    return units, _electrode_selection(units, min_reliability, min_snr, normmua_path)


def _meta(
    normmua_path: Path,
    imgs_path: Path,
    things_root: PathLike,
    monkey: str,
    counts: tuple[int, int, int],
    image_size: int,
    rf_path: PathLike | None,
) -> dict[str, Any]:
    """Where the data set came from: files, monkey, image counts and size, receptive fields."""
    meta = {
        "format": "tvsd",
        "dataset": "TVSD, THINGS ventral-stream spiking data (Papale et al. 2025)",
        "source_file": str(normmua_path),
        "image_list": str(imgs_path),
        "things_root": str(things_root),
        "animal": f"monkey{monkey}",
        "n_train_images": counts[1],
        "n_test_images": counts[2],
        "stimuli": f"THINGS images, centre-cropped and resized to {image_size} x {image_size}",
    }
    if rf_path is not None:
        meta |= {"rf_units": "degrees", "rf_source": str(rf_path)}
    return meta


def _monkey(monkey: str) -> str:
    name = str(monkey).removeprefix("monkey")
    if name not in MONKEY_AREAS:
        raise ValueError(f"monkey must be 'N' or 'F' (or 'monkeyN' / 'monkeyF'), got {monkey!r}")
    return name


def _default_imgs_path(normmua_path: Path) -> Path:
    candidates = [normmua_path.parent / "_logs" / "things_imgs.mat"]
    candidates.append(normmua_path.parent / "things_imgs.mat")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"things_imgs.mat not found beside {normmua_path} (looked for "
        f"{[str(c) for c in candidates]}); pass imgs_path="
    )


def read_image_list(path: PathLike) -> tuple[list[str], list[str]]:
    """THINGS paths of the training and test images listed in ``things_imgs.mat``.

    Reads ``train_imgs.things_path`` and ``test_imgs.things_path`` (MATLAB structs of
    strings, v5 or v7.3) and turns Windows separators into ``/``.

    Examples
    --------
    >>> train, test = read_image_list("monkeyN/_logs/things_imgs.mat")  # doctest: +SKIP
    >>> train[0]  # doctest: +SKIP
    'aardvark/aardvark_01b.jpg'
    """
    with MatFile(path) as mat:
        train, test = (
            [p.replace("\\", "/") for p in mat.strings(f"{part}_imgs/things_path")]
            for part in ("train", "test")
        )
    return train, test


def resolve_things_paths(
    things_root: PathLike, relative: Sequence[str], n_train: int, source: PathLike
) -> list[Path]:
    """The files of THINGS images under ``things_root``; a missing one is a `DatasetError`.

    Each path is looked for under ``things_root`` and under ``things_root/object_images``.
    """
    root = Path(things_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: things_root is not a folder")
    found = []
    for index, name in enumerate(relative):
        candidates = [root / sub / name.lstrip("/") for sub in THINGS_SUBFOLDERS]
        existing = next((c for c in candidates if c.is_file()), None)
        if existing is None:
            field, row = (
                ("train_imgs", index) if index < n_train else ("test_imgs", index - n_train)
            )
            raise DatasetError(
                f"{source}: field '{field}.things_path' entry {row} names THINGS image "
                f"'{name}', which is not in things_root {root} (looked for "
                f"{[str(c) for c in candidates]})"
            )
        found.append(existing)
    return found


def load_things_images(
    things_root: PathLike,
    relative: Sequence[str],
    n_train: int,
    source: PathLike,
    image_size: int,
    show_progress: bool = True,
) -> np.ndarray:
    """THINGS images ``[n, 3, size, size]`` in [0, 1] (RGB), centre-cropped and resized.

    ``relative`` lists the training images first (``n_train`` of them), then the test
    images; see `resolve_things_paths`.
    """
    files = resolve_things_paths(things_root, relative, n_train, source)
    return load_images(
        [str(f) for f in files],
        lambda name: open(name, "rb"),
        image_size,
        "loading THINGS images",
        show_progress,
    )


def electrode_table(mat: MatFile, monkey: str) -> pd.DataFrame:
    """One row per electrode: ``unit_id``, ``area``, ``array`` and the quality fields present."""
    unit_id = np.arange(N_ELECTRODES)
    area = np.empty(N_ELECTRODES, dtype=object)
    for name, start, stop in MONKEY_AREAS[monkey]:
        area[start:stop] = name
    table = pd.DataFrame(
        {"unit_id": unit_id, "area": area, "array": unit_id // ELECTRODES_PER_ARRAY}
    )
    for column, field in PER_ELECTRODE_FIELDS.items():
        if field in mat:
            table[column] = per_electrode_mean(mat.array(field), mat.path, field)
    return table


def per_electrode_mean(values: np.ndarray, source: PathLike, field: str) -> np.ndarray:
    """Mean over the non-electrode axis (days, repeat pairs) of a per-electrode field.

    The electrode axis is the one with 1024 entries; NaN entries are ignored.

    Examples
    --------
    >>> per_electrode_mean(np.ones((1024, 4)), "f.mat", "SNR").shape
    (1024,)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == N_ELECTRODES:
        return values.ravel()
    if values.ndim == 2 and N_ELECTRODES in values.shape:
        return nanmean_quiet(values, axis=1 if values.shape[0] == N_ELECTRODES else 0)
    raise field_error(
        source, field, f"must have {N_ELECTRODES} electrodes along one axis", values.shape
    )


def _electrode_selection(
    units: pd.DataFrame, min_reliability: float | None, min_snr: float | None, source: Path
) -> np.ndarray:
    keep = np.ones(len(units), dtype=bool)
    for column, field, minimum in (
        ("reliability", "reliab", min_reliability),
        ("snr", "SNR", min_snr),
    ):
        if minimum is None:
            continue
        if column not in units:
            raise missing_field(source, field, [c for c in units.columns])
        keep &= units[column].to_numpy() >= minimum
    if not keep.any():
        raise DatasetError(
            f"{source}: no electrode passes min_reliability={min_reliability}, min_snr={min_snr}"
        )
    return np.flatnonzero(keep)


def _normalised_trials(
    path: Path, keep: np.ndarray, image_counts: tuple[int, int, int], average_test: bool
) -> dict[str, Any]:
    n_listed, n_train, n_test = image_counts
    with MatFile(path) as mat:
        _check_shape(mat, "train_MUA", (N_ELECTRODES, n_listed), "[1024 x train images]")
        train = mat.read("train_MUA", (slice(None), slice(0, n_train)))[keep].T
        if "test_MUA_reps" in mat and not average_test:
            reps_shape = mat.shape("test_MUA_reps")
            n_reps = reps_shape[2] if len(reps_shape) == 3 else 0
            layout = "[1024 x test images x repeats]"
            _check_shape(mat, "test_MUA_reps", (N_ELECTRODES, n_test, n_reps), layout)
            test = mat.array("test_MUA_reps")[keep].transpose(1, 2, 0).reshape(-1, len(keep))
            test_id = np.repeat(np.arange(n_test), n_reps)
        else:
            _check_shape(mat, "test_MUA", (N_ELECTRODES, n_test), "[1024 x test images]")
            test = mat.array("test_MUA")[keep].T
            test_id = np.arange(n_test)
    responses = np.concatenate([train, test]).astype(np.float32)
    stimulus_id = np.concatenate([np.arange(n_train), n_train + test_id])
    split = np.array(["train"] * n_train + ["test"] * len(test_id))
    finite = _finite_trials(responses, path, "train_MUA / test_MUA")
    return {
        "responses": responses[finite],
        "stimulus_id": stimulus_id[finite],
        "split": split[finite],
        "bin_edges_ms": np.array([25.0, 175.0]),
        "windows_ms": AREA_WINDOWS_MS,
        "dropped_trials": int((~finite).sum()),
        "response_units": "normalised MUA (per electrode and day), averaged in the area window",
    }


def _finite_trials(responses: np.ndarray, path: Path, field: str) -> np.ndarray:
    """The trials whose responses are all finite (the rest are dropped); none is an error."""
    finite = np.isfinite(responses.reshape(len(responses), -1)).all(axis=1)
    if not finite.any():
        raise field_error(
            path,
            field,
            "must hold finite responses of the kept electrodes in some trial",
            f"NaN or infinite values in all {len(responses)} trials",
        )
    return finite


def _check_shape(mat: MatFile, field: str, expected: tuple[int, ...], layout: str) -> None:
    shape = mat.shape(field)
    if shape != expected:
        raise field_error(mat.path, field, f"must be {layout} = {list(expected)}", list(shape))


def _time_resolved_trials(
    path: Path,
    keep: np.ndarray,
    image_counts: tuple[int, int, int],
    timing: TimeCourse,
    show_progress: bool,
) -> dict[str, Any]:
    edges = bin_edges(timing.window_ms, timing.bin_ms)
    chunk_trials = timing.chunk_trials
    with MatFile(path) as mat:
        allmat = _read_allmat(mat)
        n_trials = len(allmat)
        tb = mat.array("tb").ravel().astype(np.float64)
        _check_shape(mat, "ALLMUA", (N_ELECTRODES, n_trials, len(tb)), "[1024 x trials x time]")
        weights, time_slice = bin_weights(tb, edges, path)
        rows, stimulus_id, split = _select_trials(allmat, image_counts, timing.only_correct, path)
        responses = np.empty((len(rows), len(keep), len(edges) - 1), np.float32)
        starts = range(0, n_trials, chunk_trials)
        for start in progress(starts, "reading ALLMUA", len(starts), show_progress):
            first, last = np.searchsorted(rows, [start, start + chunk_trials])
            if first == last:
                continue
            span = slice(rows[first], rows[last - 1] + 1)
            block = mat.read("ALLMUA", (slice(None), span, time_slice))
            block = block[keep][:, rows[first:last] - rows[first]]
            responses[first:last] = block.transpose(1, 0, 2) @ weights
    days = allmat[rows, ALLMAT_COLUMNS.index("day")]
    if timing.zscore_per_day:
        zscore_within_days(responses, days)
    finite = _finite_trials(responses, path, "ALLMUA")
    normalisation = "z-scored per electrode within each day" if timing.zscore_per_day else "raw"
    return {
        "responses": responses[finite],
        "stimulus_id": stimulus_id[finite],
        "split": split[finite],
        "bin_edges_ms": edges,
        "trials_file": str(path),
        "trial_day": days[finite].astype(int).tolist(),
        "dropped_trials": int((~finite).sum()),
        "response_units": f"MUA time course, mean per {timing.bin_ms:g} ms bin, {normalisation}",
    }


def _read_allmat(mat: MatFile) -> np.ndarray:
    allmat = mat.array("ALLMAT")
    if allmat.ndim != 2 or allmat.shape[1] != len(ALLMAT_COLUMNS) or allmat.shape[0] == 0:
        raise field_error(
            mat.path,
            "ALLMAT",
            f"must be [trials x {len(ALLMAT_COLUMNS)}] with columns {list(ALLMAT_COLUMNS)}",
            f"shape {list(allmat.shape)}",
        )
    return allmat.astype(np.int64)


def _select_trials(
    allmat: np.ndarray, image_counts: tuple[int, int, int], only_correct: bool, source: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_listed, n_train, n_test = image_counts
    train_idx = allmat[:, ALLMAT_COLUMNS.index("train_idx")]
    test_idx = allmat[:, ALLMAT_COLUMNS.index("test_idx")]
    for column, values, limit in (
        ("train_idx", train_idx, n_listed),
        ("test_idx", test_idx, n_test),
    ):
        if values.min() < 0 or values.max() > limit:
            raise field_error(
                source,
                f"ALLMAT.{column}",
                f"must lie in 0-{limit} (images in things_imgs.mat)",
                f"values in [{values.min()}, {values.max()}]",
            )
    is_train = train_idx > 0
    wanted = (is_train ^ (test_idx > 0)) & (~is_train | (train_idx <= n_train))
    if only_correct:
        wanted &= allmat[:, ALLMAT_COLUMNS.index("correct")] != 0
    rows = np.flatnonzero(wanted)
    stimulus_id = np.where(is_train[rows], train_idx[rows] - 1, n_train + test_idx[rows] - 1)
    return rows, stimulus_id, np.where(is_train[rows], "train", "test")


def bin_edges(window_ms: tuple[float, float], bin_ms: float) -> np.ndarray:
    """Edges of ``bin_ms`` bins tiling ``window_ms`` exactly.

    Examples
    --------
    >>> bin_edges((0, 100), 25).tolist()
    [0.0, 25.0, 50.0, 75.0, 100.0]
    """
    start, end = (float(w) for w in window_ms)
    n_bins = round((end - start) / bin_ms)
    if bin_ms <= 0 or n_bins < 1 or not np.isclose(start + n_bins * bin_ms, end):
        raise ValueError(
            f"window_ms={window_ms} must be a whole positive number of bin_ms={bin_ms} bins"
        )
    return start + bin_ms * np.arange(n_bins + 1, dtype=np.float64)


def bin_weights(tb: np.ndarray, edges: np.ndarray, source: PathLike) -> tuple[np.ndarray, slice]:
    """Averaging matrix ``[samples, bins]`` and the slice of ``tb`` samples it applies to.

    Sample t belongs to bin k when ``edges[k] <= t < edges[k + 1]``; each bin is the mean of
    its samples.

    Examples
    --------
    >>> weights, samples = bin_weights(np.arange(-2.0, 4.0), np.array([0.0, 2.0, 4.0]), "f")
    >>> samples, weights.tolist()
    (slice(2, 6, None), [[0.5, 0.0], [0.5, 0.0], [0.0, 0.5], [0.0, 0.5]])
    """
    if len(tb) < 2 or np.any(np.diff(tb) <= 0):
        raise field_error(source, "tb", "must increase strictly (ms)", f"{len(tb)} samples")
    inside = np.flatnonzero((tb >= edges[0]) & (tb < edges[-1]))
    which = np.searchsorted(edges, tb[inside], side="right") - 1
    counts = np.bincount(which, minlength=len(edges) - 1)
    if inside.size == 0 or np.any(counts == 0):
        empty = np.flatnonzero(counts == 0)[0] if inside.size else 0
        raise field_error(
            source,
            "tb",
            f"must have samples in every bin of {edges.tolist()} ms "
            f"(bin [{edges[empty]:g}, {edges[empty + 1]:g}) is empty)",
            f"samples from {tb[0]:g} to {tb[-1]:g} ms",
        )
    weights = np.zeros((inside.size, len(edges) - 1), np.float32)
    weights[np.arange(inside.size), which] = 1.0 / counts[which]
    return weights, slice(int(inside[0]), int(inside[-1]) + 1)


def zscore_within_days(responses: np.ndarray, days: np.ndarray) -> None:
    """Z-score each unit within each day, over that day's trials and bins, in place.

    A unit that is constant on a day is only centred.

    Examples
    --------
    >>> r = np.array([[[1.0]], [[3.0]], [[5.0]]], np.float32)
    >>> zscore_within_days(r, np.array([1, 1, 2]))
    >>> r.ravel().tolist()
    [-1.0, 1.0, 0.0]
    """
    for day in np.unique(days):
        rows = np.flatnonzero(days == day)
        block = responses[rows].astype(np.float64)
        mean = block.mean(axis=(0, 2), keepdims=True)
        std = block.std(axis=(0, 2), keepdims=True)
        std[std == 0] = 1.0
        responses[rows] = (block - mean) / std


def read_receptive_fields(path: Path) -> dict[str, np.ndarray]:
    """Receptive-field centres (and sizes) per electrode, in degrees, from ``path``.

    ``.npy``: ``[1024, 2 or 3]`` (columns x, y[, sigma]); ``.npz`` / ``.mat``: variables
    ``x``, ``y`` and optionally ``sigma`` with 1024 values each.
    """
    if path.suffix == ".npy":
        table = load_npy(path, "rf")
        if table.ndim != 2 or table.shape[0] != N_ELECTRODES or table.shape[1] not in (2, 3):
            raise field_error(
                path, "rf", f"must be [{N_ELECTRODES}, 2 or 3] (x, y[, sigma])", table.shape
            )
        columns = dict(zip(("x", "y", "sigma"), table.T, strict=False))
    elif path.suffix == ".npz":
        with open_npz(path) as npz:
            columns = {name: npz[name] for name in ("x", "y", "sigma") if name in npz.files}
    else:
        with MatFile(path) as mat:
            columns = {name: mat.array(name) for name in ("x", "y", "sigma") if name in mat}
    for name in ("x", "y"):
        if name not in columns:
            raise missing_field(path, name, columns)
    fields = {}
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size != N_ELECTRODES:
            raise field_error(
                path, name, f"must have one value per electrode ({N_ELECTRODES})", values.size
            )
        fields[f"rf_{name}"] = values
    return fields
