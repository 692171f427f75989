"""One scoring service: any decoder or encoder, on any split of any dataset, one result record.

- `score_decoder` scores reconstructions against the true stimuli of a `NeuralDataset`:
  made by a trained decoder (its ``reconstruct``) from a split's responses, or already made
  (a reconstructions file, or arrays and their stimulus ids). Options: repeats of a stimulus
  averaged or every trial scored, the mean-training-image control, feature metrics
  (AlexNet layer correlations, two-way identification) and the weights' provenance. It
  returns a `DecoderScores` record.
- `score_encoder` scores predicted responses (a trained encoder's ``predict_responses``, a
  response predictions file, or arrays) against the recorded ones: per-unit r, noise
  ceiling and FEVE (`neuralsight.metrics.encoding.encoding_metrics`). It returns an
  `EncoderScores` record.

Both records have ``.as_dict()``, their JSON-ready form (`write_metrics_json` writes it).
A "shuffled" control is a decoder trained on shuffled pairs: it is scored like any model.
`held_out_pairs`, `true_stimuli` and `mean_image` are the pieces the analyses share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from neuralsight.data.dataset import NeuralDataset, open_dataset
from neuralsight.data.store import unreadable
from neuralsight.data.validation import DatasetError
from neuralsight.data.views import PairDataset
from neuralsight.metrics.colour import colourfulness
from neuralsight.metrics.encoding import encoding_metrics, repeats_by_stimulus
from neuralsight.metrics.features import (
    TWOWAY_LAYERS,
    AlexNetFeatures,
    feature_metrics,
    twoway_identification,
)
from neuralsight.metrics.image import image_metrics
from neuralsight.metrics.results import (
    PredictionsError,
    ReconstructionsError,
    check_images,
    load_reconstructions,
    load_response_predictions,
)


@runtime_checkable
class Reconstructs(Protocol):
    """A decoder: ``reconstruct(data, split=...)`` returns images ``[N, C, H, W]``."""

    def reconstruct(self, data: Any, split: str = "test") -> np.ndarray:
        """Images reconstructed from a dataset's ``split`` or from a responses array."""
        ...


@runtime_checkable
class PredictsResponses(Protocol):
    """An encoder: ``predict_responses(images)`` returns responses ``[N, n_units, n_bins]``."""

    def predict_responses(self, data: Any) -> np.ndarray:
        """Responses predicted for images ``[N, C, H, W]``."""
        ...


@dataclass
class DecoderScores:
    """The scores of one decoder's reconstructions (see `score_decoder`).

    Attributes
    ----------
    image
        `image_metrics`: ``mse``, ``psnr``, ``ssim``, ``pixcorr``.
    colourfulness
        Mean colourfulness of the ``reconstructions`` and of the true ``stimuli``.
    features
        `feature_metrics` (or ``twoway_pixel`` alone, ``features="pixels"``); None without.
    weights
        Provenance of the AlexNet weights; None when no network was used.
    controls
        ``{"mean_image": {"image", "colourfulness"[, "features"]}}`` where asked for.
    reconstructions, targets, stimulus_id
        What was scored: float32 ``[N, C, H, W]`` in [0, 1] (clipped), the true images
        (resized to the reconstructions' size only with ``resize=True``) and ``[N]`` ids.
    clipped_fraction, target_resized_from
        Share of reconstructed pixels outside [0, 1]; the stimuli's size before resizing.
    split, average_repeats, dataset, source, meta
        The split a model decoded or given reconstructions were checked to cover (None: not
        checked), whether repeats were averaged, the dataset's file, the reconstructions
        file and its ``meta``.
    """

    image: dict[str, float]
    colourfulness: dict[str, float]
    reconstructions: np.ndarray
    targets: np.ndarray
    stimulus_id: np.ndarray
    features: dict[str, Any] | None = None
    weights: str | None = None
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)
    clipped_fraction: float = 0.0
    target_resized_from: list[int] | None = None
    split: str | None = None
    average_repeats: bool = True
    dataset: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        """One flat row: the image metrics, the feature metrics and ``colourfulness``."""
        row = dict(self.image)
        if self.features is not None:
            skip = ("weights", "n_images", "unavailable")
            row |= {k: float(v) for k, v in self.features.items() if k not in skip}
        row["colourfulness"] = self.colourfulness["reconstructions"]
        return row

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (arrays left out), for `write_metrics_json`."""
        result: dict[str, Any] = {
            "reconstructions": self.source,
            "dataset": self.dataset,
            "n_images": int(self.reconstructions.shape[0]),
            "image_shape": list(self.reconstructions.shape[1:]),
            "target_resized_from": self.target_resized_from,
            "clipped_fraction": self.clipped_fraction,
            "image": self.image,
            "weights": self.weights,
            "meta": self.meta,
        }
        if self.features is not None:
            result["features"] = self.features
        result["colourfulness"] = self.colourfulness
        result |= {"split": self.split, "average_repeats": self.average_repeats}
        if self.controls:
            result["controls"] = self.controls
        return result


@dataclass
class EncoderScores:
    """The scores of one encoder's predictions (see `score_encoder`).

    ``metrics`` is `encoding_metrics` (per-unit r; with repeats also the noise ceiling,
    normalised r, explainable variance and FEVE); every unit and time bin is one "unit".
    """

    metrics: dict[str, float]
    n_stimuli: int
    n_units: int
    n_bins: int
    n_features: int
    repeats: int
    split: str | None = None
    dataset: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``metrics`` and the counts as one flat JSON-ready dict."""
        return self.metrics | {
            "n_stimuli": self.n_stimuli,
            "n_units": self.n_units,
            "n_bins": self.n_bins,
            "n_features": self.n_features,
            "repeats": self.repeats,
            "predictions": self.source,
            "dataset": self.dataset,
            "meta": self.meta,
            "split": self.split,
        }


def true_stimuli(dataset: NeuralDataset, stimulus_id: np.ndarray) -> np.ndarray:
    """The dataset's stimuli for each id, ``[N, C, H, W]`` float32, read in sorted order.

    Each distinct row is read once, in ascending order (as ``h5py`` requires), then
    arranged to follow ``stimulus_id`` (repeats included).

    Examples
    --------
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
    try:
        rows = np.asarray(dataset.stimuli[unique], dtype=np.float32)
    except OSError as err:
        raise unreadable(dataset.stimuli, err) from err
    return rows[inverse]


def _averaged_responses(
    dataset: NeuralDataset, split: str, items_per_block: int
) -> tuple[np.ndarray, np.ndarray]:
    trials = dataset.trials(split)
    if not len(trials):
        raise ValueError(f"{dataset.source or 'dataset'}: no trials in split '{split}'")
    pairs = PairDataset(dataset, trials, average_repeats=True)
    responses = np.empty((len(pairs), dataset.n_units, dataset.n_bins), np.float32)
    for start in range(0, len(pairs), items_per_block):
        items = np.arange(start, min(start + items_per_block, len(pairs)))
        responses[items] = pairs.responses_block(items).reshape(len(items), *responses.shape[1:])
    return responses, np.asarray(pairs.stimulus_index, dtype=np.int64)


def held_out_pairs(
    dataset: NeuralDataset, split: str = "test", items_per_block: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses, true images and stimulus ids of a split, repeats of a stimulus averaged.

    The trials of ``items_per_block`` stimuli are read at a time (a lazily opened file with
    many repeats never needs all its test trials in memory at once).

    Returns
    -------
    responses, images, stimulus_id
        ``[N, n_units, n_bins]`` float32, ``[N, C, H, W]`` float32 and ``[N]``, one row per
        distinct stimulus of ``split``.

    Examples
    --------
    >>> ds = NeuralDataset.from_arrays(np.arange(6, dtype=np.float32).reshape(3, 2),
    ...     np.zeros((2, 1, 4, 4), np.float32), stimulus_id=[0, 1, 1], split=["train", "test", "test"])
    >>> responses, images, ids = held_out_pairs(ds)
    >>> responses[:, :, 0].tolist(), ids.tolist()
    ([[3.0, 4.0]], [1])
    """
    responses, ids = _averaged_responses(dataset, split, items_per_block)
    return responses, true_stimuli(dataset, ids), ids


def mean_image(
    dataset: NeuralDataset, stimulus_id: Sequence[int] | np.ndarray, n: int
) -> np.ndarray:
    """The mean of the distinct stimuli ``stimulus_id`` repeated ``n`` times, ``[n, C, H, W]``.

    The floor every decoder should beat, with the training images' ids.

    Examples
    --------
    >>> ds = NeuralDataset.from_arrays(np.zeros((2, 1), np.float32),
    ...                                np.stack([np.zeros((1, 2, 2)), np.ones((1, 2, 2))]))
    >>> mean_image(ds, [0, 1, 1], 3)[:, 0, 0, 0].tolist()
    [0.5, 0.5, 0.5]
    """
    ids = np.unique(np.asarray(stimulus_id, dtype=np.int64))
    mean = np.asarray(dataset.stimuli[ids], dtype=np.float32).mean(axis=0)
    return np.broadcast_to(mean, (n, *mean.shape)).copy()


def shuffled_pairing(stimulus_id: Sequence[int] | np.ndarray, seed: int = 0) -> np.ndarray:
    """Row indices that pair each reconstruction with one made for another stimulus.

    The chance control that needs no retraining: ``images[shuffled_pairing(ids)]`` scored
    against ``ids`` gives each stimulus the reconstruction of a different, randomly chosen
    stimulus's responses (a random cyclic derangement of the distinct stimuli; the trials of
    one stimulus keep their order). Two-way identification is then 0.5 in expectation, and
    the pixel metrics say how much a stimulus-blind image of the decoder's style scores.

    Examples
    --------
    >>> ids = np.array([3, 1, 2, 1])
    >>> rows = shuffled_pairing(ids, seed=0)
    >>> bool(np.all(ids[rows] != ids))
    True
    """
    ids = np.asarray(stimulus_id, dtype=np.int64)
    unique = np.unique(ids)
    if len(unique) < 2:
        raise ValueError(f"shuffled pairing needs 2 or more distinct stimuli, found {len(unique)}")
    order = np.random.default_rng(seed).permutation(unique)
    partner = dict(zip(order.tolist(), np.roll(order, 1).tolist(), strict=True))
    rows_of = {int(s): np.flatnonzero(ids == s) for s in unique}
    seen = dict.fromkeys(rows_of, 0)
    rows = np.empty(len(ids), dtype=np.int64)
    for index, stimulus in enumerate(ids.tolist()):
        candidates = rows_of[partner[stimulus]]
        rows[index] = candidates[seen[stimulus] % len(candidates)]
        seen[stimulus] += 1
    return rows


def _mean_per_stimulus(images: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average the images of each id, ids in order of first appearance (unique ids: as given)."""
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    if len(unique) == len(ids):
        return images, ids
    sums = np.zeros((len(unique), *images.shape[1:]))
    np.add.at(sums, inverse, images)
    means = (sums / np.bincount(inverse)[:, None, None, None]).astype(np.float32)
    order = np.argsort(first)
    return means[order], unique[order]


def _given_reconstructions(
    source: Any, stimulus_id: Any
) -> tuple[np.ndarray, np.ndarray, str | None, dict[str, Any]]:
    if isinstance(source, str | os.PathLike):
        images, ids, meta = load_reconstructions(source)
        where: str | None = str(source)
    else:
        if stimulus_id is None:
            raise ReconstructionsError("reconstructions given as an array need 'stimulus_id'")
        images = np.asarray(torch.as_tensor(source).detach().cpu(), dtype=np.float32)
        ids, where, meta = np.asarray(stimulus_id, dtype=np.int64), None, {}
        if images.ndim != 4 or ids.shape != (images.shape[0],):
            raise ReconstructionsError(
                f"reconstructions [N, C, H, W] and 'stimulus_id' [N] must match, found "
                f"shapes {images.shape} and {ids.shape}"
            )
        check_images(images)
    return images, ids, where, meta


def _named(where: str | None, what: str = "reconstructions") -> str:
    return where or what


def check_coverage(
    ids: np.ndarray,
    dataset: NeuralDataset,
    split: str,
    where: str | None = None,
    error: type[ValueError] = ReconstructionsError,
) -> None:
    """Refuse results that do not answer each stimulus of ``split`` once or once per trial.

    Every distinct stimulus of the split's trials must be there, no other stimulus may be,
    and each must come once (one per stimulus) or as often as it was shown (one per trial):
    a subset, a single image copied, the training split or an uneven mix would score
    misleadingly. Raises ``error`` (`ReconstructionsError`) naming the file and what is wrong.

    Examples
    --------
    >>> ds = NeuralDataset.from_arrays(np.zeros((3, 1), np.float32), np.zeros((3, 1, 4, 4)),
    ...                                split=["train", "test", "test"])
    >>> check_coverage(np.array([2, 1]), ds, "test")
    >>> check_coverage(np.array([1, 1]), ds, "test")
    Traceback (most recent call last):
    ...
    neuralsight.metrics.results.ReconstructionsError: reconstructions: field 'stimulus_id' covers 1 of the 2 stimuli of split 'test' of the dataset; missing e.g. [2]
    """
    trials = dataset.trials(split)
    name, of = _named(where), f"split {split!r} of {dataset.source or 'the dataset'}"
    if not len(trials):
        raise error(f"{name}: {of} has no trials to score against")
    shown, shown_count = np.unique(dataset.stimulus_id[trials], return_counts=True)
    given, given_count = np.unique(ids, return_counts=True)
    outside = np.setdiff1d(given, shown)
    if outside.size:
        raise error(
            f"{name}: field 'stimulus_id' names {outside.size} stimuli that are not in {of} "
            f"(e.g. {outside[:5].tolist()}): made for another split or data set?"
        )
    missing = np.setdiff1d(shown, given)
    if missing.size:
        raise error(
            f"{name}: field 'stimulus_id' covers {given.size} of the {shown.size} stimuli of "
            f"{of}; missing e.g. {missing[:5].tolist()}"
        )
    expected = shown_count[np.searchsorted(shown, given)]
    uneven = (given_count != 1) & (given_count != expected)
    if uneven.any():
        first = int(np.flatnonzero(uneven)[0])
        raise error(
            f"{name}: field 'stimulus_id' repeats stimulus {given[first]} "
            f"{given_count[first]} times; expected once, or once per trial of it in {of} "
            f"({expected[first]})"
        )


def check_fingerprint(meta: dict[str, Any], dataset: NeuralDataset, where: str | None) -> None:
    """Refuse a results file whose ``meta`` records another data set's fingerprint.

    Files written by ``neuralsight predict`` record `NeuralDataset.fingerprint`; a file
    without one (another tool's, or an older one) is not checked.
    """
    recorded = meta.get("dataset_fingerprint")
    if recorded is not None and recorded != (found := dataset.fingerprint()):
        raise ReconstructionsError(
            f"{_named(where, 'results')}: made from another data set: its meta "
            f"'dataset_fingerprint' is {recorded!r}, {dataset.source or 'the dataset'}'s is "
            f"{found!r}"
        )


def check_stimuli(targets: torch.Tensor, ids: np.ndarray, dataset: NeuralDataset) -> None:
    """Refuse stimuli that are not finite values in [0, 1] (a lazily opened file is never
    checked as a whole), naming the data set, the field and the first bad stimulus."""
    flat = targets.flatten(1)
    bad = ~torch.isfinite(flat).all(1) | (flat < 0).any(1) | (flat > 1).any(1)
    if bad.any():
        first = int(torch.nonzero(bad)[0])
        row = flat[first]
        raise DatasetError(
            f"{dataset.source or 'dataset'}: field 'stimuli' must hold finite values in "
            f"[0, 1], found stimulus {ids[first]} with values from {float(row.min())} to "
            f"{float(row.max())} ({int((~torch.isfinite(row)).sum())} NaN or infinite)"
        )


def _decoded(
    model: Reconstructs, dataset: NeuralDataset, split: str, average_repeats: bool
) -> tuple[np.ndarray, np.ndarray]:
    if average_repeats:
        responses, ids = _averaged_responses(dataset, split, items_per_block=16)
        return model.reconstruct(responses), ids
    images = model.reconstruct(dataset, split=split)
    return images, np.asarray(dataset.stimulus_id[dataset.trials(split)], dtype=np.int64)


def _targets(
    dataset: NeuralDataset, ids: np.ndarray, images: np.ndarray, where: str | None, resize: bool
) -> tuple[torch.Tensor, list[int] | None]:
    """The true stimuli of ``ids`` (checked), at the reconstructions' size where ``resize``
    allows it, and their size before."""
    try:
        targets = torch.from_numpy(true_stimuli(dataset, ids))
    except ReconstructionsError as err:
        raise ReconstructionsError(f"{where}: {err}" if where else str(err)) from err
    check_stimuli(targets, ids, dataset)
    if targets.shape[1] != images.shape[1]:
        raise ReconstructionsError(
            f"{_named(where)}: reconstructions have {images.shape[1]} channel(s) but the true "
            f"stimuli have {targets.shape[1]}; shapes {images.shape} and {tuple(targets.shape)}"
        )
    size = tuple(images.shape[2:])
    if targets.shape[2:] == size:
        return targets, None
    if not resize:
        raise ReconstructionsError(
            f"{_named(where)}: field 'images' is {size[0]}x{size[1]} but the stimuli of "
            f"{dataset.source or 'the dataset'} are {targets.shape[2]}x{targets.shape[3]}; "
            "score them against resized stimuli only on purpose (resize=True, "
            "neuralsight evaluate --resize)"
        )
    return _resized(targets, size), list(targets.shape[2:])


def _resized(images: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    if images.shape[2:] == size:
        return images
    return F.interpolate(
        images, size=size, mode="bilinear", align_corners=False, antialias=True
    ).clamp(0.0, 1.0)


def _extractor(
    features: bool | str | AlexNetFeatures, weights: Any, device: Any
) -> AlexNetFeatures | None:
    if isinstance(features, AlexNetFeatures):
        return features
    if features is True:
        return AlexNetFeatures.from_pretrained(weights=weights, device=device)
    if features not in (False, "pixels"):
        raise ValueError(
            f"features must be a bool, 'pixels' or an AlexNetFeatures, found {features!r}"
        )
    return None


def _scored(
    pred: torch.Tensor,
    target: torch.Tensor,
    features: bool | str | AlexNetFeatures,
    extractor: AlexNetFeatures | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Image metrics, colourfulness and, where asked for, feature metrics of a pair."""
    scores: dict[str, Any] = {"image": image_metrics(pred, target)}
    if extractor is not None:
        scores["features"] = feature_metrics(pred, target, extractor=extractor, **options)
    elif features == "pixels":
        twoway = twoway_identification(pred.flatten(1), target.flatten(1))
        scores["features"] = {"twoway_pixel": twoway, "n_images": int(pred.shape[0])}
    scores["colourfulness"] = {
        "reconstructions": colourfulness(pred),
        "stimuli": colourfulness(target),
    }
    return scores


def score_decoder(
    source: Reconstructs | str | os.PathLike | np.ndarray | torch.Tensor,
    dataset: NeuralDataset | str | os.PathLike,
    split: str | None = "test",
    *,
    stimulus_id: Sequence[int] | np.ndarray | None = None,
    average_repeats: bool = True,
    mean_image_of: Sequence[int] | np.ndarray | None = None,
    features: bool | str | AlexNetFeatures = False,
    weights: str | os.PathLike | None = "auto",
    device: str | torch.device | None = None,
    batch_size: int = 32,
    twoway_layers: Sequence[str] = TWOWAY_LAYERS,
    progress: bool = False,
    resize: bool = False,
) -> DecoderScores:
    """Score a decoder's reconstructions against the true stimuli of ``dataset``.

    Parameters
    ----------
    source
        A trained decoder (it reconstructs ``split``), a reconstructions file
        (`save_reconstructions`), or reconstructions ``[N, C, H, W]`` with ``stimulus_id``.
    dataset
        A `NeuralDataset` or the path of one.
    split
        The split a decoder reconstructs; given reconstructions must answer every stimulus
        of it, once or once per trial, and no other (`check_coverage`). None scores given
        reconstructions of any stimuli as they are (a subset, on purpose).
    average_repeats
        True: one score per stimulus (a decoder decodes the repeat-averaged responses of
        each, given reconstructions of one stimulus are averaged); False: every trial.
    mean_image_of
        Stimulus ids (e.g. the training images): their mean is the ``mean_image`` control.
    features
        True: AlexNet layer correlations and two-way identification (`feature_metrics`, with
        ``batch_size``, ``twoway_layers``, ``progress``; ``weights`` and ``device`` build the
        network); an `AlexNetFeatures` to use that one; ``"pixels"``: pixel two-way only.

    resize
        Score reconstructions of another size than the stimuli against stimuli resized to
        theirs (recorded as ``target_resized_from``); without it that is an error.

    Reconstructions are clipped to [0, 1] (``clipped_fraction`` says how much was); NaN or
    infinite ones, stimuli outside [0, 1] and a file recording another data set's
    fingerprint (`check_fingerprint`) are errors.

    Examples
    --------
    >>> stimuli = np.random.default_rng(0).random((4, 1, 16, 16), dtype=np.float32)
    >>> ds = NeuralDataset.from_arrays(np.zeros((4, 2), np.float32), stimuli,
    ...                                split=["train", "test", "train", "test"])
    >>> scores = score_decoder(ds.stimuli[[1, 3]], ds, stimulus_id=[1, 3], mean_image_of=[0, 2])
    >>> round(scores.image["ssim"], 6), scores.controls["mean_image"]["image"]["ssim"] < 1
    (1.0, True)
    """
    dataset = open_dataset(dataset)
    if isinstance(source, Reconstructs):
        if split is None:
            raise ValueError("a decoder reconstructs one split: give split='train' or 'test'")
        images, ids = _decoded(source, dataset, split, average_repeats)
        where, meta = None, {"model": type(source).__name__}
    else:
        images, ids, where, meta = _given_reconstructions(source, stimulus_id)
        check_fingerprint(meta, dataset, where)
        if split is not None:
            check_coverage(ids, dataset, split, where)
        if average_repeats:
            images, ids = _mean_per_stimulus(images, ids)
    target, resized_from = _targets(dataset, ids, images, where, resize)
    size = tuple(target.shape[2:])
    pred = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    clipped_fraction = float(((pred < 0) | (pred > 1)).double().mean())
    pred = pred.clamp(0.0, 1.0)
    extractor = _extractor(features, weights, device)
    options = {"twoway_layers": twoway_layers, "batch_size": batch_size, "progress": progress}
    controls = {}
    if mean_image_of is not None:
        control = _resized(torch.from_numpy(mean_image(dataset, mean_image_of, len(ids))), size)
        controls["mean_image"] = _scored(control, target, features, extractor, options)
    return DecoderScores(
        **_scored(pred, target, features, extractor, options),
        weights=extractor.weights if extractor is not None else None,
        controls=controls,
        reconstructions=pred.numpy(),
        targets=target.numpy(),
        stimulus_id=ids,
        clipped_fraction=clipped_fraction,
        target_resized_from=resized_from,
        split=split,
        average_repeats=average_repeats,
        dataset=dataset.source,
        source=where,
        meta=meta,
    )


def _predictions(
    source: Any, dataset: NeuralDataset, split: str | None, stimulus_id: Any
) -> tuple[np.ndarray, np.ndarray, str | None, dict[str, Any]]:
    if isinstance(source, PredictsResponses):
        ids = np.unique(
            dataset.stimulus_id if split is None else dataset.stimulus_id[dataset.trials(split)]
        )
        predicted = source.predict_responses(true_stimuli(dataset, ids))
        return predicted, ids, None, {"model": type(source).__name__}
    if isinstance(source, str | os.PathLike):
        predicted, ids, meta = load_response_predictions(source)
        return predicted, ids, str(source), meta
    if stimulus_id is None:
        raise PredictionsError("predictions given as an array need 'stimulus_id'")
    predicted = np.asarray(torch.as_tensor(source).detach().cpu(), dtype=np.float32)
    return predicted, np.asarray(stimulus_id, dtype=np.int64), None, {}


def score_encoder(
    source: PredictsResponses | str | os.PathLike | np.ndarray | torch.Tensor,
    dataset: NeuralDataset | str | os.PathLike,
    split: str | None = "test",
    *,
    stimulus_id: Sequence[int] | np.ndarray | None = None,
) -> EncoderScores:
    """Score predicted responses against the recorded responses of ``dataset``.

    ``source`` is a trained encoder (it predicts each distinct stimulus of ``split``), a
    predictions file (`save_response_predictions`) or predictions ``[N, n_units(, n_bins)]``
    with ``stimulus_id``. Predictions of one stimulus are averaged. The recorded responses
    are the trials of ``split`` (None: of any split) that showed those stimuli; given
    predictions must cover the stimuli of ``split`` (`check_coverage`) and, where their file
    records one, the data set's fingerprint (`check_fingerprint`). When every
    stimulus was shown at least twice, the repeats give the noise ceiling and FEVE (the
    first ``n_repeats`` trials of each, ``n_repeats`` the smallest count); otherwise the
    predictions are compared with the trial averages.

    Examples
    --------
    >>> r = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    >>> ds = NeuralDataset.from_arrays(r, np.zeros((6, 1, 4, 4), np.float32))
    >>> round(score_encoder(r, ds, split=None, stimulus_id=range(6)).metrics["mean_r"], 6)
    1.0
    """
    dataset = open_dataset(dataset)
    predicted, ids, where, meta = _predictions(source, dataset, split, stimulus_id)
    if not isinstance(source, PredictsResponses):
        check_fingerprint(meta, dataset, where)
        if split is not None:
            check_coverage(ids, dataset, split, where or "predictions", PredictionsError)
    predicted = predicted[:, :, None] if predicted.ndim == 2 else predicted
    if ids.max() >= dataset.n_stimuli or predicted.shape[1:] != dataset.responses.shape[1:]:
        raise PredictionsError(
            f"{where or 'predictions'}: predictions [N, n_units, n_bins] = {predicted.shape} "
            f"with stimulus ids up to {ids.max()} do not fit the dataset's responses "
            f"{tuple(dataset.responses.shape)} and {dataset.n_stimuli} stimuli"
        )
    unique, inverse = np.unique(ids, return_inverse=True)
    flat = predicted.reshape(len(predicted), -1).astype(np.float64)
    per_stimulus = np.zeros((len(unique), flat.shape[1]))
    np.add.at(per_stimulus, inverse, flat)
    per_stimulus /= np.bincount(inverse)[:, None]
    shown = np.isin(dataset.stimulus_id, unique)
    trials = np.flatnonzero(shown if split is None else shown & (dataset.split == split))
    recorded = np.asarray(dataset.responses[trials]).reshape(len(trials), -1)
    trial_ids = dataset.stimulus_id[trials]
    counts = np.bincount(np.searchsorted(unique, trial_ids), minlength=len(unique))
    if counts.min() == 0:
        raise PredictionsError(
            f"{where or 'predictions'}: stimulus {unique[np.argmin(counts)]} has predictions "
            f"but no recorded trial{f' in split {split!r}' if split else ''} of "
            f"{dataset.source or 'the dataset'}"
        )
    if counts.min() >= 2:
        repeats, kept = repeats_by_stimulus(recorded, trial_ids)
        metrics = encoding_metrics(per_stimulus[np.searchsorted(unique, kept)], repeats)
    else:
        means = np.zeros_like(per_stimulus)
        np.add.at(means, np.searchsorted(unique, trial_ids), recorded)
        metrics = encoding_metrics(per_stimulus, means / counts[:, None])
    return EncoderScores(
        metrics=metrics,
        n_stimuli=len(unique),
        n_units=int(dataset.n_units),
        n_bins=int(dataset.n_bins),
        n_features=int(flat.shape[1]),
        repeats=int(counts.min()),
        split=split,
        dataset=dataset.source,
        source=where,
        meta=meta,
    )
