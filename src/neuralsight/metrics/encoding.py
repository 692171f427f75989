"""Metrics for encoding models: how well predicted neural responses match recorded ones.

Arrays are NumPy (or anything `numpy.asarray` takes): predictions and recordings
``[n_stimuli, n_units]``, repeated recordings ``[n_repeats, n_stimuli, n_units]``
(`repeats_by_stimulus` builds these from a dataset's trials). Every per-unit function
returns ``[n_units]`` float64.

Formulas (``y[k, s, u]``: repeat *k*, stimulus *s*, unit *u*; ``ȳ[s, u]``: mean over
repeats; ``ŷ[s, u]``: prediction):

- **Per-unit correlation** ``r_u``: Pearson r over stimuli between ``ŷ[:, u]`` and the
  recorded (or repeat-averaged) response. A constant column gives 0.
- **Split-half reliability** (the noise ceiling): repeats are split at random into two
  halves of ``n_repeats // 2``; ``r_half`` is the Pearson r over stimuli between the two
  half-averages, averaged over ``n_splits`` seeded splits, and the Spearman-Brown
  correction ``2 r_half / (1 + r_half)`` gives the reliability of the full average. About 1
  for noiseless units, about 0 for pure noise.
- **Correlation ceiling** ``sqrt(max(reliability, 0))``: the highest r any prediction can
  reach against the repeat-averaged response; ``r_u / ceiling`` is the normalised
  correlation.
- **Explainable variance** (Cadena et al. 2019): ``(Var[y] - σ²_noise) / Var[y]``, with
  ``Var[y]`` the variance over all trials and ``σ²_noise`` the mean over stimuli of the
  variance across repeats (both unbiased, ``ddof=1``).
- **FEVE**, fraction of explainable variance explained (Cadena et al. 2019):
  ``1 - (MSE - σ²_noise) / (Var[y] - σ²_noise)``, ``MSE`` the mean over all trials of
  ``(y - ŷ)²``. Predicting the true mean response gives about 1; NaN for units without
  explainable variance (``Var[y] <= σ²_noise``).
- **Receptive-field centre error** (`rf_centre_errors`): the distance in pixels between the
  centres an encoder learned and the true ones of a simulated population.
"""

from __future__ import annotations

import numpy as np


def _as_2d(name: str, array, expected: str = "[n_stimuli, n_units]") -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"'{name}' must have shape {expected}, found shape {values.shape}")
    return values


def _as_repeats(repeats) -> np.ndarray:
    values = np.asarray(repeats, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(
            f"'repeats' must have shape [n_repeats, n_stimuli, n_units], found shape {values.shape}"
        )
    if values.shape[0] < 2:
        raise ValueError(f"'repeats' needs at least 2 repeats at axis 0, found {values.shape[0]}")
    return values


def _check_same_shape(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"'{a_name}' and '{b_name}' must have the same shape [n_stimuli, n_units], found "
            f"{a_name} {a.shape} and {b_name} {b.shape}"
        )


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two ``[n, m]`` arrays; 0 where a column is constant.

    Examples
    --------
    >>> import numpy as np
    >>> pearson_columns(np.array([[1.0, 1.0], [2.0, 1.0]]), np.array([[1.0, 0.0], [3.0, 1.0]]))
    array([1., 0.])
    """
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    norm = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    safe = np.where(norm > 0, norm, 1.0)
    return np.clip(np.where(norm > 0, (a * b).sum(axis=0) / safe, 0.0), -1.0, 1.0)


def per_unit_correlation(predicted, recorded) -> np.ndarray:
    """Pearson r over stimuli between predicted and recorded responses of each unit.

    Parameters
    ----------
    predicted, recorded
        ``[n_stimuli, n_units]``, same shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> per_unit_correlation(x, 2 * x + 1).round(6)
    array([1., 1., 1.])
    """
    pred = _as_2d("predicted", predicted)
    rec = _as_2d("recorded", recorded)
    _check_same_shape("predicted", pred, "recorded", rec)
    return pearson_columns(pred, rec)


def split_half_reliability(repeats, n_splits: int = 20, seed: int = 0) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability of each unit (the noise ceiling).

    Parameters
    ----------
    repeats
        ``[n_repeats, n_stimuli, n_units]`` with ``n_repeats >= 2``.
    n_splits
        Random splits of the repeats whose half-to-half correlations are averaged.
    seed
        Seed of the splits.

    Examples
    --------
    >>> import numpy as np
    >>> signal = np.random.default_rng(0).normal(size=(40, 2))
    >>> split_half_reliability(np.stack([signal] * 4)).round(6)
    array([1., 1.])
    """
    values = _as_repeats(repeats)
    half = values.shape[0] // 2
    rng = np.random.default_rng(seed)
    r_half = np.zeros(values.shape[2])
    for _ in range(n_splits):
        order = rng.permutation(values.shape[0])
        first = values[order[:half]].mean(axis=0)
        second = values[order[half : 2 * half]].mean(axis=0)
        r_half += pearson_columns(first, second)
    r_half /= n_splits
    return 2.0 * r_half / np.maximum(1.0 + r_half, 1e-12)


def correlation_ceiling(repeats, n_splits: int = 20, seed: int = 0) -> np.ndarray:
    """Highest Pearson r a prediction can reach against the repeat average: ``sqrt(max(rel, 0))``.

    Examples
    --------
    >>> import numpy as np
    >>> signal = np.random.default_rng(0).normal(size=(40, 2))
    >>> correlation_ceiling(np.stack([signal] * 4)).round(6)
    array([1., 1.])
    """
    reliability = split_half_reliability(repeats, n_splits=n_splits, seed=seed)
    return np.sqrt(np.clip(reliability, 0.0, 1.0))


def _variances(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = values.reshape(-1, values.shape[2]).var(axis=0, ddof=1)
    noise = values.var(axis=0, ddof=1).mean(axis=0)
    return total, noise


def explainable_variance(repeats) -> np.ndarray:
    """Fraction of each unit's response variance that is not trial-to-trial noise.

    ``(Var[y] - σ²_noise) / Var[y]``; about 0 for pure noise, 1 for noiseless units, NaN
    for units whose responses never vary.

    Examples
    --------
    >>> import numpy as np
    >>> signal = np.random.default_rng(0).normal(size=(40, 2))
    >>> explainable_variance(np.stack([signal] * 3))
    array([1., 1.])
    """
    total, noise = _variances(_as_repeats(repeats))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (total - noise) / total, np.nan)


def feve(predicted, repeats) -> np.ndarray:
    """Fraction of explainable variance explained by ``predicted`` for each unit.

    Parameters
    ----------
    predicted
        ``[n_stimuli, n_units]`` predicted mean responses.
    repeats
        ``[n_repeats, n_stimuli, n_units]`` recorded responses.

    Returns
    -------
    numpy.ndarray
        ``1 - (MSE - σ²_noise) / (Var[y] - σ²_noise)`` per unit; NaN where the unit has no
        explainable variance.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> rate = rng.normal(size=(200, 2))
    >>> repeats = rate + 0.5 * rng.normal(size=(10, 200, 2))
    >>> bool(np.all(np.abs(feve(rate, repeats) - 1) < 0.05))
    True
    """
    values = _as_repeats(repeats)
    pred = _as_2d("predicted", predicted)
    _check_same_shape("predicted", pred, "repeats[0]", values[0])
    total, noise = _variances(values)
    mse = ((values - pred[None]) ** 2).mean(axis=(0, 1))
    explainable = total - noise
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(explainable > 0, 1.0 - (mse - noise) / explainable, np.nan)


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def encoding_metrics(predicted, recorded, n_splits: int = 20, seed: int = 0) -> dict[str, float]:
    """Summary metrics of an encoding model's predictions, averaged over units.

    Parameters
    ----------
    predicted
        ``[n_stimuli, n_units]`` predicted responses.
    recorded
        ``[n_stimuli, n_units]`` (single presentations) or ``[n_repeats, n_stimuli, n_units]``
        (repeats: adds the noise ceiling, normalised correlation, explainable variance and
        FEVE).

    Returns
    -------
    dict
        ``mean_r``, ``median_r`` and ``n_units``; with repeats also ``mean_reliability``,
        ``mean_ceiling``, ``mean_normalised_r`` (units with a positive ceiling),
        ``mean_explainable_variance`` and ``mean_feve`` (units with explainable variance).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(30, 4))
    >>> encoding_metrics(x, x)["mean_r"]
    1.0
    """
    pred = _as_2d("predicted", predicted)
    rec = np.asarray(recorded, dtype=np.float64)
    if rec.ndim == 2:
        r = per_unit_correlation(pred, rec)
        return {"mean_r": float(r.mean()), "median_r": float(np.median(r)), "n_units": r.size}
    values = _as_repeats(rec)
    r = per_unit_correlation(pred, values.mean(axis=0))
    reliability = split_half_reliability(values, n_splits=n_splits, seed=seed)
    ceiling = np.sqrt(np.clip(reliability, 0.0, 1.0))
    normalised = np.where(ceiling > 0, r / np.where(ceiling > 0, ceiling, 1.0), np.nan)
    return {
        "mean_r": float(r.mean()),
        "median_r": float(np.median(r)),
        "n_units": r.size,
        "mean_reliability": float(reliability.mean()),
        "mean_ceiling": float(ceiling.mean()),
        "mean_normalised_r": _nanmean(normalised),
        "mean_explainable_variance": _nanmean(explainable_variance(values)),
        "mean_feve": _nanmean(feve(pred, values)),
    }


def repeats_by_stimulus(
    responses, stimulus_id, min_repeats: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Arrange trials ``[n_trials, n_units]`` as repeats ``[n_repeats, n_stimuli, n_units]``.

    Stimuli shown fewer than ``min_repeats`` times are dropped; the others keep their first
    ``n_repeats`` trials (in trial order), ``n_repeats`` being the smallest count among them.

    Returns
    -------
    repeats, stimulus_ids
        The arranged responses and the stimulus id of each column of axis 1 (ascending).

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.arange(10.0)[:, None]
    >>> repeats, ids = repeats_by_stimulus(responses, [0, 1, 0, 1, 2, 0, 1, 3, 3, 3])
    >>> repeats[:, :, 0], ids
    (array([[0., 1., 7.],
           [2., 3., 8.],
           [5., 6., 9.]]), array([0, 1, 3]))
    """
    values = _as_2d("responses", responses, "[n_trials, n_units]")
    ids = np.asarray(stimulus_id, dtype=np.int64)
    if ids.shape != (values.shape[0],):
        raise ValueError(
            f"'stimulus_id' must have shape [n_trials] = ({values.shape[0]},), found {ids.shape}"
        )
    unique, counts = np.unique(ids, return_counts=True)
    kept = unique[counts >= min_repeats]
    if kept.size == 0:
        raise ValueError(
            f"no stimulus is shown at least {min_repeats} times (max count {counts.max(initial=0)})"
        )
    n_repeats = int(counts[counts >= min_repeats].min())
    trials_by_stimulus = np.argsort(ids, kind="stable")
    starts = (np.cumsum(counts) - counts)[counts >= min_repeats]
    trials = trials_by_stimulus[starts[None, :] + np.arange(n_repeats)[:, None]]
    return values[trials], kept


def rf_centre_errors(centres, units, image_shape: tuple[int, int, int]) -> dict[str, float]:
    """Distances in pixels between an encoder's receptive-field centres and the true ones.

    Parameters
    ----------
    centres
        ``[n_units, 2]`` (x, y) in normalised [-1, 1] image coordinates, e.g. an encoder's
        ``rf_positions()``.
    units
        The units table, with the true centres in ``rf_x`` and ``rf_y`` (same coordinates).
    image_shape
        ``(channels, height, width)``: a unit of x is ``width / 2`` pixels.

    Returns
    -------
    dict
        ``median_error_px``, ``mean_error_px`` and ``within_1px`` (the fraction of units
        whose centre is at most one pixel off).

    Examples
    --------
    >>> import pandas as pd
    >>> units = pd.DataFrame({"rf_x": [0.0, 0.5], "rf_y": [0.0, 0.0]})
    >>> rf_centre_errors([[0.0, 0.0], [0.5, 0.25]], units, (1, 16, 16))
    {'median_error_px': 1.0, 'mean_error_px': 1.0, 'within_1px': 0.5}
    """
    _, height, width = image_shape
    truth = units[["rf_x", "rf_y"]].to_numpy()
    offset = (np.asarray(centres) - truth) * np.array([width / 2, height / 2])
    error = np.hypot(offset[:, 0], offset[:, 1])
    return {
        "median_error_px": float(np.median(error)),
        "mean_error_px": float(error.mean()),
        "within_1px": float((error <= 1.0).mean()),
    }
