"""Figures a person would rather look at than read: reconstruction grids and metric bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from neuralsight.files import atomic_path


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` atomically (temporary name, then rename) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _as_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    image = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    if image.shape[0] == 1:
        return image[0], "gray"
    return np.transpose(image, (1, 2, 0)), None


def reconstruction_grid(
    rows: dict[str, np.ndarray], path: str | Path, n_columns: int = 10, title: str | None = None
) -> Path:
    """A grid of images: one row per entry of ``rows`` (e.g. stimuli, then one per model).

    Each value is ``[n, C, H, W]`` in [0, 1]; the first ``n_columns`` images are shown.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> images = np.random.rand(4, 1, 8, 8)
    >>> p = reconstruction_grid({"stimulus": images, "model": images},
    ...                         os.path.join(tempfile.mkdtemp(), "grid.png"), n_columns=4)
    >>> p.exists()
    True
    """
    n_columns = min(n_columns, *(len(v) for v in rows.values()))
    fig, axes = plt.subplots(
        len(rows), n_columns, figsize=(1.1 * n_columns + 1.2, 1.15 * len(rows)), squeeze=False
    )
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_columns):
            ax = axes[r, c]
            picture, cmap = _as_display(images[c])
            ax.imshow(picture, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.04, hspace=0.06)
    return save_figure(fig, path)


def metric_bars(
    metrics: dict[str, dict[str, float]],
    path: str | Path,
    keys: tuple[str, ...] = ("ssim", "pixcorr"),
    controls: tuple[str, ...] = ("shuffled", "mean_image"),
) -> Path:
    """Bars of ``metrics[model][key]`` for the decoders, the ``controls`` as dashed lines.

    Examples
    --------
    >>> import tempfile, os
    >>> rows = {"ridge": {"ssim": 0.4}, "sid": {"ssim": 0.5}, "shuffled": {"ssim": 0.1}}
    >>> metric_bars(rows, os.path.join(tempfile.mkdtemp(), "bars.png"), keys=("ssim",)).exists()
    True
    """
    models = [m for m in metrics if m not in controls]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = [metrics[m].get(key, np.nan) for m in models]
        ax.bar(range(len(models)), values, color=plt.cm.tab10(np.arange(len(models)) % 10))
        for index, control in enumerate(c for c in controls if c in metrics):
            level = metrics[control].get(key, np.nan)
            ax.axhline(level, color="0.35", linestyle=("--", ":")[index % 2], linewidth=1)
            ax.annotate(
                control,
                (1.0, level),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                ha="right",
                va="bottom",
                color="0.3",
            )
        ax.set_xticks(range(len(models)), models, rotation=35, ha="right", fontsize=8)
        ax.set_title(key)
    fig.tight_layout()
    return save_figure(fig, path)
