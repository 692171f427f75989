"""SID's generalisation claim, measured: one simulated retina, three image sets, every metric.

The SID paper (Zhang et al. 2020) claims that with a spike encoder the decoder generalises
to arbitrary scenes (MNIST, CIFAR-10, CIFAR-100). Here one retina (`simulate_retina`,
preset ``"realistic"``, the same mosaic for every set: same seed, cells and image size)
sees three image sets, each as ``--size`` x ``--size`` grey images
(`neuralsight.data.sources.make_stimuli`):

- ``mnist``: MNIST's own train / test split, from the gzipped IDX files in
  ``../shared/data/images/mnist``;
- ``cifar10``: the CIFAR-10 test split's 10,000 JPEGs (``cifar10_test_jpg.zip``, read as a
  ``folder``: every 10th file, in path order, is test and the rest train, since the zip
  holds no training split);
- ``caltech101``: Caltech-101 object photographs, split by its ``train.txt`` / ``test.txt``
  (test images are whole photographs never seen in training), centre-cropped.

``--n-train`` training and ``--n-test`` test images of each set (a seeded subset); 10% of
the training images are held out for validation (every choice inside a model uses them).
For each set, three decoders are trained on that set alone:

- ``ridge``: `RidgeDecoder`, one closed-form epoch (its strength chosen on validation);
- ``sid``: the published SID (``configs/sid_retina_natural.yaml``'s model, batch
  ``--batch-size``);
- ``improved_sid``: our improved SID (``configs/improved_sid_retina_natural.yaml``'s model).

The two learned decoders train for ``--minutes`` of wall-clock time each (Lightning's
``max_time``; the same budget for both), validated four times an epoch: each result keeps
the validation-loss curve and says whether it ``converged`` (the best loss of the last
quarter of the curve within 1% of the best before it). Each decoder is scored on the held-
out images of its own set and, when trained on ``--train-on`` (the photographs), on the
held-out images of every other set. Beside each: the ``mean_image`` control (the mean of the
decoder's training images) and the ``shuffled`` control (ridge trained with training
responses paired with the wrong images; a shuffled SID would cost another budget per set).

Every metric comes from `neuralsight.metrics.score_decoder` with one `AlexNetFeatures` of
ImageNet weights (``--weights``, default ``../shared/weights``; the provenance is recorded):
MSE, PSNR, SSIM, PixCorr, AlexNet conv1-conv5 layer correlations and two-way identification
on pixels, conv2 and conv5 (chance 0.5).

It prints one JSON document ``{"settings", "data", "feature_weights", "cells": {"<train
set>/<model>": {"train": {...}, "test": {"<test set>": {metric: value}}}}, "seconds"}``.
After each cell the document so far is written to ``--checkpoint``; ``--resume`` skips the
cells it holds (with the same settings). Sets whose files are missing are skipped (listed
under ``"skipped"``). A smoke run of seconds: ``--set mnist=digits --set cifar10=natural
--set caltech101=natural --n-train 60 --n-test 10 --cells 20 --minutes 0.05 --weights
random --feature-size 64``. The full run: ``python benchmarks/sid_generalisation.py >
benchmarks/results/sid_generalisation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from machine import describe_machine, print_document
from neuralsight.analysis.conditions import feature_extractor
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.data.sources import folder_split, make_stimuli
from neuralsight.lightning_cli import load_config
from neuralsight.metrics import AlexNetFeatures, mean_image, score_decoder
from neuralsight.models.decoders import SID, ImprovedSID, RidgeDecoder
from neuralsight.simulate import simulate_retina
from neuralsight.train import fit

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT / ".." / "shared"
IMAGES = SHARED / "data" / "images"
LEARNED = {"sid": SID, "improved_sid": ImprovedSID}
MODELS = ("ridge", "ridge_shuffled", "mean_image", *LEARNED)
CONVERGENCE_TOLERANCE = 0.01
"""A curve has converged when its last quarter improves on the best before it by less."""


@dataclass(frozen=True)
class ImageSet:
    """Where one image set comes from: a `make_stimuli` source and its ``root``."""

    source: str
    root: str | None = None

    def available(self) -> bool:
        """Whether the set's files are present (sources without a root always are)."""
        return self.root is None or Path(self.root).exists()

    def split_size(self, split: str) -> int | None:
        """Files in a ``folder`` split (None for sources that draw repeatedly)."""
        if self.source != "folder":
            return None
        return len(folder_split(self.root)[0][split])


SETS = {
    "mnist": ImageSet("mnist", str(IMAGES / "mnist")),
    "cifar10": ImageSet("folder", str(IMAGES / "cifar10_test_jpg.zip")),
    "caltech101": ImageSet("folder", str(IMAGES / "caltech101")),
}


def _log(message: str) -> None:
    print(f"[sid_generalisation] {message}", file=sys.stderr, flush=True)


def config_model(name: str) -> dict:
    """The model arguments of ``configs/<name>.yaml``."""
    return dict(load_config(PROJECT / "configs" / f"{name}.yaml").model)


CONFIGS = {
    "sid": config_model("sid_retina_natural"),
    "improved_sid": config_model("improved_sid_retina_natural"),
}


def parse_set(text: str) -> tuple[str, ImageSet]:
    """``name=source[:root]`` -> ``(name, ImageSet)`` (``--set``).

    Examples
    --------
    >>> parse_set("mnist=digits")
    ('mnist', ImageSet(source='digits', root=None))
    """
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise argparse.ArgumentTypeError(f"--set wants name=source[:root], found {text!r}")
    source, _, root = spec.partition(":")
    return name, ImageSet(source, root or None)


def images_of(image_set: ImageSet, n: int, split: str, args: argparse.Namespace) -> np.ndarray:
    """``n`` grey images of one split (all of a folder split when it holds fewer)."""
    size = image_set.split_size(split)
    n = n if size is None else min(n, size)
    return make_stimuli(
        image_set.source, n, size=args.size, seed=args.seed, split=split, root=image_set.root
    )


def simulate_sets(sets: dict[str, ImageSet], args: argparse.Namespace) -> dict[str, NeuralDataset]:
    """One recording per set, all from the same retina (checked: identical mosaics)."""
    recordings = {}
    for name, image_set in sets.items():
        train = images_of(image_set, args.n_train, "train", args)
        test = images_of(image_set, args.n_test, "test", args)
        _log(f"{name}: simulating {len(train)} train and {len(test)} test images")
        recordings[name] = simulate_retina(train, test, n_cells=args.cells, seed=args.seed)
    mosaics = [ds.units for ds in recordings.values()]
    if any(not mosaic.equals(mosaics[0]) for mosaic in mosaics[1:]):
        raise RuntimeError("the image sets were shown to different retinas")
    return recordings


def summary_of(ds: NeuralDataset) -> dict:
    """A recording's summary without its simulator parameters (recorded once, in settings)."""
    return {k: v for k, v in ds.summary().items() if k != "meta"} | {
        "simulator": {k: ds.meta[k] for k in ("simulator", "preset", "cell_model", "seed")}
    }


class ValidationCurve(L.Callback):
    """Keeps ``(step, val_loss)`` at every validation and how the run ended."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []
        self.epochs = 0

    def on_validation_end(self, trainer, pl_module) -> None:
        """Record the validation loss (not during the sanity check)."""
        if not trainer.sanity_checking and "val_loss" in trainer.callback_metrics:
            loss = float(trainer.callback_metrics["val_loss"])
            self.points.append((int(trainer.global_step), round(loss, 6)))

    def on_fit_end(self, trainer, pl_module) -> None:
        """Record the epochs run (a partial last epoch counts)."""
        self.epochs = trainer.current_epoch


def converged(losses: Sequence[float], tolerance: float = CONVERGENCE_TOLERANCE) -> bool:
    """Whether the last quarter of a loss curve no longer improves on the best before it.

    Examples
    --------
    >>> converged([1.0, 0.5, 0.4, 0.399]), converged([1.0, 0.8, 0.6, 0.4])
    (True, False)
    """
    if len(losses) < 4:
        return False
    cut = len(losses) - max(1, len(losses) // 4)
    before, after = min(losses[:cut]), min(losses[cut:])
    return (before - after) / before < tolerance


def train_decoder(name: str, ds: NeuralDataset, args: argparse.Namespace):
    """Train ``ridge``, ``ridge_shuffled``, ``sid`` or ``improved_sid`` on ``ds``; model, record."""
    L.seed_everything(args.seed, verbose=False)
    control = "shuffle" if name == "ridge_shuffled" else "none"
    dm = NeuralDataModule(dataset=ds, batch_size=args.batch_size, control=control, seed=args.seed)
    record: dict = {"train_trials": len(dm.train_set), "val_trials": len(dm.val_set)}
    start = time.perf_counter()
    if name in LEARNED:
        curve = ValidationCurve()
        model = LEARNED[name](dm.n_inputs, dm.image_shape, **CONFIGS[name])
        fit(
            model,
            dm,
            max_epochs=10_000,
            max_time={"seconds": round(args.minutes * 60)},
            val_check_interval=0.25,
            callbacks=[curve],
            progress=False,
        )
        losses = [loss for _, loss in curve.points]
        record |= {
            "config": CONFIGS[name],
            "budget_minutes": args.minutes,
            "epochs": curve.epochs,
            "val_curve": curve.points,
            "converged": converged(losses),
        }
    else:
        model = fit(RidgeDecoder(dm.n_inputs, dm.image_shape), dm, max_epochs=1, progress=False)
        record["alpha"] = float(model.alpha)
    record["train_seconds"] = round(time.perf_counter() - start, 1)
    return model, record


def rounded(row: dict) -> dict:
    """Scores rounded to 4 decimals."""
    return {k: round(float(v), 4) for k, v in row.items()}


def score_on(
    model, train_ds: NeuralDataset, test_ds: NeuralDataset, extractor: AlexNetFeatures
) -> dict:
    """Every metric of a decoder (or of ``"mean_image"``: the mean training image) on the
    held-out images of ``test_ds``."""
    if model == "mean_image":
        test_ids = np.unique(test_ds.stimulus_id[test_ds.trials("test")])
        train_ids = np.unique(train_ds.stimulus_id[train_ds.trials("train")])
        images = mean_image(train_ds, train_ids, len(test_ids))
        scores = score_decoder(images, test_ds, stimulus_id=test_ids, features=extractor)
    else:
        scores = score_decoder(model, test_ds, features=extractor)
    return rounded(scores.row())


def load_checkpoint(path: Path, settings: dict) -> dict:
    """The cells of an earlier run with the same settings (``--resume``)."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("settings") != settings:
        raise ValueError(
            f"{path}: field 'settings' differs from this run's ({saved.get('settings')} vs "
            f"{settings}); remove the file or run without --resume"
        )
    return saved["cells"]


def write_checkpoint(path: Path, doc: dict) -> None:
    """Write the document so far whole (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(doc, indent=1))
    os.replace(temporary, path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line: sets, sizes, budget, weights, checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        type=parse_set,
        help="replace an image set: name=source[:root] (e.g. mnist=digits)",
    )
    parser.add_argument("--train-on", default="caltech101", help="the set tested across sets")
    parser.add_argument("--n-train", type=int, default=6000, help="training images per set")
    parser.add_argument("--n-test", type=int, default=300, help="held-out images per set")
    parser.add_argument("--size", type=int, default=32, help="image side (a multiple of 16)")
    parser.add_argument("--cells", type=int, default=300, help="simulated ganglion cells")
    parser.add_argument("--minutes", type=float, default=8.0, help="budget per learned decoder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default=str(SHARED / "weights"), help="AlexNet weights")
    parser.add_argument(
        "--feature-size", type=int, default=224, help="AlexNet input side (224 as published)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=PROJECT / "outputs" / "sid_generalisation.partial.json",
        help="the document so far, rewritten after every cell",
    )
    parser.add_argument("--resume", action="store_true", help="skip the checkpoint's cells")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Simulate, train and score every cell, and print the JSON document."""
    load_before = os.getloadavg()
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    started = time.perf_counter()
    sets = SETS | dict(args.sets or [])
    skipped = {name: s.root for name, s in sets.items() if not s.available()}
    sets = {name: s for name, s in sets.items() if name not in skipped}
    settings = {
        k: v for k, v in vars(args).items() if k not in ("checkpoint", "resume", "threads")
    } | {"sets": {name: vars(s) for name, s in sets.items()}}
    cells = load_checkpoint(args.checkpoint, settings) if args.resume else {}
    extractor = feature_extractor(args.weights, input_size=args.feature_size)
    recordings = simulate_sets(sets, args)
    doc = {
        "benchmark": "sid_generalisation",
        "settings": settings,
        "feature_weights": extractor.weights,
        "skipped": skipped,
        "data": {name: summary_of(ds) for name, ds in recordings.items()},
        "cells": cells,
    }
    for train_name, train_ds in recordings.items():
        tests = list(recordings) if train_name == args.train_on else [train_name]
        for model_name in MODELS:
            key = f"{train_name}/{model_name}"
            if key in cells:
                continue
            _log(f"{key}: training")
            if model_name == "mean_image":
                model, record = "mean_image", {}
            else:
                model, record = train_decoder(model_name, train_ds, args)
            scores = {
                test: score_on(model, train_ds, recordings[test], extractor) for test in tests
            }
            cells[key] = {"train": record, "test": scores}
            _log(f"{key}: {json.dumps({t: s['ssim'] for t, s in scores.items()})} (SSIM)")
            write_checkpoint(args.checkpoint, doc)
    doc["machine"] = describe_machine(load_before)
    doc["seconds"] = round(time.perf_counter() - started, 1)
    return print_document(doc)


if __name__ == "__main__":
    main()
