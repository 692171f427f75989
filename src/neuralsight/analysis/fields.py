"""Learned receptive fields of the end-to-end MonkeySee against the true ones.

The end-to-end model learns one Gaussian receptive field (RF) per electrode
(`LearnedInverseRF`). `field_table` puts each unit's learned RF next to its true one (the
data set's ``rf_x``, ``rf_y``, ``rf_sigma``, NaN where unknown) with the distance between
centres in normalised units and in true RF SDs (`compare_fields`); `field_summary` gives the
median distance in SDs per area and overall, and `run_fields` draws the visual-field map
and size against eccentricity (`neuralsight.viz.analysis.field_map`) and writes
``fields.png``, ``fields.csv``, ``fields.json``, ``run.json`` and the report.
`field_coverage` says how much of the image each area's RFs cover, which bounds what
occluding that area can cost a whole-image pixel metric; `painted_pixel_fraction` says how
many electrodes keep a pixel of their own when the spatial model paints them (electrodes of
one array on one pixel are summed into one value).

Coordinates are normalised image coordinates ([-1, 1], y down). Where the model was
initialised from the true RFs (as the end-to-end config does), the distance measures how
far training moved them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuralsight.analysis.conditions import write_text
from neuralsight.analysis.training import check_matches, load_monkeysee
from neuralsight.data.dataset import NeuralDataset, open_dataset
from neuralsight.models.blocks.inverse_rf import compare_fields, nearest_pixel
from neuralsight.models.decoders.monkeysee import MonkeySee
from neuralsight.viz.analysis import field_map
from neuralsight.viz.report import write_report

RF_COLUMNS = ("rf_x", "rf_y", "rf_sigma")


def true_fields(units: pd.DataFrame) -> pd.DataFrame:
    """``rf_x``, ``rf_y``, ``rf_sigma`` of a units table, NaN where a column or value is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> true_fields(pd.DataFrame({"rf_x": [0.1], "rf_y": [0.2]}))["rf_sigma"].isna().all()
    np.True_
    """
    return pd.DataFrame(
        {
            c: units[c].astype(float).to_numpy() if c in units.columns else np.nan
            for c in RF_COLUMNS
        },
        index=range(len(units)),
    )


def field_coverage(
    units: pd.DataFrame, image_size: int, within_sigmas: float = 2.0
) -> dict[str, float]:
    """Fraction of the pixels of an ``image_size`` square image that each area's RFs cover.

    A pixel is covered by an area when its centre lies within ``within_sigmas`` RF SDs of
    the RF centre of one of the area's units (units without a known RF are left out).
    Coordinates are normalised image coordinates, as `true_fields`.

    Examples
    --------
    >>> import pandas as pd
    >>> units = pd.DataFrame({"area": ["V1", "IT"], "rf_x": [-0.5, 0.0], "rf_y": [-0.5, 0.0],
    ...                       "rf_sigma": [0.25, 2.0]})
    >>> field_coverage(units, 8, within_sigmas=1.0)
    {'V1': 0.0625, 'IT': 1.0}
    """
    if "area" not in units.columns:
        raise ValueError(f"field_coverage needs an 'area' column; found {list(units.columns)}")
    fields = true_fields(units)
    centres = -1.0 + (2.0 * np.arange(image_size) + 1.0) / image_size
    grid_x, grid_y = np.meshgrid(centres, centres)
    areas = units["area"].astype(str).to_numpy()
    coverage = {}
    for area in dict.fromkeys(areas):
        rows = fields[(areas == area) & fields.notna().all(axis=1).to_numpy()]
        covered = np.zeros_like(grid_x, dtype=bool)
        for x, y, sigma in rows.itertuples(index=False):
            covered |= np.hypot(grid_x - x, grid_y - y) <= within_sigmas * sigma
        coverage[area] = float(covered.mean())
    return coverage


def painted_pixels(units: pd.DataFrame, image_size: int) -> np.ndarray:
    """Flat index of the pixel each unit is painted on in an ``image_size`` square image.

    The spatial MonkeySee's ``paint="pixel"`` choice (`nearest_pixel` of ``rf_x``, ``rf_y``);
    every unit needs a known RF centre.

    Examples
    --------
    >>> import pandas as pd
    >>> painted_pixels(pd.DataFrame({"rf_x": [-1.0, 0.9], "rf_y": [-1.0, 0.9]}), 4).tolist()
    [0, 15]
    """
    centres = units[["rf_x", "rf_y"]].to_numpy(float)
    if not np.isfinite(centres).all():
        unknown = int((~np.isfinite(centres).all(axis=1)).sum())
        raise ValueError(
            f"painted_pixels: {unknown} of {len(units)} units have no finite rf_x/rf_y; "
            "only units with a known RF centre are painted"
        )
    rf_x, rf_y = torch.as_tensor(centres).T
    return nearest_pixel(rf_x, rf_y, image_size, image_size).numpy()


def painted_pixel_fraction(units: pd.DataFrame, image_size: int) -> dict[str, float]:
    """Distinct pixels per electrode when each is painted on the pixel nearest its RF centre.

    The spatial MonkeySee (``paint="pixel"``) paints every electrode of an array on one
    channel, at the pixel nearest its RF centre (`painted_pixels`); electrodes of one array that
    land on the same pixel are summed into one value, and what told them apart is lost. Per
    area: the number of distinct (array, pixel) pairs over the number of electrodes with a
    known RF centre; 1 when none share, lower at smaller ``image_size``.

    Examples
    --------
    >>> import pandas as pd
    >>> units = pd.DataFrame({"area": ["V1"] * 3, "array": [0, 0, 1],
    ...                       "rf_x": [0.1, 0.12, 0.1], "rf_y": [0.0, 0.0, 0.0]})
    >>> painted_pixel_fraction(units, 8), painted_pixel_fraction(units, 128)
    ({'V1': 0.6666666666666666}, {'V1': 1.0})
    """
    missing = {"area", "array", "rf_x", "rf_y"} - set(units.columns)
    if missing:
        raise ValueError(f"painted_pixel_fraction needs columns {sorted(missing)} in units")
    known = units[units[["rf_x", "rf_y"]].notna().all(axis=1)]
    painted = known.assign(pixel=painted_pixels(known, image_size))
    return {
        str(area): len(rows.drop_duplicates(["array", "pixel"])) / len(rows)
        for area, rows in painted.groupby("area", sort=False)
    }


def field_table(learned: pd.DataFrame, true: pd.DataFrame) -> pd.DataFrame:
    """Learned and true RFs side by side, with distances, one row per unit.

    Parameters
    ----------
    learned
        ``area`` (optional), ``rf_x``, ``rf_y``, ``rf_sigma``, e.g. `MonkeySee.learned_fields`.
    true
        ``rf_x``, ``rf_y``, ``rf_sigma`` of the same units in the same order, NaN where
        unknown (`true_fields`).

    Returns
    -------
    pandas.DataFrame
        ``learned``'s columns, ``true_rf_x``, ``true_rf_y``, ``true_rf_sigma``,
        ``eccentricity`` and ``true_eccentricity``, and from `compare_fields` ``distance``,
        ``distance_sigmas`` and ``sigma_ratio`` (NaN where the true RF is unknown).

    Examples
    --------
    >>> import pandas as pd
    >>> true = pd.DataFrame({"rf_x": [0.0, 0.5], "rf_y": [0.0, 0.0], "rf_sigma": [0.1, 0.2]})
    >>> learned = true.assign(area=["V1", "V4"], rf_x=[0.3, 0.5])
    >>> field_table(learned, true)["distance_sigmas"].round(6).tolist()
    [3.0, 0.0]
    """
    if len(learned) != len(true):
        raise ValueError(
            f"learned and true fields must have one row per unit each, found {len(learned)} "
            f"and {len(true)} rows"
        )
    table = learned.reset_index(drop=True).copy()
    if "area" not in table.columns:
        table.insert(0, "area", "unknown")
    for column in RF_COLUMNS:
        table[f"true_{column}"] = true[column].to_numpy(dtype=float)
    table["eccentricity"] = np.hypot(table["rf_x"], table["rf_y"])
    table["true_eccentricity"] = np.hypot(table["true_rf_x"], table["true_rf_y"])
    distances = compare_fields(table[list(RF_COLUMNS)], true.reset_index(drop=True))
    return pd.concat([table, distances], axis=1)


def _summary(rows: pd.DataFrame) -> dict[str, Any]:
    known = rows[np.isfinite(rows["distance_sigmas"])]
    return {
        "n_units": len(rows),
        "n_with_true_field": len(known),
        "median_distance_sigmas": float(known["distance_sigmas"].median()) if len(known) else None,
        "median_distance": float(known["distance"].median()) if len(known) else None,
        "median_sigma_ratio": float(known["sigma_ratio"].median()) if len(known) else None,
    }


def median_distance_sigmas(table: pd.DataFrame) -> float:
    """Median distance between learned and true centres in true RF SDs (units with a true RF).

    NaN when no unit has a true RF.

    Examples
    --------
    >>> import pandas as pd
    >>> true = pd.DataFrame({"rf_x": [0.0], "rf_y": [0.2], "rf_sigma": [0.1]})
    >>> median_distance_sigmas(field_table(true, true))
    0.0
    """
    value = _summary(table)["median_distance_sigmas"]
    return float("nan") if value is None else value


def field_summary(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per area and ``"all"``: units, units with a true RF, median distance (SDs and
    normalised units) and median ratio of learned to true SD.

    Examples
    --------
    >>> import pandas as pd
    >>> true = pd.DataFrame({"rf_x": [0.0], "rf_y": [0.2], "rf_sigma": [0.1]})
    >>> field_summary(field_table(true.assign(area="V1"), true))["V1"]["median_distance_sigmas"]
    0.0
    """
    summary = {"all": _summary(table)}
    for area in dict.fromkeys(table["area"]):
        summary[str(area)] = _summary(table[table["area"] == area])
    return summary


def model_fields(model: MonkeySee, dataset: NeuralDataset) -> pd.DataFrame:
    """`field_table` of an end-to-end model against the RFs of the data set's units.

    Examples
    --------
    >>> model_fields(load_monkeysee("e2e.ckpt"), NeuralDataset.open("data.h5"))  # doctest: +SKIP
    """
    check_matches(model, dataset)
    return field_table(model.learned_fields(), true_fields(dataset.units))


def run_fields(
    checkpoint: str | os.PathLike,
    dataset: str | os.PathLike | NeuralDataset,
    out: str | os.PathLike,
) -> Path:
    """``neuralsight analyze fields``: the learned-RF figure, table and summary, and the report.

    Examples
    --------
    >>> run_fields("e2e.ckpt", "data.h5", "outputs/fields")  # doctest: +SKIP
    PosixPath('outputs/fields/report.html')
    """
    model = load_monkeysee(checkpoint)
    dataset = open_dataset(dataset)
    table = model_fields(model, dataset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = field_summary(table)
    median = summary["all"]["median_distance_sigmas"]
    title = "learned receptive fields" + (
        f" (median centre distance {median:.2f} true SDs)" if median is not None else ""
    )
    field_map(table, out / "fields.png", title=title)
    write_text(out / "fields.csv", table.to_csv(index_label="unit"))
    write_text(out / "fields.json", json.dumps(summary, indent=2) + "\n")
    run = {
        "analysis": "learned receptive fields",
        "checkpoint": str(checkpoint),
        "dataset": dataset.source,
        "rf_units": dataset.meta.get("rf_units", "normalised image coordinates"),
        "summary": summary["all"],
    }
    write_text(out / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    return write_report(out)
