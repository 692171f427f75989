"""Figures of the analyses: colourfulness histograms, AlexNet layer bars, receptive-field maps.

Reconstruction grids come from `neuralsight.viz.figures.reconstruction_grid`; these are the
other pictures `neuralsight.analysis` writes. Every function saves one PNG atomically and
returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from neuralsight.viz.figures import save_figure

AREA_COLOURS = {"V1": "tab:blue", "V4": "tab:orange", "IT": "tab:green"}


def area_colour(area: str, index: int = 0) -> str:
    """The colour of an area in every figure (V1 blue, V4 orange, IT green, others by index).

    Examples
    --------
    >>> area_colour("V1"), area_colour("RGC-ON", 3)
    ('tab:blue', 'C3')
    """
    return AREA_COLOURS.get(area, f"C{index % 10}")


def colourfulness_histogram(
    values: Mapping[str, np.ndarray], path: str | Path, title: str | None = None
) -> Path:
    """Histograms of per-image colourfulness: one panel per condition, over the reference.

    The first entry (e.g. the true images) is the reference, drawn as a black outline in
    every panel; each other entry gets its own panel, filled, with its mean in the title.

    Parameters
    ----------
    values
        ``{label: per-image colourfulness [N]}``: the reference first, then each condition.
    path
        The PNG to write.
    title
        Figure title.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> path = os.path.join(tempfile.mkdtemp(), "colour.png")
    >>> colourfulness_histogram({"stimuli": rng.random(20), "V1 only": rng.random(20)}, path).name
    'colour.png'
    """
    if len(values) < 2:
        raise ValueError(f"need a reference and at least one condition, found {list(values)}")
    finite = {k: np.asarray(v, float)[np.isfinite(v)] for k, v in values.items()}
    pooled = np.concatenate(list(finite.values()))
    high = float(pooled.max()) if pooled.size and pooled.max() > 0 else 1.0
    bins = np.linspace(0.0, high * 1.02, 21)
    (reference, ref_data), *conditions = finite.items()
    n_columns = min(4, len(conditions))
    n_rows = -(-len(conditions) // n_columns)
    fig, axes = plt.subplots(
        n_rows,
        n_columns,
        figsize=(2.6 * n_columns, 2.1 * n_rows + 0.4),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for index, (ax, (label, data)) in enumerate(zip(axes.flat, conditions, strict=False)):
        ax.hist(data, bins=bins, color=f"C{index % 10}", alpha=0.7)
        ax.hist(ref_data, bins=bins, histtype="step", color="black", linewidth=1.2)
        mean = data.mean() if data.size else float("nan")
        ax.set_title(f"{label} (mean {mean:.1f})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(conditions) :]:
        ax.set_visible(False)
    fig.supxlabel("colourfulness (Hasler & Suesstrunk, 0-255 scale)", fontsize=8)
    fig.supylabel("images", fontsize=8)
    ref_mean = ref_data.mean() if ref_data.size else float("nan")
    caption = f"black outline: {reference} (mean {ref_mean:.1f})"
    fig.suptitle(f"{title}; {caption}" if title else caption, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def layer_correlation_bars(
    table: pd.DataFrame, path: str | Path, layers: Sequence[str], title: str | None = None
) -> Path:
    """Grouped bars of AlexNet layer correlations: layers on x, one bar per row of ``table``.

    Parameters
    ----------
    table
        One row per condition (its index labels the bars), columns ``corr_<layer>``.
    path
        The PNG to write.
    layers
        Layer names, e.g. ``("conv1", ..., "conv5")``.
    title
        Figure title.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> table = pd.DataFrame({"corr_conv1": [0.5, 0.3], "corr_conv2": [0.4, 0.2]}, index=["a", "b"])
    >>> layer_correlation_bars(table, os.path.join(tempfile.mkdtemp(), "bars.png"), ["conv1", "conv2"]).suffix
    '.png'
    """
    columns = [f"corr_{layer}" for layer in layers]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; found {list(table.columns)}")
    n_rows = len(table)
    width = 0.8 / max(n_rows, 1)
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(layers) + 0.3 * n_rows), 3.2))
    for index, (label, row) in enumerate(table[columns].iterrows()):
        offset = (index - (n_rows - 1) / 2) * width
        ax.bar(x + offset, row.to_numpy(float), width, label=str(label), color=f"C{index % 10}")
    ax.set_xticks(x, list(layers))
    ax.set_ylabel("Pearson r with the true image's features")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def field_map(table: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Learned receptive fields: the visual-field map and size against eccentricity.

    Left: learned centres (filled, coloured by area) and, where known, true centres (open
    circles) joined to them by a line, in normalised image coordinates (y down, the image
    is the square [-1, 1]^2). Right: learned SD against learned eccentricity (filled) and
    true SD against true eccentricity (open).

    Parameters
    ----------
    table
        One row per unit with ``area``, ``rf_x``, ``rf_y``, ``rf_sigma`` (learned) and,
        optionally, ``true_rf_x``, ``true_rf_y``, ``true_rf_sigma`` (NaN where unknown), as
        written by `neuralsight.analysis.fields.field_table`.
    path
        The PNG to write.
    title
        Figure title.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> table = pd.DataFrame({"area": ["V1", "IT"], "rf_x": [0.2, 0.0], "rf_y": [0.3, 0.0],
    ...                       "rf_sigma": [0.1, 0.5], "true_rf_x": [0.25, 0.0],
    ...                       "true_rf_y": [0.3, 0.1], "true_rf_sigma": [0.1, 0.4]})
    >>> field_map(table, os.path.join(tempfile.mkdtemp(), "fields.png")).name
    'fields.png'
    """
    missing = [c for c in ("area", "rf_x", "rf_y", "rf_sigma") if c not in table.columns]
    if missing:
        raise ValueError(f"field table lacks column(s) {missing}; found {list(table.columns)}")
    has_true = {"true_rf_x", "true_rf_y", "true_rf_sigma"} <= set(table.columns)
    fig, (ax_map, ax_size) = plt.subplots(1, 2, figsize=(9.5, 4.3))
    for index, area in enumerate(dict.fromkeys(table["area"])):
        rows = table[table["area"] == area]
        colour = area_colour(str(area), index)
        if has_true:
            known = rows[np.isfinite(rows[["true_rf_x", "true_rf_y"]]).all(axis=1)]
            segments_x = np.stack([known["true_rf_x"], known["rf_x"]])
            segments_y = np.stack([known["true_rf_y"], known["rf_y"]])
            ax_map.plot(segments_x, segments_y, color=colour, linewidth=0.5, alpha=0.5)
            ax_map.scatter(
                known["true_rf_x"], known["true_rf_y"], s=14, facecolors="none", edgecolors=colour
            )
            ax_size.scatter(
                np.hypot(known["true_rf_x"], known["true_rf_y"]),
                known["true_rf_sigma"],
                s=14,
                facecolors="none",
                edgecolors=colour,
            )
        ax_map.scatter(rows["rf_x"], rows["rf_y"], s=10, color=colour, label=str(area))
        ax_size.scatter(np.hypot(rows["rf_x"], rows["rf_y"]), rows["rf_sigma"], s=10, color=colour)
    ax_map.set(xlim=(-1.05, 1.05), ylim=(1.05, -1.05), aspect="equal")
    ax_map.add_patch(plt.Rectangle((-1, -1), 2, 2, fill=False, color="grey", linewidth=0.8))
    ax_map.set_xlabel("x (normalised, left to right)")
    ax_map.set_ylabel("y (normalised, top to bottom)")
    note = "filled: learned; open: true, joined by lines" if has_true else "learned centres"
    ax_map.set_title(f"visual-field map ({note})", fontsize=9)
    ax_map.legend(fontsize=8, loc="upper right")
    ax_size.set_xlabel("eccentricity (normalised)")
    ax_size.set_ylabel("RF SD (normalised)")
    ax_size.set_title("size against eccentricity", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
