"""Occlusion: what a trained decoder reconstructs when some of its input is taken away.

As in MonkeySee (Le et al., NeurIPS 2024), responses are *occluded* by replacing them with
a value that carries no stimulus information, and the decoder that was trained on intact
responses reconstructs from what is left:

- **by area**: the responses of every unit of the chosen area(s), in every time bin, are
  replaced. `area_conditions` gives the paper's two families: *one area at a time*
  (``"without V1"``: V1 replaced, V4 and IT intact) and *all but one area* (``"V1 only"``:
  V4 and IT replaced, V1 intact), next to ``"intact"``;
- **by time window**: the bins whose centre lies *outside* the window ``[start, stop)`` ms
  are replaced, for every unit (`window_conditions`: 50 ms windows from onset).

The replacement value (``fill``) carries no stimulus information:

- ``"mean"`` (default): each unit's mean response in each time bin over the training
  trials (`training_mean`). This is the reference code's occlusion: it sets the model's
  z-scored input channels to zero, that is, every occluded response to its training mean;
- ``"baseline"``: each unit's pre-stimulus baseline, the mean over the training trials of
  the bins that end at or before stimulus onset (0 ms), `prestimulus_baseline` (needs
  time-resolved responses that start before onset);
- ``"zeros"``: 0 (the baseline of baseline-subtracted responses such as normalised MUA).

``"baseline"`` and ``"zeros"`` mean "no response", which a decoder never saw in training
for units that respond to every image (IT units with large receptive fields): their
z-scored inputs then lie many standard deviations below anything seen, and the
reconstruction degrades by more than the information that was taken away.

Occlusion is applied to the test responses after averaging the repeats of each image (the
two commute: the replacement is a constant); `evaluate_occlusion` scores every condition
with `neuralsight.analysis.conditions.score_conditions` and `run_occlusion` also writes the
figures, tables and report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from neuralsight.analysis.conditions import (
    BLOCK_BYTES,
    ConditionResults,
    feature_extractor,
    score_conditions,
    trials_per_block,
    write_conditions,
)
from neuralsight.analysis.training import check_matches, load_monkeysee
from neuralsight.data.dataset import NeuralDataset, open_dataset
from neuralsight.data.views import PairDataset
from neuralsight.metrics.features import AlexNetFeatures
from neuralsight.metrics.score import held_out_pairs
from neuralsight.models.decoders.base import Decoder

Fill = Literal["mean", "baseline", "zeros"]
FILLS = ("mean", "baseline", "zeros")
BY = ("area", "window")
DEFAULT_WINDOW_MS = 50.0
INTACT = "intact"


@dataclass(frozen=True)
class OcclusionCondition:
    """One occlusion condition.

    Attributes
    ----------
    name
        Label in tables and figures.
    areas
        Areas whose units are replaced in every bin.
    window_ms
        ``(start, stop)``: bins whose centre lies outside ``[start, stop)`` are replaced for
        every unit; ``None``: no time occlusion.
    """

    name: str
    areas: tuple[str, ...] = ()
    window_ms: tuple[float, float] | None = None


def _where(dataset: NeuralDataset) -> str:
    return dataset.source or "dataset"


def unit_areas(units: pd.DataFrame) -> np.ndarray:
    """The ``area`` column of a units table as strings, with a clear error when it is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> unit_areas(pd.DataFrame({"area": ["V1", "IT"]})).tolist()
    ['V1', 'IT']
    """
    if "area" not in units.columns:
        raise ValueError(
            "occlusion by area needs an 'area' column in the units table; found columns "
            f"{list(units.columns)}"
        )
    return units["area"].astype(str).to_numpy()


def area_mask(units: pd.DataFrame, areas: Sequence[str]) -> np.ndarray:
    """Boolean ``[n_units]``: True for the units of ``areas``.

    Examples
    --------
    >>> import pandas as pd
    >>> area_mask(pd.DataFrame({"area": ["V1", "V4", "IT"]}), ["V1", "IT"]).tolist()
    [True, False, True]
    """
    labels = unit_areas(units)
    present = list(dict.fromkeys(labels))
    unknown = [a for a in areas if a not in present]
    if unknown:
        raise ValueError(f"unknown area(s) {unknown}; the units' areas are {present}")
    return np.isin(labels, list(areas))


def window_mask(
    bin_edges_ms: Sequence[float] | np.ndarray, window_ms: Sequence[float]
) -> np.ndarray:
    """Boolean ``[n_bins]``: True for the bins whose centre lies in ``[start, stop)`` ms.

    The window must lie within the bins' span and hold at least one bin centre.

    Examples
    --------
    >>> import numpy as np
    >>> window_mask(np.arange(-20.0, 41.0, 10.0), (0, 20)).tolist()
    [False, False, True, True, False, False]
    """
    edges = np.asarray(bin_edges_ms, dtype=np.float64)
    start, stop = (float(v) for v in window_ms)
    if not stop > start:
        raise ValueError(f"window must be (start, stop) ms with stop > start, found {window_ms}")
    if start < edges[0] or stop > edges[-1]:
        raise ValueError(
            f"window {start:g}-{stop:g} ms lies outside the time bins, which span "
            f"{edges[0]:g} to {edges[-1]:g} ms"
        )
    centres = (edges[:-1] + edges[1:]) / 2
    inside = (centres >= start) & (centres < stop)
    if not inside.any():
        raise ValueError(
            f"window {start:g}-{stop:g} ms holds no time-bin centre; bin centres are "
            f"{np.round(centres, 3).tolist()} ms"
        )
    return inside


def training_mean(
    dataset: NeuralDataset, split: str = "train", block_bytes: int = BLOCK_BYTES
) -> np.ndarray:
    """Per-unit, per-bin mean response over the ``split`` trials, float32 ``[n_units, n_bins]``.

    Reads the trials ``block_bytes`` at a time (a lazily opened file larger than memory is
    fine).

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.arange(8, dtype=np.float32).reshape(2, 1, 4)
    >>> ds = NeuralDataset.from_arrays(responses, np.zeros((2, 1, 4, 4), np.float32),
    ...                                bin_edges_ms=[-20, -10, 0, 10, 20])
    >>> training_mean(ds).tolist()
    [[2.0, 3.0, 4.0, 5.0]]
    """
    trials = dataset.trials(split)
    if not len(trials):
        raise ValueError(f"{_where(dataset)}: no trials in split '{split}' to average")
    pairs = PairDataset(dataset, trials)
    total = np.zeros((dataset.n_units, dataset.n_bins), np.float64)
    block = trials_per_block(dataset, block_bytes)
    for start in range(0, len(pairs), block):
        items = np.arange(start, min(start + block, len(pairs)))
        rows = pairs.responses_block(items).reshape(len(items), dataset.n_units, dataset.n_bins)
        total += rows.sum(axis=0, dtype=np.float64)
    return (total / len(pairs)).astype(np.float32)


def prestimulus_baseline(
    dataset: NeuralDataset, split: str = "train", block_bytes: int = BLOCK_BYTES
) -> np.ndarray:
    """Per-unit pre-stimulus baseline: the mean over ``split`` trials of bins ending by 0 ms.

    Returns float32 ``[n_units]`` (see `training_mean` for how the trials are read).

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.arange(8, dtype=np.float32).reshape(2, 1, 4)  # bins -20..20 ms
    >>> ds = NeuralDataset.from_arrays(responses, np.zeros((2, 1, 4, 4), np.float32),
    ...                                bin_edges_ms=[-20, -10, 0, 10, 20])
    >>> prestimulus_baseline(ds).tolist()  # mean of (0, 1, 4, 5)
    [2.5]
    """
    edges = dataset.bin_edges_ms
    before = edges[1:] <= 0
    if not before.any():
        raise ValueError(
            f"{_where(dataset)}: no time bin ends before stimulus onset (bins span "
            f"{edges[0]:g} to {edges[-1]:g} ms), so there is no pre-stimulus baseline; "
            "use fill='mean' or 'zeros', or time-resolved responses that start before 0 ms"
        )
    return training_mean(dataset, split, block_bytes)[:, before].mean(1)


def fill_values(dataset: NeuralDataset, fill: Fill = "mean", split: str = "train") -> np.ndarray:
    """The replacement values for ``fill`` (see the module docstring).

    ``[n_units, n_bins]`` for ``"mean"``, ``[n_units]`` (one value for every bin) otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> fill_values(ds, "zeros").tolist()
    [0.0, 0.0, 0.0]
    >>> fill_values(ds, "mean").shape
    (3, 1)
    """
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {list(FILLS)}, found {fill!r}")
    if fill == "zeros":
        return np.zeros(dataset.n_units, np.float32)
    if fill == "mean":
        return training_mean(dataset, split)
    return prestimulus_baseline(dataset, split)


def occlude(
    responses: np.ndarray,
    values: np.ndarray,
    unit_mask: np.ndarray | None = None,
    bin_mask: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``responses [N, units, bins]`` with the chosen entries replaced.

    Entry ``(n, u, t)`` becomes ``values[u, t]`` (``values[u]`` for one value per unit)
    where ``unit_mask[u]`` and ``bin_mask[t]`` (a mask left out selects every unit or every
    bin); every other entry is copied unchanged. The input is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 2, 3), np.float32)
    >>> occlude(x, np.array([7.0, 9.0]), unit_mask=np.array([False, True]),
    ...         bin_mask=np.array([True, False, True]))[0].tolist()
    [[1.0, 1.0, 1.0], [9.0, 1.0, 9.0]]
    """
    responses = np.asarray(responses)
    if responses.ndim != 3:
        raise ValueError(f"responses must have shape [N, units, bins], found {responses.shape}")
    _, n_units, n_bins = responses.shape
    units = np.ones(n_units, bool) if unit_mask is None else np.asarray(unit_mask, bool)
    bins = np.ones(n_bins, bool) if bin_mask is None else np.asarray(bin_mask, bool)
    values = np.asarray(values, dtype=responses.dtype)
    for name, array, expected in (("unit_mask", units, n_units), ("bin_mask", bins, n_bins)):
        if array.shape != (expected,):
            raise ValueError(f"{name} must have shape ({expected},), found {array.shape}")
    if values.shape == (n_units,):
        values = values[:, None]
    elif values.shape != (n_units, n_bins):
        raise ValueError(
            f"values must have shape ({n_units},) or ({n_units}, {n_bins}) (units, bins), "
            f"found {values.shape}"
        )
    selected = units[:, None] & bins[None, :]
    return np.where(selected[None], values[None], responses)


def occlude_areas(
    responses: np.ndarray, units: pd.DataFrame, areas: Sequence[str], values: np.ndarray
) -> np.ndarray:
    """Replace every bin of the units of ``areas`` by their ``values`` (see `occlude`).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> units = pd.DataFrame({"area": ["V1", "IT"]})
    >>> occlude_areas(np.ones((1, 2, 2)), units, ["IT"], np.zeros(2))[0].tolist()
    [[1.0, 1.0], [0.0, 0.0]]
    """
    return occlude(responses, values, unit_mask=area_mask(units, areas))


def occlude_outside_window(
    responses: np.ndarray,
    bin_edges_ms: Sequence[float] | np.ndarray,
    window_ms: Sequence[float],
    values: np.ndarray,
) -> np.ndarray:
    """Replace, for every unit, the bins whose centre lies outside ``window_ms``.

    Examples
    --------
    >>> import numpy as np
    >>> occlude_outside_window(np.ones((1, 1, 3)), [0, 10, 20, 30], (10, 20), np.zeros(1))[0].tolist()
    [[0.0, 1.0, 0.0]]
    """
    return occlude(responses, values, bin_mask=~window_mask(bin_edges_ms, window_ms))


def area_conditions(areas: Sequence[str] | np.ndarray) -> list[OcclusionCondition]:
    """``intact``, then ``<area> only`` for each area (with several), then ``without <area>``.

    Examples
    --------
    >>> [c.name for c in area_conditions(["V1", "IT"])]
    ['intact', 'V1 only', 'IT only', 'without V1', 'without IT']
    >>> area_conditions(["V1", "IT"])[1].areas
    ('IT',)
    """
    areas = list(dict.fromkeys(str(a) for a in areas))
    conditions = [OcclusionCondition(INTACT)]
    if len(areas) > 1:
        conditions += [
            OcclusionCondition(f"{a} only", tuple(b for b in areas if b != a)) for a in areas
        ]
    return conditions + [OcclusionCondition(f"without {a}", (a,)) for a in areas]


def window_conditions(
    bin_edges_ms: Sequence[float] | np.ndarray,
    windows_ms: Sequence[Sequence[float]] | None = None,
    width_ms: float = DEFAULT_WINDOW_MS,
) -> list[OcclusionCondition]:
    """``intact``, then one condition per window keeping only its bins.

    Without ``windows_ms``: consecutive ``width_ms`` windows from 0 ms that fit in the bins.

    Examples
    --------
    >>> import numpy as np
    >>> [c.name for c in window_conditions(np.arange(-100.5, 201.0, 1.0))]
    ['intact', '0-50 ms', '50-100 ms', '100-150 ms', '150-200 ms']
    """
    edges = np.asarray(bin_edges_ms, dtype=np.float64)
    if windows_ms is None:
        starts = np.arange(0.0, edges[-1] - width_ms + 1e-9, width_ms)
        windows_ms = [(s, s + width_ms) for s in starts]
        if not windows_ms:
            raise ValueError(
                f"no {width_ms:g} ms window after onset fits the time bins, which span "
                f"{edges[0]:g} to {edges[-1]:g} ms; give windows_ms"
            )
    conditions = [OcclusionCondition(INTACT)]
    for start, stop in windows_ms:
        window_mask(edges, (start, stop))
        conditions.append(
            OcclusionCondition(f"{start:g}-{stop:g} ms", window_ms=(float(start), float(stop)))
        )
    return conditions


def apply_condition(
    responses: np.ndarray,
    condition: OcclusionCondition,
    units: pd.DataFrame,
    bin_edges_ms: Sequence[float] | np.ndarray,
    values: np.ndarray,
) -> np.ndarray:
    """``responses`` occluded as ``condition`` says (a copy; ``intact`` is a plain copy).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> condition = OcclusionCondition("without IT", areas=("IT",))
    >>> apply_condition(np.ones((1, 2, 1)), condition, pd.DataFrame({"area": ["V1", "IT"]}),
    ...                 [25, 175], np.zeros(2))[0, :, 0].tolist()
    [1.0, 0.0]
    """
    unit_mask = area_mask(units, condition.areas) if condition.areas else None
    bin_mask = None
    if condition.window_ms is not None:
        bin_mask = ~window_mask(bin_edges_ms, condition.window_ms)
    if unit_mask is None and bin_mask is None:
        return np.array(responses, copy=True)
    return occlude(responses, values, unit_mask, bin_mask)


def occlusion_conditions(
    dataset: NeuralDataset,
    by: str = "area",
    windows_ms: Sequence[Sequence[float]] | None = None,
) -> list[OcclusionCondition]:
    """The conditions of ``by="area"`` (`area_conditions`) or ``"window"`` (`window_conditions`).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 2), np.float32), np.zeros((2, 1, 4, 4), np.float32),
    ...     units=pd.DataFrame({"unit_id": [0, 1], "area": ["V1", "IT"]}))
    >>> len(occlusion_conditions(ds, "area"))
    5
    """
    if by not in BY:
        raise ValueError(f"by must be one of {list(BY)}, found {by!r}")
    if by == "area":
        return area_conditions(unit_areas(dataset.units))
    return window_conditions(dataset.bin_edges_ms, windows_ms)


def evaluate_occlusion(
    model: Decoder,
    dataset: NeuralDataset,
    by: str = "area",
    fill: Fill = "mean",
    conditions: Sequence[OcclusionCondition] | None = None,
    extractor: AlexNetFeatures | None = None,
    split: str = "test",
) -> ConditionResults:
    """Reconstruct the ``split`` images under every occlusion condition and score them.

    Parameters
    ----------
    model
        A trained decoder whose input units are ``dataset``'s (checked for MonkeySee).
    dataset
        The data set it was trained on; ``fill="mean"`` and ``"baseline"`` read its
        training trials.
    by
        ``"area"`` or ``"window"`` (see `occlusion_conditions`); ignored with ``conditions``.
    fill
        ``"mean"``, ``"baseline"`` or ``"zeros"`` (see the module docstring).
    conditions
        Explicit conditions instead of those of ``by``.
    extractor
        AlexNet for the feature metrics (`feature_extractor`); ``None``: image metrics and
        colourfulness only.
    split
        The split reconstructed (repeats averaged).

    Returns
    -------
    ConditionResults
        One row per condition.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from neuralsight.models.decoders import RidgeDecoder
    >>> rng = np.random.default_rng(0)
    >>> ds = NeuralDataset.from_arrays(rng.random((8, 2), dtype=np.float32),
    ...     rng.random((8, 1, 8, 8), dtype=np.float32), split=["train"] * 6 + ["test"] * 2,
    ...     units=pd.DataFrame({"unit_id": [0, 1], "area": ["V1", "IT"]}))
    >>> results = evaluate_occlusion(RidgeDecoder(2, (1, 8, 8)), ds, fill="zeros")
    >>> results.table.index.tolist()
    ['intact', 'V1 only', 'IT only', 'without V1', 'without IT']
    """
    check_matches(model, dataset)
    conditions = list(conditions) if conditions is not None else occlusion_conditions(dataset, by)
    values = fill_values(dataset, fill)
    responses, targets, ids = held_out_pairs(dataset, split)
    reconstructions = {
        c.name: model.reconstruct(
            apply_condition(responses, c, dataset.units, dataset.bin_edges_ms, values)
        )
        for c in conditions
    }
    table = score_conditions(reconstructions, dataset, ids, extractor)
    meta = {
        "by": by,
        "fill": fill,
        "fill_values": {
            "mean": float(values.mean()),
            "min": float(values.min()),
            "max": float(values.max()),
        },
        "split": split,
        "stimulus_id": ids.tolist(),
        "occluded": {
            c.name: {"areas": list(c.areas), "kept_window_ms": c.window_ms} for c in conditions
        },
    }
    return ConditionResults(
        table, reconstructions, targets, extractor.weights if extractor else None, meta
    )


def run_occlusion(
    checkpoint: str | os.PathLike,
    dataset: str | os.PathLike | NeuralDataset,
    out: str | os.PathLike,
    by: str = "area",
    fill: Fill = "mean",
    windows_ms: Sequence[Sequence[float]] | None = None,
    weights: str | None = "auto",
    feature_size: int = 224,
    features: bool = True,
) -> Path:
    """``neuralsight analyze occlusion``: load, occlude, score, and write the folder ``out``.

    Writes the files of `write_conditions` (grid, colourfulness histogram, AlexNet layer
    bars, ``metrics.csv``/``metrics.json``, ``run.json``) and returns ``out/report.html``.
    ``weights`` and ``feature_size`` set the AlexNet of the feature metrics (``features=False``
    skips them).

    Examples
    --------
    >>> run_occlusion("model.ckpt", "data.h5", "outputs/occlusion")  # doctest: +SKIP
    PosixPath('outputs/occlusion/report.html')
    """
    model = load_monkeysee(checkpoint)
    dataset = open_dataset(dataset)
    extractor = feature_extractor(weights, input_size=feature_size) if features else None
    conditions = occlusion_conditions(dataset, by, windows_ms)
    results = evaluate_occlusion(model, dataset, by, fill, conditions, extractor)
    results.meta |= {
        "by": by,
        "checkpoint": str(checkpoint),
        "dataset": dataset.source,
        "mapping": model.hparams["mapping"],
        "feature_size": feature_size if features else None,
    }
    return write_conditions(results, out, f"occlusion by {by} (fill: {fill})")
