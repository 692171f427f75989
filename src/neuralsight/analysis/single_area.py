"""Single-area models: a decoder trained on the units of one area only.

Occlusion asks what a decoder trained on every area makes of one area's responses; a
single-area model asks what can be learned from that area alone (MonkeySee trains models
on V1, V4 and IT separately). `restrict_to_area` builds the data set of one area's units
(same stimuli, trials, bins and split), so the same configs and training run on it
unchanged; `run_single_area` trains one model per area (``"all"``: no restriction) and
scores them side by side on the held-out images. Any decoder config serves: each model is
built for its subset's units (`neuralsight.lightning_cli.build_model`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np

from neuralsight.analysis.conditions import (
    BLOCK_BYTES,
    trials_per_block,
    write_trained_conditions,
)
from neuralsight.analysis.occlusion import area_mask, unit_areas
from neuralsight.analysis.training import require_decoder
from neuralsight.data.dataset import NeuralDataset
from neuralsight.lightning_cli import TrainingSettings, train_model
from neuralsight.metrics.score import held_out_pairs
from neuralsight.models.decoders.base import Decoder

ALL_AREAS = "all"
"""The condition name of a model trained on every unit."""

STIMULI_PER_BLOCK = 1024


def restrict_to_area(
    dataset: NeuralDataset,
    area: str,
    path: str | os.PathLike | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> NeuralDataset:
    """``dataset`` with only the units of ``area``: in memory, or streamed to ``path``.

    Stimuli, trials, bins and split are kept; ``meta["restricted_to_area"]`` records the
    area. Responses are read ``block_bytes`` at a time, so a lazily opened file larger than
    memory is fine when ``path`` (an HDF5 file, opened lazily on return) is given.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> ds = NeuralDataset.from_arrays(np.arange(6, dtype=np.float32).reshape(2, 3),
    ...     np.zeros((2, 1, 4, 4), np.float32),
    ...     units=pd.DataFrame({"unit_id": [0, 1, 2], "area": ["V1", "IT", "V1"]}))
    >>> v1 = restrict_to_area(ds, "V1")
    >>> v1.units["unit_id"].tolist(), v1.responses[:, :, 0].tolist()
    ([0, 2], [[0.0, 2.0], [3.0, 5.0]])
    """
    mask = area_mask(dataset.units, [area])
    columns = np.flatnonzero(mask)
    rows = trials_per_block(dataset, block_bytes)
    blocks = (
        (start, np.asarray(dataset.responses[start : start + rows], np.float32)[:, columns])
        for start in range(0, dataset.n_trials, rows)
    )
    fields = {
        "stimulus_id": dataset.stimulus_id.copy(),
        "units": dataset.units[mask].reset_index(drop=True),
        "bin_edges_ms": dataset.bin_edges_ms.copy(),
        "split": dataset.split.copy(),
        "meta": {**dataset.meta, "restricted_to_area": str(area)},
    }
    if path is None:
        return NeuralDataset(
            responses=np.concatenate([block for _, block in blocks]),
            stimuli=np.asarray(dataset.stimuli[:], dtype=np.float32),
            **fields,
        )
    shape = (dataset.n_trials, len(columns), dataset.n_bins, dataset.n_stimuli)
    with NeuralDataset.create(path, *shape, dataset.image_shape, **fields) as writer:
        for start, block in blocks:
            writer.write_responses(start, block)
        for start in range(0, dataset.n_stimuli, STIMULI_PER_BLOCK):
            writer.write_stimuli(
                start, np.asarray(dataset.stimuli[start : start + STIMULI_PER_BLOCK])
            )
    return NeuralDataset.open(path)


def run_single_area(
    dataset: NeuralDataset,
    settings: TrainingSettings,
    out: str | os.PathLike,
    areas: Sequence[str] | None = None,
    weights: str | None = "auto",
    feature_size: int = 224,
    features: bool = True,
    progress: bool = True,
) -> Path:
    """Train a decoder per area (``"all"``: every unit), score all, write the folder ``out``.

    Checkpoints go to ``out/checkpoints/<area>.ckpt``; the figures, tables and report are
    those of `write_conditions`, one condition per area. ``areas`` defaults to every area
    of the data set, in the order of its units table. A data set read lazily from a file
    is restricted into ``out/data/<area>.h5`` (streamed), an in-memory one in memory.

    Examples
    --------
    >>> run_single_area(ds, training_settings("configs/monkeysee_spatial.yaml", max_epochs=5),
    ...                 "outputs/single_area")  # doctest: +SKIP
    PosixPath('outputs/single_area/report.html')
    """
    require_decoder(settings, "single-area")
    present = list(dict.fromkeys(unit_areas(dataset.units)))
    areas = list(areas) if areas else present
    unknown = [a for a in areas if a != ALL_AREAS and a not in present]
    if unknown:
        raise ValueError(
            f"{dataset.source or 'dataset'}: unknown area(s) {unknown}; the units' areas are "
            f"{present} (or '{ALL_AREAS}' for every unit)"
        )
    _, targets, ids = held_out_pairs(dataset)
    reconstructions: dict[str, np.ndarray] = {}
    units: dict[str, int] = {}
    for area in areas:
        path = Path(out) / "data" / f"{area}.h5" if dataset.is_lazy else None
        subset = dataset if area == ALL_AREAS else restrict_to_area(dataset, area, path)
        model = cast(Decoder, train_model(subset, settings, out, name=area, progress=progress))
        responses, _, _ = held_out_pairs(subset)
        reconstructions[area] = model.reconstruct(responses)
        units[area] = subset.n_units
    return write_trained_conditions(
        reconstructions,
        dataset,
        (targets, ids),
        out,
        "single-area models",
        training=settings.as_dict(),
        condition_settings={"n_units": units},
        columns={"n_units": units},
        weights=weights,
        feature_size=feature_size,
        features=features,
    )
