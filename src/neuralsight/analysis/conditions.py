"""Scoring reconstructions under several conditions, and writing one analysis folder.

Every analysis (occlusion, single-area models, loss ablations) ends the same way: a set
of reconstructions of the same held-out images, one per condition, scored with the
evaluation suite and written into an output folder:

- `score_conditions`: `neuralsight.metrics.score_decoder` of each condition (the
  held-out images of `neuralsight.metrics.held_out_pairs`, repeats averaged as in
  MonkeySee): MSE, PSNR, SSIM, PixCorr, AlexNet ``corr_conv1``..``corr_conv5`` (the
  extractor of `feature_extractor`) and two-way identification in pixels, ``conv2`` and
  ``conv5``, and the mean colourfulness;
- `write_conditions`: ``reconstructions.png`` (a grid: true images, then a row per
  condition), ``colourfulness.png`` (histogram per condition), ``alexnet_layers.png``
  (per-layer correlation bars), ``metrics.csv`` and ``metrics.json`` (one row / entry per
  condition), ``run.json`` (settings and provenance), then ``report.html``
  (`neuralsight.viz.report.write_report`);
- `write_trained_conditions`: the end of an analysis that trains one model per condition
  (single-area models, loss ablations): score, add the conditions' settings, write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from neuralsight.data.dataset import NeuralDataset
from neuralsight.files import atomic_write
from neuralsight.metrics.colour import colourfulness_per_image
from neuralsight.metrics.features import CONV_LAYERS, AlexNetFeatures
from neuralsight.metrics.results import write_metrics_json
from neuralsight.metrics.score import score_decoder
from neuralsight.viz.analysis import colourfulness_histogram, layer_correlation_bars
from neuralsight.viz.figures import reconstruction_grid
from neuralsight.viz.report import write_report

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


def score_conditions(
    reconstructions: dict[str, np.ndarray],
    dataset: NeuralDataset,
    stimulus_id: np.ndarray,
    extractor: AlexNetFeatures | None = None,
) -> pd.DataFrame:
    """`score_decoder` of each condition's reconstructions: a table indexed by condition.

    Each row is `DecoderScores.row`: MSE, PSNR, SSIM, PixCorr, with ``extractor`` the
    AlexNet layer correlations and two-way identification, and the mean colourfulness. The
    images of ``stimulus_id`` are scored as given (an analysis names the stimuli it shows,
    any subset of any split).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    >>> ds = NeuralDataset.from_arrays(np.zeros((3, 2), np.float32), x)
    >>> table = score_conditions({"same": x, "grey": np.full_like(x, 0.5)}, ds, np.arange(3))
    >>> table.index.tolist(), bool(table.loc["same", "mse"] < table.loc["grey", "mse"])
    (['same', 'grey'], True)
    """
    features = extractor if extractor is not None else False
    rows = {
        name: score_decoder(images, dataset, None, stimulus_id=stimulus_id, features=features).row()
        for name, images in reconstructions.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "condition"
    return table


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see `neuralsight.files.atomic_write`)."""

    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode())

    return atomic_write(path, write)


def write_conditions(
    results: ConditionResults, out: str | os.PathLike, title: str, n_columns: int = 8
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
    >>> ds = NeuralDataset.from_arrays(np.zeros((4, 2), np.float32), x)
    >>> table = score_conditions({"a": x}, ds, np.arange(4))
    >>> results = ConditionResults(table, {"a": x}, x, weights=None)
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


def write_trained_conditions(
    reconstructions: dict[str, np.ndarray],
    dataset: NeuralDataset,
    held_out: tuple[np.ndarray, np.ndarray],
    out: str | os.PathLike,
    title: str,
    *,
    training: dict[str, Any],
    condition_settings: dict[str, Any],
    columns: dict[str, dict[str, Any]],
    weights: str | None = "auto",
    feature_size: int = 224,
    features: bool = True,
) -> Path:
    """Score models trained one per condition and write their folder (`write_conditions`).

    Parameters
    ----------
    reconstructions
        ``{condition: [N, C, H, W]}``: each condition's model's reconstructions of the
        held-out images.
    dataset
        The data set the images come from.
    held_out
        ``(targets, stimulus_id)`` of the held-out images (`held_out_pairs`).
    out, title
        As in `write_conditions`.
    training
        The training settings (``TrainingSettings.as_dict()``), written to ``run.json``.
    condition_settings
        What sets the conditions apart, written to ``run.json`` between ``"training"`` and
        ``"stimulus_id"``, e.g. ``{"n_units": {area: n}}``.
    columns
        ``{column: {condition: value}}``: each is inserted in turn as the first column of
        the metrics table (the last one given ends up leftmost).
    weights, feature_size, features
        The AlexNet for the feature metrics (`feature_extractor`); ``features=False``:
        image metrics only.

    Returns
    -------
    Path
        ``out/report.html``, written last by `write_conditions`.

    Examples
    --------
    >>> import json, tempfile
    >>> ds = NeuralDataset.from_arrays(np.zeros((4, 2), np.float32), np.ones((4, 1, 32, 32)))
    >>> units = {"a": 2}
    >>> report = write_trained_conditions({"a": ds.stimuli[:]}, ds, (ds.stimuli[:], ds.stimulus_id),
    ...     tempfile.mkdtemp(), "example", training={}, condition_settings={"n_units": units},
    ...     columns={"n_units": units}, features=False)
    >>> run = json.loads((report.parent / "run.json").read_text())
    >>> run["n_units"], run["feature_size"], run["conditions"]
    ({'a': 2}, None, ['a'])
    """
    targets, stimulus_id = held_out
    extractor = feature_extractor(weights, input_size=feature_size) if features else None
    table = score_conditions(reconstructions, dataset, stimulus_id, extractor)
    for name, values in columns.items():
        table.insert(0, name, [values[condition] for condition in table.index])
    meta = {
        "dataset": dataset.source,
        "training": training,
        **condition_settings,
        "stimulus_id": stimulus_id.tolist(),
        "feature_size": feature_size if features else None,
    }
    results = ConditionResults(
        table, reconstructions, targets, extractor.weights if extractor else None, meta
    )
    return write_conditions(results, Path(out), title)
