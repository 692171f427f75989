"""The results files of neuralsight and their writers: reconstructions, response predictions, metrics.

Both directions keep their outputs here, in one place:

- **Reconstructions** (a decoder's output): one ``.npz`` (no pickles) holding ``images``
  float32 ``[N, C, H, W]`` (ideally in [0, 1]), ``stimulus_id`` int64 ``[N]`` (the row of
  the dataset's ``stimuli`` each image reconstructs), ``meta`` (a JSON string: model,
  checkpoint, split, seed, ...), ``format`` (``"neuralsight.reconstructions"``) and
  ``format_version``. `save_reconstructions` / `load_reconstructions`.
- **Response predictions** (an encoder's output): one ``.npz`` holding ``responses``
  float32 ``[N, n_units, n_bins]``, ``stimulus_id`` ``[N]``, ``meta``, ``format``
  (``"neuralsight.response_predictions"``) and ``format_version``.
  `save_response_predictions` / `load_response_predictions`.
- **Writers** for ``Trainer.predict`` over a `NeuralDataModule` (its predict loader is the
  test split): `ReconstructionWriter` and `ResponsePredictionWriter` write the files above.
- **Metrics**: `write_metrics_json`, strict JSON (NaN and infinity become ``null``).

`neuralsight.metrics.score` reads these files back and scores them. Files are written
under a temporary name in the target folder and renamed when complete, so a crash never
leaves a half-written file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from neuralsight.files import atomic_write

RECONSTRUCTIONS_FORMAT = "neuralsight.reconstructions"
RECONSTRUCTIONS_FORMAT_VERSION = 1
RECONSTRUCTIONS_FIELDS = ("images", "stimulus_id", "meta", "format", "format_version")


class ReconstructionsError(ValueError):
    """A reconstructions file or array is malformed; the message names the file and field."""


def _where(source: str | os.PathLike | None) -> str:
    return f"{source}: " if source else ""


def check_images(images: np.ndarray, source: str | os.PathLike | None = None) -> None:
    """Refuse reconstructions that are not finite float32 ``[N, C, H, W]``, C 1 or 3.

    Examples
    --------
    >>> check_images(np.zeros((2, 1, 4, 4), np.float32))
    >>> check_images(np.full((1, 1, 2, 2), np.nan, np.float32), "r.npz")
    Traceback (most recent call last):
    ...
    neuralsight.metrics.results.ReconstructionsError: r.npz: field 'images' holds NaN or infinite values
    """
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
    check_images(image_array, None)
    _check_ids(ids, image_array.shape[0], None)
    header = (RECONSTRUCTIONS_FORMAT, RECONSTRUCTIONS_FORMAT_VERSION)
    return _write_npz(path, {"images": image_array}, ids, _meta_json(dict(meta or {})), header)


def _write_npz(
    path: str | os.PathLike,
    values: dict[str, np.ndarray],
    ids: np.ndarray,
    meta_json: str,
    header: tuple[str, int],
) -> Path:
    """Write ``values``, ``stimulus_id``, ``meta``, ``format`` and ``format_version``."""
    fields: dict[str, np.ndarray] = {
        **values,
        "stimulus_id": ids.astype(np.int64),
        "meta": np.array(meta_json),
        "format": np.array(header[0]),
        "format_version": np.array(header[1]),
    }
    # mypy matches **fields against savez's `allow_pickle: bool`; the keys are field names.
    return atomic_write(Path(path), lambda handle: np.savez(handle, **fields))  # type: ignore[arg-type]


def _read_npz(path: Path, what: str, error: type[ValueError]) -> dict[str, np.ndarray]:
    """Every field of the ``.npz`` at ``path``; ``error`` names the file where it is not one."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise error(f"{path}: not a {what} .npz file ({err})") from err


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
    fields = _read_npz(path, "reconstructions", ReconstructionsError)
    _check_header(fields, path)
    images, ids = fields["images"], fields["stimulus_id"]
    check_images(images, path)
    _check_ids(ids, images.shape[0], path)
    try:
        meta = json.loads(str(fields["meta"]))
    except json.JSONDecodeError as err:
        raise ReconstructionsError(f"{path}: field 'meta' is not valid JSON ({err})") from err
    return images, ids.astype(np.int64), meta


def _check_header(fields: dict[str, np.ndarray], path: Path) -> None:
    if str(fields.get("format", "")) != RECONSTRUCTIONS_FORMAT:
        raise ReconstructionsError(
            f"{path}: not a neuralsight reconstructions file (field 'format' should be "
            f"{RECONSTRUCTIONS_FORMAT!r}, found {str(fields['format']) if 'format' in fields else 'nothing'!r})"
        )
    version = int(fields.get("format_version", -1))
    if version > RECONSTRUCTIONS_FORMAT_VERSION:
        raise ReconstructionsError(
            f"{path}: format version {version} is newer than this neuralsight "
            f"({RECONSTRUCTIONS_FORMAT_VERSION}); upgrade neuralsight"
        )
    missing = [name for name in RECONSTRUCTIONS_FIELDS if name not in fields]
    if missing:
        raise ReconstructionsError(f"{path}: field(s) {missing} missing; found {sorted(fields)}")


PREDICTIONS_FORMAT = "neuralsight.response_predictions"
PREDICTIONS_FORMAT_VERSION = 1


class PredictionsError(ValueError):
    """A response predictions file is malformed; the message names the file and field."""


def save_response_predictions(
    path: str | os.PathLike,
    responses: np.ndarray | torch.Tensor,
    stimulus_id: np.ndarray | torch.Tensor,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write an encoder's predicted responses as `save_reconstructions` writes images.

    ``responses`` are ``[N, n_units, n_bins]`` (or ``[N, n_units]``), stored as float32;
    ``stimulus_id`` the ``[N]`` stimuli they answer; ``meta`` the provenance.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = save_response_predictions(os.path.join(tempfile.mkdtemp(), "p.npz"),
    ...                                  np.ones((2, 3)), [4, 1], {"model": "LN"})
    >>> load_response_predictions(path)[0].shape
    (2, 3, 1)
    """
    values = np.asarray(torch.as_tensor(responses).detach().cpu(), dtype=np.float32)
    if values.ndim == 2:
        values = values[:, :, None]
    ids = np.asarray(torch.as_tensor(stimulus_id).cpu())
    _check_predictions(values, ids, None)
    header = (PREDICTIONS_FORMAT, PREDICTIONS_FORMAT_VERSION)
    return _write_npz(path, {"responses": values}, ids, json.dumps(dict(meta or {})), header)


def _check_predictions(responses: np.ndarray, ids: np.ndarray, source) -> None:
    where = f"{source}: " if source else ""
    if responses.ndim != 3 or responses.shape[0] == 0:
        raise PredictionsError(
            f"{where}field 'responses' must have shape [N, n_units, n_bins] with N >= 1, "
            f"found shape {responses.shape}"
        )
    if not np.all(np.isfinite(responses)):
        raise PredictionsError(f"{where}field 'responses' holds NaN or infinite values")
    if ids.shape != (responses.shape[0],) or ids.dtype.kind not in "iu" or ids.min() < 0:
        raise PredictionsError(
            f"{where}field 'stimulus_id' must be [N] = ({responses.shape[0]},) non-negative "
            f"integers, found shape {ids.shape} dtype {ids.dtype}"
        )


def load_response_predictions(
    path: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a file written by `save_response_predictions`.

    Returns
    -------
    responses, stimulus_id, meta
        float32 ``[N, n_units, n_bins]``, int64 ``[N]`` and the metadata dict.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = save_response_predictions(os.path.join(tempfile.mkdtemp(), "p.npz"),
    ...                                  np.ones((1, 2, 1)), [0])
    >>> load_response_predictions(path)[2]
    {}
    """
    path = Path(path)
    fields = _read_npz(path, "predictions", PredictionsError)
    found = str(fields.get("format", "nothing"))
    if found != PREDICTIONS_FORMAT:
        raise PredictionsError(
            f"{path}: not a neuralsight predictions file (field 'format' should be "
            f"{PREDICTIONS_FORMAT!r}, found {found!r})"
        )
    missing = [f for f in ("responses", "stimulus_id", "meta") if f not in fields]
    if missing:
        raise PredictionsError(f"{path}: field(s) {missing} missing; found {sorted(fields)}")
    _check_predictions(fields["responses"], fields["stimulus_id"], path)
    return fields["responses"], fields["stimulus_id"], json.loads(str(fields["meta"]))


class ReconstructionWriter(BasePredictionWriter):
    """Writes all predicted images of an epoch, with their stimulus ids, to one ``.npz`` file."""

    def __init__(self, path: str | os.PathLike = "reconstructions.npz") -> None:
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        """Save the epoch's images with the test split's stimulus ids and the model's name."""
        images = torch.cat([torch.as_tensor(p) for p in predictions]).float().numpy()
        datamodule = trainer.datamodule
        stimulus_id = np.asarray(datamodule.test_set.stimulus_index[: len(images)])
        meta = {
            "model": type(pl_module).__name__,
            "dataset": datamodule.dataset.source,
            "dataset_fingerprint": datamodule.dataset.fingerprint(),
            "control": datamodule.control,
        }
        save_reconstructions(self.path, images, stimulus_id, meta)


class ResponsePredictionWriter(BasePredictionWriter):
    """Writes an encoder's test-split predictions, with stimulus ids, to one ``.npz`` file.

    For ``Trainer.predict`` over a `NeuralDataModule` (its predict loader is the test split).
    """

    def __init__(self, path: str | os.PathLike = "predictions.npz") -> None:
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        """Save the epoch's responses with the test split's stimulus ids and the model's name."""
        responses = torch.cat([torch.as_tensor(p) for p in predictions]).float()
        datamodule = trainer.datamodule
        ids = np.asarray(datamodule.test_set.stimulus_index[: len(responses)])
        meta = {
            "model": type(pl_module).__name__,
            "dataset": datamodule.dataset.source,
            "dataset_fingerprint": datamodule.dataset.fingerprint(),
        }
        save_response_predictions(self.path, responses, ids, meta)


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

    def write(handle: IO[bytes]) -> None:
        handle.write((text + "\n").encode())

    return atomic_write(Path(path), write)
