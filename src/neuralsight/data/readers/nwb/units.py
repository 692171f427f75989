"""Units of an NWB session: their table (ids, areas, scalar columns) and the filters that keep some.

`unit_table` reads one row per unit: ``unit_id``, an ``area`` (from an area column of the
units table, else the location of the unit's electrode) and every column holding one number
or string per unit. `unit_mask` applies ``unit_filters`` such as
``{"snr": ">=2", "quality": "good", "area": ["V1", "V4"]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdmf.common import VectorData, VectorIndex
from pynwb import NWBFile
from pynwb.misc import Units

from neuralsight.data.dataset import DatasetError

AREA_COLUMNS = ("area", "brain_area", "location")


_OPERATORS = {
    ">=": np.greater_equal,
    "<=": np.less_equal,
    "==": np.equal,
    ">": np.greater,
    "<": np.less,
}


def unit_table(nwb: NWBFile, units: Units) -> pd.DataFrame:
    """One row per unit: ``unit_id``, ``area`` and every scalar column of the units table."""
    table = pd.DataFrame({"unit_id": np.asarray(units.id.data[:], dtype=np.int64)})
    table["area"] = _unit_areas(nwb, units)
    for name in units.colnames:
        values = _scalar_column(units[name])
        if values is not None and name not in table.columns:
            table[name] = values
    return table


def _scalar_column(column) -> np.ndarray | None:
    """Values of a one-value-per-row column of numbers or strings, else None."""
    if type(column) is not VectorData or len(getattr(column.data, "shape", ())) != 1:
        return None
    values = np.asarray(column.data[:])
    if values.dtype.kind in "biuf":
        return values
    if values.dtype.kind in "SUO" and all(isinstance(v, str | bytes) for v in values):
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    return None


def _unit_areas(nwb: NWBFile, units: Units) -> np.ndarray:
    """Area of each unit: an area column of the units table, else its electrode's location."""
    n_units = len(units.id)
    for name in AREA_COLUMNS:
        if name in units.colnames:
            values = _scalar_column(units[name])
            if values is not None and values.dtype.kind == "O":
                return _clean_areas(values)
    if "electrodes" in units.colnames:
        region = units["electrodes"]
        rows = _first_electrode_rows(region)
        locations = _scalar_column(_region_table(region)["location"])
        if locations is not None:
            areas = np.full(n_units, "unknown", dtype=object)
            has = rows >= 0
            areas[has] = locations[rows[has]]
            return _clean_areas(areas)
    if "peak_channel_id" in units.colnames and nwb.electrodes is not None:
        locations = _scalar_column(nwb.electrodes["location"])
        if locations is not None:
            position = {int(e): i for i, e in enumerate(nwb.electrodes.id.data[:])}
            peaks = units["peak_channel_id"].data[:]
            return _clean_areas(
                np.array([locations[position[int(p)]] if int(p) in position else "" for p in peaks])
            )
    return np.full(n_units, "unknown", dtype=object)


def _first_electrode_rows(region) -> np.ndarray:
    """Row (in the electrodes table) of each unit's first electrode; -1 where it has none."""
    if isinstance(region, VectorIndex):
        ends = np.asarray(region.data[:], dtype=np.int64)
        flat = np.asarray(region.target.data[:], dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        first = np.full(len(ends), -1, dtype=np.int64)
        has = ends > starts
        first[has] = flat[starts[has]]
        return first
    return np.asarray(region.data[:], dtype=np.int64)


def _region_table(region):
    return region.target.table if isinstance(region, VectorIndex) else region.table


def _clean_areas(values: np.ndarray) -> np.ndarray:
    text = np.array([str(v).strip() for v in values], dtype=object)
    missing = np.isin(np.char.lower(text.astype(str)), ["", "none", "nan", "unknown"])
    text[missing] = "unknown"
    return text


def unit_mask(units: pd.DataFrame, filters: dict[str, Any] | None, path: Path) -> np.ndarray:
    """Rows of ``units`` passing every condition of ``filters`` (see `read`)."""
    if not len(units):
        raise DatasetError(
            f"{path}: field 'units' must hold at least one unit, found an empty units table"
        )
    keep = np.ones(len(units), dtype=bool)
    for column, condition in (filters or {}).items():
        if column not in units.columns:
            raise DatasetError(
                f"{path}: unit_filters names column '{column}', which the units table lacks; "
                f"found columns {list(units.columns)}"
            )
        keep &= _condition_mask(units[column].to_numpy(), condition, column, path)
    if not keep.any():
        raise DatasetError(
            f"{path}: unit_filters {filters} leave no unit of the {len(units)} in the file"
        )
    return keep


def _condition_mask(values: np.ndarray, condition: Any, column: str, path: Path) -> np.ndarray:
    if isinstance(condition, list | tuple | set):
        return np.isin(values, list(condition))
    operator, operand = "==", condition
    if isinstance(condition, str):
        text = condition.strip()
        for symbol in _OPERATORS:
            if text.startswith(symbol):
                operator, operand = symbol, text[len(symbol) :].strip()
                break
    if values.dtype.kind in "biuf":
        try:
            number = float(operand)
        except (TypeError, ValueError) as err:
            raise DatasetError(
                f"{path}: unit_filters condition {condition!r} on numeric column '{column}' "
                f"needs a number, found {operand!r}"
            ) from err
        return _OPERATORS[operator](values.astype(np.float64), number)
    if operator != "==":
        raise DatasetError(
            f"{path}: unit_filters condition {condition!r} compares column '{column}' of "
            f"text values; only equality or a list of values applies to text"
        )
    return values.astype(str) == str(operand)
