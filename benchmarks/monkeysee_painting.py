"""What the spatial MonkeySee's inverse retinotopic map keeps of the responses, measured.

The spatial model paints each electrode on the pixel nearest its receptive-field (RF)
centre, one channel per array; electrodes of one array on one pixel are summed. On a small
image many electrodes share a pixel, and what told them apart (orientation, polarity,
colour) is lost before the generator sees it. This benchmark measures that loss with a
linear read-out, so that no training budget enters:

1. **Data.** The simulated cortex of ``monkeysee_cpu.py`` (same defaults and seed: natural
   colour crops, TVSD layout, window mode, ``--n-train`` training images, ``--n-test``
   unseen test images x ``--repeats-test``).
2. **Painted responses.** For each painting grid of ``--grids`` pixels square, the
   z-scored responses summed per (array, pixel), as the spatial model's input channels hold
   them; ``pixel_fraction`` is `neuralsight.analysis.painted_pixel_fraction` per area.
3. **Read-out.** The closed-form `RidgeDecoder` (strength chosen on 10% of the training
   images) from the raw responses and from each painted set, scored on the test split
   (repeats averaged) at ``--size``: MSE, SSIM, PixCorr.

The decoded images stay ``--size`` pixels at every grid, so only the painting changes.
Prints one JSON document ``{"machine", "settings", "results"}``. Run it with

    python benchmarks/monkeysee_painting.py > benchmarks/results/monkeysee_painting.json  # ~40 s
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from machine import describe_run, print_document
from monkeysee_cpu import SOURCES, make_dataset, train_ridge
from neuralsight.analysis import painted_pixel_fraction, painted_pixels
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.metrics import score_decoder
from neuralsight.models.decoders import ResponseScaler


def pixel_groups(units: pd.DataFrame, grid: int) -> np.ndarray:
    """``[units, groups]`` one-hot: which (array, painted pixel) each electrode joins."""
    keys = pd.MultiIndex.from_arrays([units["array"].to_numpy(), painted_pixels(units, grid)])
    group, _ = pd.factorize(keys)
    return np.eye(group.max() + 1, dtype=np.float32)[group]


def zscored(dataset: NeuralDataset) -> np.ndarray:
    """``[trials, units * bins]`` responses z-scored by every training trial's mean and SD,
    as a decoder scales them (`NeuralDataModule.response_stats`, `ResponseScaler`)."""
    datamodule = NeuralDataModule(dataset=dataset, val_fraction=0.0)
    datamodule.setup("fit")
    scaler = ResponseScaler(datamodule.n_inputs, "zscore")
    scaler.fit(datamodule.response_stats())
    return scaler(torch.as_tensor(np.asarray(dataset.responses, dtype=np.float32))).numpy()


def with_responses(dataset: NeuralDataset, responses: np.ndarray) -> NeuralDataset:
    """The same trials and stimuli with other ``[trials, features]`` responses."""
    return NeuralDataset.from_arrays(
        responses,
        np.asarray(dataset.stimuli),
        stimulus_id=dataset.stimulus_id,
        split=dataset.split,
    )


def ridge_scores(dataset: NeuralDataset, seed: int) -> dict[str, float]:
    """Ridge trained on the training split, pixel metrics on the test split (`score_decoder`)."""
    scores = score_decoder(train_ridge(dataset, seed), dataset).image
    return {k: scores[k] for k in ("mse", "ssim", "pixcorr")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate once, then read out the raw and every painted set of responses."""
    dataset = make_dataset(args)
    responses = zscored(dataset)
    results: dict[str, Any] = {
        "raw": {"features": dataset.n_units, **ridge_scores(dataset, args.seed)}
    }
    for grid in args.grids:
        painted = responses @ pixel_groups(dataset.units, grid)
        results[f"painted_{grid}"] = {
            "features": painted.shape[1],
            "pixel_fraction": painted_pixel_fraction(dataset.units, grid),
            **ridge_scores(with_responses(dataset, painted), args.seed),
        }
    return results


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="decoded image side")
    parser.add_argument("--grids", type=int, nargs="+", default=[32, 64, 96])
    parser.add_argument("--n-train", type=int, default=22000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--repeats-test", type=int, default=10)
    parser.add_argument("--electrodes", type=int, default=64, help="electrodes per array")
    parser.add_argument("--layout", choices=("tvsd", "spread"), default="tvsd")
    parser.add_argument("--source", choices=SOURCES, default="natural", help="stimuli")
    parser.add_argument("--root", default=None, help="the image folder of --source folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.set_defaults(mode="window")  # make_dataset's time axis: one window per area
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    doc: dict[str, Any] = {"benchmark": "monkeysee_painting", "settings": vars(args)}
    doc["results"] = run(args)
    doc["machine"] = describe_run(started, load_before)
    return print_document(doc)


if __name__ == "__main__":
    main()
