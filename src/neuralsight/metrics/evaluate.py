"""The reconstructions file and the evaluation entry point behind ``neuralsight evaluate``.

A decoder writes its reconstructions with `save_reconstructions`; `evaluate_reconstructions`
reads them back, looks up the true stimuli in a `NeuralDataset` by ``stimulus_id`` and scores
them; `write_metrics_json` stores the result.

The reconstructions file is one ``.npz`` (no pickles) holding

- ``images``: float32 ``[N, C, H, W]``, ideally in [0, 1];
- ``stimulus_id``: int64 ``[N]``, the row of the dataset's ``stimuli`` each image reconstructs;
- ``meta``: a JSON string (model, checkpoint, split, seed, ...);
- ``format`` (``"neuralsight.reconstructions"``) and ``format_version``.

Files are written under a temporary name in the target folder and renamed when complete,
so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuralsight.data.dataset import NeuralDataset
from neuralsight.files import atomic_write
from neuralsight.metrics.colour import colourfulness
from neuralsight.metrics.features import feature_metrics
from neuralsight.metrics.image import image_metrics

FORMAT = "neuralsight.reconstructions"
FORMAT_VERSION = 1
FIELDS = ("images", "stimulus_id", "meta", "format", "format_version")


class ReconstructionsError(ValueError):
    """A reconstructions file or array is malformed; the message names the file and field."""


def _where(source: str | os.PathLike | None) -> str:
    return f"{source}: " if source else ""


def _check_images(images: np.ndarray, source: str | os.PathLike | None) -> None:
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ReconstructionsError(
            f"{_where(source)}field 'images' must have shape [N, C, H, W] with N >= 1 and "
            f"C = 1 or 3, found shape {images.shape}"
        )
    if images.dtype != np.float32:
        raise ReconstructionsError(
            f"{_where(source)}field 'images' must be float32, found {images.dtype}"
        )
    if not np.all(np.isfinite(images)):
        raise ReconstructionsError(f"{_where(source)}field 'images' holds NaN or infinite values")


def _check_ids(stimulus_id: np.ndarray, n_images: int, source: str | os.PathLike | None) -> None:
    if stimulus_id.shape != (n_images,):
        raise ReconstructionsError(
            f"{_where(source)}field 'stimulus_id' must have shape [N] = ({n_images},), "
            f"found shape {stimulus_id.shape}"
        )
    if stimulus_id.dtype.kind not in "iu":
        raise ReconstructionsError(
            f"{_where(source)}field 'stimulus_id' must hold integers, found {stimulus_id.dtype}"
        )
    if stimulus_id.min() < 0:
        raise ReconstructionsError(
            f"{_where(source)}field 'stimulus_id' must be >= 0, found {stimulus_id.min()}"
        )


def _meta_json(meta: dict[str, Any]) -> str:
    try:
        return json.dumps(meta, default=_json_default, allow_nan=True)
    except TypeError as err:
        raise ReconstructionsError(f"field 'meta' must be JSON-serialisable: {err}") from err


def save_reconstructions(
    path: str | os.PathLike,
    images: np.ndarray | torch.Tensor,
    stimulus_id: np.ndarray | torch.Tensor,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write reconstructions and the stimulus each one reconstructs to an ``.npz``, atomically.

    Parameters
    ----------
    path
        Target file (``.npz`` by convention; the name is kept as given).
    images
        ``[N, C, H, W]`` with C = 1 or 3, stored as float32.
    stimulus_id
        ``[N]`` non-negative integers, rows of the dataset's ``stimuli``.
    meta
        JSON-serialisable provenance (model, checkpoint, split, ...).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = save_reconstructions(
    ...     os.path.join(tempfile.mkdtemp(), "recon.npz"),
    ...     np.zeros((2, 1, 8, 8), np.float32), np.array([3, 5]), {"model": "ridge"},
    ... )
    >>> load_reconstructions(path)[1]
    array([3, 5])
    """
    image_array = _to_numpy(images).astype(np.float32, copy=False)
    ids = _to_numpy(stimulus_id)
    _check_images(image_array, None)
    _check_ids(ids, image_array.shape[0], None)
    meta_json = _meta_json(dict(meta or {}))
    fields = {
        "images": image_array,
        "stimulus_id": ids.astype(np.int64),
        "meta": np.array(meta_json),
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
    }
    return atomic_write(Path(path), lambda handle: np.savez(handle, **fields))


def _to_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if torch.is_tensor(values):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def load_reconstructions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a file written by `save_reconstructions`.

    Returns
    -------
    images, stimulus_id, meta
        float32 ``[N, C, H, W]``, int64 ``[N]`` and the metadata dict.

    Raises
    ------
    FileNotFoundError
        No such file.
    ReconstructionsError
        Not a reconstructions file, a field missing, or a field of the wrong shape or type;
        the message names the file and the field.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = save_reconstructions(
    ...     os.path.join(tempfile.mkdtemp(), "r.npz"), np.ones((1, 3, 4, 4)), [0], {"seed": 1}
    ... )
    >>> images, ids, meta = load_reconstructions(path)
    >>> images.shape, images.dtype, meta
    ((1, 3, 4, 4), dtype('float32'), {'seed': 1})
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such reconstructions file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ReconstructionsError(f"{path}: not a reconstructions .npz file ({err})") from err
    _check_header(fields, path)
    images, ids = fields["images"], fields["stimulus_id"]
    _check_images(images, path)
    _check_ids(ids, images.shape[0], path)
    try:
        meta = json.loads(str(fields["meta"]))
    except json.JSONDecodeError as err:
        raise ReconstructionsError(f"{path}: field 'meta' is not valid JSON ({err})") from err
    return images, ids.astype(np.int64), meta


def _check_header(fields: dict[str, np.ndarray], path: Path) -> None:
    if str(fields.get("format", "")) != FORMAT:
        raise ReconstructionsError(
            f"{path}: not a neuralsight reconstructions file (field 'format' should be "
            f"{FORMAT!r}, found {str(fields['format']) if 'format' in fields else 'nothing'!r})"
        )
    version = int(fields.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise ReconstructionsError(
            f"{path}: format version {version} is newer than this neuralsight "
            f"({FORMAT_VERSION}); upgrade neuralsight"
        )
    missing = [name for name in FIELDS if name not in fields]
    if missing:
        raise ReconstructionsError(f"{path}: field(s) {missing} missing; found {sorted(fields)}")


def true_stimuli(dataset: NeuralDataset, stimulus_id: np.ndarray) -> np.ndarray:
    """The dataset's stimuli for each id, ``[N, C, H, W]`` float32, read in sorted order.

    Each distinct row is read once, in ascending order (as ``h5py`` requires), then
    arranged to follow ``stimulus_id`` (repeats included).

    Examples
    --------
    >>> import numpy as np
    >>> stimuli = np.random.rand(3, 1, 4, 4).astype(np.float32)
    >>> ds = NeuralDataset.from_arrays(np.zeros((3, 2), np.float32), stimuli)
    >>> np.array_equal(true_stimuli(ds, np.array([2, 0, 2])), ds.stimuli[[2, 0, 2]])
    True
    """
    ids = np.asarray(stimulus_id, dtype=np.int64)
    if ids.size and ids.max() >= dataset.n_stimuli:
        raise ReconstructionsError(
            f"field 'stimulus_id' must index the {dataset.n_stimuli} stimuli of "
            f"{dataset.source or 'the dataset'}, found id {ids.max()}"
        )
    unique, inverse = np.unique(ids, return_inverse=True)
    rows = np.asarray(dataset.stimuli[unique], dtype=np.float32)
    return rows[inverse]


def _matched_targets(targets: np.ndarray, images: np.ndarray) -> tuple[torch.Tensor, list | None]:
    target_t = torch.from_numpy(targets)
    if targets.shape[1] != images.shape[1]:
        raise ReconstructionsError(
            f"reconstructions have {images.shape[1]} channel(s) but the true stimuli have "
            f"{targets.shape[1]}; shapes {images.shape} and {targets.shape}"
        )
    if targets.shape[2:] == images.shape[2:]:
        return target_t, None
    resized = F.interpolate(
        target_t, size=images.shape[2:], mode="bilinear", align_corners=False, antialias=True
    ).clamp(0.0, 1.0)
    return resized, list(targets.shape[2:])


def evaluate_reconstructions(
    recon_path: str | os.PathLike,
    dataset: NeuralDataset | str | os.PathLike,
    features: bool = False,
    weights: str | None = "auto",
    device: str | torch.device | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Score a reconstructions file against the true stimuli of a dataset.

    Reconstructions are clipped to [0, 1] (the share of clipped pixels is reported). Where
    their size differs from the stimuli, the stimuli are resized to it (bilinear, antialiased)
    and ``target_resized_from`` records the original size.

    Parameters
    ----------
    recon_path
        File written by `save_reconstructions`.
    dataset
        A `NeuralDataset` or the path of one.
    features
        Also compute AlexNet layer correlations, two-way identification and colourfulness.
    weights, device, batch_size
        For the AlexNet features (see `load_pretrained` and `feature_metrics`).

    Returns
    -------
    dict
        ``image`` (`image_metrics`), with ``features=True`` also ``features``
        (`feature_metrics`) and ``colourfulness`` (mean of reconstructions and of stimuli);
        ``weights`` (the AlexNet provenance, None when no network was used), ``n_images``,
        ``image_shape``, ``clipped_fraction``, ``target_resized_from``, ``reconstructions``,
        ``dataset`` and the file's ``meta``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> stimuli = np.random.rand(4, 1, 16, 16).astype(np.float32)
    >>> ds = NeuralDataset.from_arrays(np.zeros((4, 2), np.float32), stimuli)
    >>> path = os.path.join(tempfile.mkdtemp(), "r.npz")
    >>> path = save_reconstructions(path, ds.stimuli[[1, 3]], [1, 3])
    >>> round(evaluate_reconstructions(path, ds)["image"]["ssim"], 6)
    1.0
    """
    if not isinstance(dataset, NeuralDataset):
        dataset = NeuralDataset.open(dataset)
    images, ids, meta = load_reconstructions(recon_path)
    try:
        targets = true_stimuli(dataset, ids)
    except ReconstructionsError as err:
        raise ReconstructionsError(f"{recon_path}: {err}") from err
    target_t, resized_from = _matched_targets(targets, images)
    pred_t = torch.from_numpy(images)
    clipped_fraction = float(((pred_t < 0) | (pred_t > 1)).double().mean())
    pred_t = pred_t.clamp(0.0, 1.0)
    result: dict[str, Any] = {
        "reconstructions": str(recon_path),
        "dataset": dataset.source,
        "n_images": int(images.shape[0]),
        "image_shape": list(images.shape[1:]),
        "target_resized_from": resized_from,
        "clipped_fraction": clipped_fraction,
        "image": image_metrics(pred_t, target_t),
        "weights": None,
        "meta": meta,
    }
    if features:
        result["features"] = feature_metrics(
            pred_t, target_t, weights=weights, device=device, batch_size=batch_size, progress=True
        )
        result["weights"] = result["features"]["weights"]
        result["colourfulness"] = {
            "reconstructions": colourfulness(pred_t),
            "stimuli": colourfulness(target_t),
        }
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serialisable")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, np.ndarray | torch.Tensor):
        return _finite_or_none(value.tolist())
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def write_metrics_json(path: str | os.PathLike, metrics: dict[str, Any]) -> Path:
    """Write metrics as indented JSON, atomically; NaN and infinite values become ``null``.

    (A perfect reconstruction has infinite PSNR; strict JSON has no infinity.)

    Examples
    --------
    >>> import tempfile, os, json
    >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> path = write_metrics_json(path, {"psnr": float("inf")})
    >>> json.loads(path.read_text())
    {'psnr': None}
    """
    text = json.dumps(_finite_or_none(metrics), indent=2, default=_json_default, allow_nan=False)
    return atomic_write(Path(path), lambda handle: handle.write((text + "\n").encode()))
