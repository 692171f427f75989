"""Scoring reconstructions under several conditions, and writing one analysis folder.

Every analysis (occlusion, single-area models, loss ablations) ends the same way: a set
of reconstructions of the same held-out images, one per condition, scored with the
evaluation suite and written into an output folder:

- `held_out_pairs`: the responses and true images of a split, repeats averaged (test
  images are the mean of their repeats, as in MonkeySee);
- `score_conditions`: per condition MSE, PSNR, SSIM, PixCorr
  (`neuralsight.metrics.image_metrics`), AlexNet ``corr_conv1``..``corr_conv5`` and
  two-way identification in pixels, ``conv2`` and ``conv5``
  (`neuralsight.metrics.feature_metrics`), and the mean colourfulness;
- `write_conditions`: ``reconstructions.png`` (a grid: true images, then a row per
  condition), ``colourfulness.png`` (histogram per condition), ``alexnet_layers.png``
  (per-layer correlation bars), ``metrics.csv`` and ``metrics.json`` (one row / entry per
  condition), ``run.json`` (settings and provenance), then ``report.html``
  (`neuralsight.viz.report.write_report`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.views import PairDataset
from neuralsight.files import atomic_write
from neuralsight.metrics.colour import colourfulness_per_image
from neuralsight.metrics.evaluate import true_stimuli, write_metrics_json
from neuralsight.metrics.features import AlexNetFeatures, feature_metrics
from neuralsight.metrics.image import image_metrics
from neuralsight.viz.analysis import colourfulness_histogram, layer_correlation_bars
from neuralsight.viz.figures import reconstruction_grid
from neuralsight.viz.report import write_report

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
"""AlexNet layers scored by the analyses (MonkeySee's Table 1 reports the conv layers)."""

STIMULI_LABEL = "stimuli"
"""Label of the true images in figures and in the colourfulness column."""

BLOCK_BYTES = 2**28
"""Responses are read from a data set in blocks of about this many bytes (256 MiB)."""


@dataclass
class ConditionResults:
    """Reconstructions of the same images under several conditions, and their scores.

    Attributes
    ----------
    table
        One row per condition (the index), one column per metric.
    reconstructions
        ``{condition: [N, C, H, W]}`` float32 in [0, 1].
    targets
        The true images ``[N, C, H, W]``.
    weights
        Provenance of the AlexNet weights (``"imagenet"``, ``"random"``, ``"file:..."``);
        ``None`` when no feature metrics were computed.
    meta
        Settings of the analysis, written to ``run.json``.
    """

    table: pd.DataFrame
    reconstructions: dict[str, np.ndarray]
    targets: np.ndarray
    weights: str | None
    meta: dict[str, Any] = field(default_factory=dict)


def trials_per_block(dataset: NeuralDataset, block_bytes: int = BLOCK_BYTES) -> int:
    """How many trials of ``dataset``'s responses fit in ``block_bytes`` (at least 1).

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 256), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> trials_per_block(ds, block_bytes=4096)
    4
    """
    return max(1, block_bytes // (4 * dataset.n_units * dataset.n_bins))


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
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.arange(6, dtype=np.float32).reshape(3, 2),
    ...     np.zeros((2, 1, 4, 4), np.float32), stimulus_id=[0, 1, 1], split=["train", "test", "test"])
    >>> responses, images, ids = held_out_pairs(ds)
    >>> responses[:, :, 0].tolist(), ids.tolist()
    ([[3.0, 4.0]], [1])
    """
    trials = dataset.trials(split)
    if not len(trials):
        raise ValueError(f"{dataset.source or 'dataset'}: no trials in split '{split}'")
    pairs = PairDataset(dataset, trials, average_repeats=True)
    responses = np.empty((len(pairs), dataset.n_units, dataset.n_bins), np.float32)
    for start in range(0, len(pairs), items_per_block):
        items = np.arange(start, min(start + items_per_block, len(pairs)))
        responses[items] = pairs.responses_block(items).reshape(len(items), *responses.shape[1:])
    ids = np.asarray(pairs.stimulus_index, dtype=np.int64)
    return responses, true_stimuli(dataset, ids), ids


def feature_extractor(
    weights: str | os.PathLike | None = "auto",
    device: str | None = "cpu",
    input_size: int = 224,
) -> AlexNetFeatures:
    """An AlexNet reading `CONV_LAYERS`, with weights by `load_pretrained`'s policy.

    ``input_size`` below 224 (at least 64) is only for quick checks: published numbers use
    224.

    Examples
    --------
    >>> feature_extractor("random", input_size=64).layers
    ('conv1', 'conv2', 'conv3', 'conv4', 'conv5')
    """
    return AlexNetFeatures.from_pretrained(
        weights=weights, layers=CONV_LAYERS, device=device, input_size=input_size
    )


def score_reconstructions(
    reconstructions: np.ndarray, targets: np.ndarray, extractor: AlexNetFeatures | None = None
) -> dict[str, float]:
    """Image metrics, AlexNet conv correlations, two-way identification and colourfulness.

    Without ``extractor`` only the image metrics and colourfulness are computed.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    >>> scores = score_reconstructions(x, x)
    >>> round(scores["ssim"], 6), sorted(scores)
    (1.0, ['colourfulness', 'mse', 'pixcorr', 'psnr', 'ssim'])
    """
    scores: dict[str, float] = image_metrics(reconstructions, targets)
    if extractor is not None:
        features = feature_metrics(
            reconstructions, targets, extractor=extractor, twoway_layers=("conv2", "conv5")
        )
        scores |= {k: float(v) for k, v in features.items() if k not in ("weights", "n_images")}
    scores["colourfulness"] = float(colourfulness_per_image(reconstructions).mean())
    return scores


def score_conditions(
    reconstructions: dict[str, np.ndarray],
    targets: np.ndarray,
    extractor: AlexNetFeatures | None = None,
) -> pd.DataFrame:
    """`score_reconstructions` of each condition: a table indexed by condition.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    >>> table = score_conditions({"same": x, "grey": np.full_like(x, 0.5)}, x)
    >>> table.index.tolist(), bool(table.loc["same", "mse"] < table.loc["grey", "mse"])
    (['same', 'grey'], True)
    """
    rows = {
        name: score_reconstructions(images, targets, extractor)
        for name, images in reconstructions.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "condition"
    return table


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see `neuralsight.files.atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def write_conditions(
    results: ConditionResults, out: str | Path, title: str, n_columns: int = 8
) -> Path:
    """Write the figures, the tables and ``run.json`` of an analysis, then its report.

    Parameters
    ----------
    results
        The scored conditions.
    out
        The output folder (created).
    title
        Title of the figures, e.g. ``"occlusion by area (fill: baseline)"``.
    n_columns
        Images per row of the reconstruction grid.

    Returns
    -------
    Path
        The report (``out/report.html``).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    >>> results = ConditionResults(score_conditions({"a": x}, x), {"a": x}, x, weights=None)
    >>> write_conditions(results, tempfile.mkdtemp(), "example").name
    'report.html'
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {STIMULI_LABEL: results.targets, **results.reconstructions}
    reconstruction_grid(rows, out / "reconstructions.png", n_columns=n_columns, title=title)
    colourfulness_histogram(
        {label: colourfulness_per_image(images) for label, images in rows.items()},
        out / "colourfulness.png",
        title=f"{title}: colourfulness",
    )
    table = results.table.copy()
    bars = out / "alexnet_layers.png"
    if f"corr_{CONV_LAYERS[0]}" in table.columns:
        layer_correlation_bars(
            table,
            bars,
            CONV_LAYERS,
            title=f"{title}: AlexNet layer correlation (weights: {results.weights})",
        )
    else:
        bars.unlink(missing_ok=True)  # not left over from an earlier run with features
    table["alexnet_weights"] = results.weights or "none"
    write_text(out / "metrics.csv", table.to_csv())
    metrics = {str(name): row.dropna().to_dict() for name, row in results.table.iterrows()}
    write_metrics_json(out / "metrics.json", metrics)
    run = {
        "analysis": title,
        "conditions": list(results.reconstructions),
        "n_images": len(results.targets),
        "image_shape": list(results.targets.shape[1:]),
        "stimuli_colourfulness": float(colourfulness_per_image(results.targets).mean()),
        "weights": results.weights or "none",
        **results.meta,
    }
    write_text(out / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    return write_report(out)
