"""The demo: retinal spikes to images, end to end, on data embedded in the installed packages.

Natural-photograph crops (scikit-image's bundled photographs; the test crops come from
photographs never used in training) and, for training only, procedural dead-leaves scenes
(a third of the training set: they teach generic image statistics instead of the content of
eight photographs) are shown to a simulated retina of subunit ganglion cells; single-trial spike counts are decoded by the ridge baseline, the published SID and
our improved SID; every model and two controls are scored on the held-out test split:

- ``mean_image``: every reconstruction is the mean training image;
- ``shuffled``: each test stimulus paired with the improved SID's reconstruction of another
  stimulus's responses (`neuralsight.metrics.shuffled_pairing`; chance, with no retraining).

Where ImageNet AlexNet weights are found without a download (``$NEURALSIGHT_WEIGHTS``, the
torch hub cache; `neuralsight.pretrained`), every model is also scored on the feature
metrics: AlexNet layer correlation conv1-conv5 and two-way identification on pixels and on
AlexNet conv2 and conv5 (`neuralsight.metrics.features`); without them these are skipped
(never computed on random weights) and ``run.json`` says how to add them.

Writes ``metrics.json`` (``{"<model>": {"mse", "psnr", "ssim", "pixcorr"[, feature
metrics]}}``), ``run.json`` (settings, seed, timing, data summary, the weights'
provenance), ``reconstructions.png``, ``metrics.png``, the dataset, the reconstructions,
the checkpoints and ``report.html`` into the output folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from rich.console import Console
from rich.table import Table

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.sources import make_stimuli
from neuralsight.metrics.features import AlexNetFeatures
from neuralsight.metrics.results import save_reconstructions, write_metrics_json
from neuralsight.metrics.score import (
    DecoderScores,
    mean_image,
    score_decoder,
    shuffled_pairing,
)
from neuralsight.models.decoders import SID, Decoder, ImprovedSID, RidgeDecoder
from neuralsight.pretrained import WEIGHTS_ENV, download_allowed, local_imagenet_file
from neuralsight.simulate.retina import simulate_retina
from neuralsight.train import fit
from neuralsight.viz.figures import metric_bars, reconstruction_grid
from neuralsight.viz.report import write_report

console = Console()


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run; `QUICK` is a seconds-long smoke test of the same pipeline."""

    size: int = 32
    n_train_natural: int = 8000
    n_train_deadleaves: int = 4000
    n_test: int = 300
    n_cells: int = 300
    sid_steps: int = 300
    improved_steps: int = 200
    batch_size: int = 64
    base_channels: int = 16
    refiners: int = 3


QUICK = DemoSettings(
    n_train_natural=120,
    n_train_deadleaves=40,
    n_test=20,
    n_cells=40,
    sid_steps=3,
    improved_steps=3,
)


def make_demo_dataset(settings: DemoSettings, seed: int) -> NeuralDataset:
    """Natural crops and dead leaves (train) / crops of held-out photographs (test) -> retina."""
    train = np.concatenate(
        [
            make_stimuli("natural", settings.n_train_natural, size=settings.size, seed=seed),
            make_stimuli("deadleaves", settings.n_train_deadleaves, size=settings.size, seed=seed),
        ]
    )
    test = make_stimuli("natural", settings.n_test, size=settings.size, seed=seed, split="test")
    dataset = simulate_retina(train, test, preset="realistic", n_cells=settings.n_cells, seed=seed)
    dataset.meta["source"] = "natural (train: natural + deadleaves, test: held-out photographs)"
    return dataset


def imagenet_features() -> tuple[AlexNetFeatures | None, str]:
    """An ImageNet AlexNet for the feature metrics, where one is found without a download.

    Returns the extractor (None without weights) and the provenance or the reason it is
    missing.

    Examples
    --------
    >>> extractor, weights = imagenet_features()
    >>> extractor is None or weights.startswith("imagenet:")
    True
    """
    if local_imagenet_file("alexnet") is None and not download_allowed():
        return None, (
            f"skipped: no ImageNet AlexNet weights found; set {WEIGHTS_ENV} to a folder holding "
            "alexnet_features.npz (or torchvision's alexnet-owt-7be5be79.pth) to add them"
        )
    extractor = AlexNetFeatures.from_pretrained(weights="imagenet", device="cpu")
    return extractor, extractor.weights


def _metric_row(record: DecoderScores) -> dict[str, float]:
    """The image metrics and, where computed, the feature metrics of one scored model."""
    return {k: v for k, v in record.row().items() if k != "colourfulness"}


DemoModel = tuple[Callable[[], Decoder], NeuralDataModule, dict[str, Any]]
"""How the demo trains one model: its builder, its DataModule and its training budget."""


def demo_models(dataset: NeuralDataset, settings: DemoSettings, seed: int) -> dict[str, DemoModel]:
    """The demo's models in training order: ridge, SID and the improved SID."""
    datamodule = NeuralDataModule(dataset=dataset, batch_size=settings.batch_size, seed=seed)
    shape: dict[str, Any] = dict(n_inputs=datamodule.n_inputs, image_shape=datamodule.image_shape)
    return {
        "ridge": (lambda: RidgeDecoder(**shape), datamodule, {"max_epochs": 1}),
        "sid": (lambda: SID(**shape), datamodule, {"max_steps": settings.sid_steps}),
        "improved_sid": (
            lambda: ImprovedSID(
                **shape, base_channels=settings.base_channels, refiners=settings.refiners
            ),
            datamodule,
            {"max_steps": settings.improved_steps},
        ),
    }


def run_demo(out: Path, quick: bool = False, seed: int = 0) -> dict[str, dict[str, float]]:
    """Run the demo into ``out`` and return its metrics (also written to ``metrics.json``).

    Examples
    --------
    >>> import tempfile
    >>> metrics = run_demo(Path(tempfile.mkdtemp()), quick=True)  # doctest: +SKIP
    >>> sorted(metrics)  # doctest: +SKIP
    ['improved_sid', 'mean_image', 'ridge', 'shuffled', 'sid']
    """
    settings = QUICK if quick else DemoSettings()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    console.rule("[bold]1. simulate retinal spikes to natural scenes")
    dataset = make_demo_dataset(settings, seed)
    path = dataset.save(out / "dataset.h5")
    console.print(
        f"{path}: {json.dumps({k: v for k, v in dataset.summary().items() if k != 'meta'})}"
    )
    stage_seconds = {"simulate": round(time.perf_counter() - started, 1)}

    models = demo_models(dataset, settings, seed)
    datamodule = models["ridge"][1]
    train_ids = np.unique(datamodule.train_set.stimulus_index)
    extractor, weights = imagenet_features()
    features: AlexNetFeatures | bool = extractor if extractor is not None else False
    scores: dict[str, DecoderScores] = {}
    fingerprint = dataset.fingerprint()
    for name, (build, data, budget) in models.items():
        console.rule(f"[bold]2. train {name} ({', '.join(f'{k}={v}' for k, v in budget.items())})")
        stage_started = time.perf_counter()
        L.seed_everything(seed, verbose=False)  # each model's start and batches: the seed's alone
        model = build()
        fit(model, data, **{"max_epochs": -1, **budget}, out_dir=out, name=name)
        stage_seconds[f"train_{name}"] = round(time.perf_counter() - stage_started, 1)
        scores[name] = score_decoder(
            model, dataset, "test", average_repeats=False, features=features
        )
        save_reconstructions(
            out / f"reconstructions_{name}.npz",
            scores[name].reconstructions,
            scores[name].stimulus_id,
            {
                "model": type(model).__name__,
                "control": data.control,
                "dataset": str(path),
                "dataset_fingerprint": fingerprint,
            },
        )

    console.rule("[bold]3. evaluate on held-out scenes")
    truth = scores["ridge"].targets
    reconstructions = {name: record.reconstructions for name, record in scores.items()}
    test_ids = scores["ridge"].stimulus_id
    reconstructions["mean_image"] = mean_image(dataset, train_ids, len(truth))
    improved = scores["improved_sid"]
    reconstructions["shuffled"] = improved.reconstructions[
        shuffled_pairing(improved.stimulus_id, seed)
    ]
    metrics = {name: _metric_row(record) for name, record in scores.items()}
    for control in ("mean_image", "shuffled"):
        images = reconstructions[control]
        record = score_decoder(
            images, dataset, "test", stimulus_id=test_ids, average_repeats=False, features=features
        )
        metrics[control] = _metric_row(record)
    order = ["ridge", "sid", "improved_sid", "mean_image", "shuffled"]
    metrics = {name: metrics[name] for name in order}
    run = {
        "settings": asdict(settings),
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "stage_seconds": stage_seconds,
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "test_trials": len(truth),
        "feature_weights": weights,
        "dataset": dataset.summary(),
        "note": "single trials; test crops from photographs unseen in training",
    }
    write_metrics_json(out / "metrics.json", metrics)
    write_metrics_json(out / "run.json", run)
    reconstruction_grid(
        {"stimulus": truth, **{name: reconstructions[name] for name in order}},
        out / "reconstructions.png",
        title="Held-out natural scenes decoded from simulated retinal spikes (single trials)",
    )
    metric_bars(metrics, out / "metrics.png", keys=("ssim", "pixcorr", "psnr"))
    _print_table(metrics)
    report = write_report(out)
    console.print(
        f"wrote metrics.json, run.json, reconstructions.png, metrics.png, {report.name} to {out}"
    )
    console.print(f"demo finished in {run['seconds']} s")
    return metrics


TABLE_COLUMNS = (
    "mse",
    "psnr",
    "ssim",
    "pixcorr",
    "corr_conv2",
    "corr_conv5",
    "twoway_conv2",
    "twoway_conv5",
)
"""The printed table's metrics (those a run computed: the feature ones need weights)."""


def _print_table(metrics: dict[str, dict[str, float]]) -> None:
    table = Table(title="held-out test split")
    columns = [key for key in TABLE_COLUMNS if key in metrics["ridge"]]
    for column in ("model", *columns):
        table.add_column(column, justify="right")
    for name, values in metrics.items():
        table.add_row(name, *(f"{values[k]:.4f}" for k in columns))
    console.print(table)
