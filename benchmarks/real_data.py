"""Real recordings: ridge and the published SID on each real data set, next to the shuffle control.

For each data set found under ``--root`` (default ``../shared/data/real`` from the project
root), converted by the library's readers:

- ``dgmm_digit69``: the "69 digits" fMRI set (`neuralsight.data.readers.fmri69`), 90
  training and 10 test images;
- ``miyawaki``: Miyawaki's fMRI patterns (same reader), 107 training and 12 test trials of
  20 distinct images; all 10 distinct test images are also shown in training, so its
  held-out scores measure recognition of seen images, not generalisation;
- ``cowley_v4_<session>``: one macaque V4 session (`neuralsight.data.readers.npz.
  read_npy_images`; per-repeat responses where the folder has them, else repeat-averaged;
  repeats averaged), 20% of the images held out (seeded). One model per session: neuron
  identities differ between sessions. ``--sessions`` picks them (default 190923 and 210225,
  the sessions the original table marks ``test``; ``all`` for the ten).

Every image is resized to ``--size`` (default 32; SID needs a multiple of 16; bilinear with
antialiasing for the 28 x 28 fMRI images, centre crop and bicubic for the 112 x 112 V4
photographs, which stay in colour). Two decoders are trained on the training split, 10% of
its images held out for validation:

- ``ridge``: `RidgeDecoder`, one closed-form epoch, strength chosen on validation;
- ``sid``: the published SID (`SID`, Adam 1e-3, MSE), briefly: ``--sid-steps`` optimizer
  steps of batches of ``--batch-size`` (rounded up to whole epochs), far fewer than the
  reference trains for.

Each is trained twice: on the real pairing and with ``control="shuffle"`` (training and
validation responses paired with the wrong images: the chance level of the pipeline). Both
are scored on the real held-out pairs, repeats of a test image averaged: mean SSIM, mean
PixCorr and two-way identification in pixel space (`twoway_identification` on flattened
pixels; chance 0.5), all from `neuralsight.metrics.score_decoder`.

It prints one JSON document
``{"<dataset>": {"<model>": {"real": {"ssim", "pixcorr", "twoway"}, "shuffled": {...},
"setup": {...}}}}``, ``setup`` holding the sizes, epochs, seconds and notes of that model.

Run it with ``python benchmarks/real_data.py [--sessions all] [--size 32]``; with the
defaults it took 6.5 minutes on two shared CPU cores (one torch thread); with the ten V4
sessions, 27 minutes (two threads). Results: ``benchmarks/results/real_data*.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch

from machine import print_document
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.data.readers import fmri69, npz
from neuralsight.data.sources import resize_images
from neuralsight.metrics import score_decoder
from neuralsight.models.decoders import SID, RidgeDecoder
from neuralsight.train import fit

ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
DEFAULT_SESSIONS = ("190923", "210225")
FMRI_FILES = {
    "dgmm_digit69": Path("dgmm") / "digit69_28x28.mat",
    "miyawaki": Path("miyawaki_braindecoding") / "miyawaki_structured_28x28.mat",
}
NOTES = {
    "miyawaki": "the 10 distinct test images are all shown in training too (20 distinct "
    "images in all): held-out trials, not held-out images",
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resized(ds: NeuralDataset, size: int) -> NeuralDataset:
    """``ds`` with its stimuli resized to ``size x size`` (`resize_images`, bilinear).

    Examples
    --------
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.ones((2, 1, 28, 28)))
    >>> resized(ds, 32).image_shape
    (1, 32, 32)
    """
    if ds.image_shape[1:] == (size, size):
        return ds
    stimuli = resize_images(np.asarray(ds.stimuli), size, mode="bilinear")
    return dataclasses.replace(ds, stimuli=stimuli)


def find_datasets(
    root: Path, sessions: Sequence[str], size: int
) -> dict[str, Callable[[], NeuralDataset]]:
    """Loaders of the real data sets present under ``root``, by name (nothing is read yet)."""
    found: dict[str, Callable[[], NeuralDataset]] = {}
    for name, relative in FMRI_FILES.items():
        if (root / relative).is_file():
            found[name] = lambda path=root / relative: resized(fmri69.read([path]), size)
    v4 = root / "cowley_v4"
    for session in sessions:
        raw = v4 / "responses_raw" / f"responses_{session}.npy"
        averaged = v4 / "responses_repeat_averaged" / f"responses_{session}.npy"
        images = v4 / "images" / f"images_{session}.zip"
        responses = raw if raw.is_file() else averaged
        if responses.is_file() and images.is_file():
            found[f"cowley_v4_{session}"] = lambda r=responses, i=images: npz.read_npy_images(
                [r, i], image_size=size, average_repeats=True, area="V4", show_progress=False
            )
    return found


def train_and_score(
    name: str, ds: NeuralDataset, control: str, args: argparse.Namespace
) -> tuple[dict[str, float], dict]:
    """Train decoder ``name`` (``ridge`` or ``sid``) under ``control``; scores and setup."""
    L.seed_everything(args.seed, verbose=False)
    dm = NeuralDataModule(dataset=ds, batch_size=args.batch_size, control=control, seed=args.seed)
    if name == "ridge":
        model, epochs = RidgeDecoder(dm.n_inputs, dm.image_shape), 1
    else:
        model = SID(dm.n_inputs, dm.image_shape)
        epochs = math.ceil(args.sid_steps / math.ceil(len(dm.train_set) / args.batch_size))
    start = time.perf_counter()
    fit(model, dm, max_epochs=epochs, progress=False, accelerator="cpu")
    setup = {
        "epochs": epochs,
        "train_items": len(dm.train_set),
        "val_items": len(dm.val_set),
        "test_images": len(np.unique(ds.stimulus_id[ds.trials("test")])),
        "fit_seconds": time.perf_counter() - start,
    }
    if name == "ridge":
        setup["alpha"] = float(model.alpha)
    scores = score_decoder(model, ds, features="pixels")
    real = {k: scores.image[k] for k in ("ssim", "pixcorr")}
    return real | {"twoway": scores.features["twoway_pixel"]}, setup


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder of the real data sets")
    parser.add_argument(
        "--sessions", nargs="+", default=list(DEFAULT_SESSIONS), help="V4 sessions, or 'all'"
    )
    parser.add_argument("--size", type=int, default=32, help="image side (a multiple of 16)")
    parser.add_argument("--models", nargs="+", choices=("ridge", "sid"), default=["ridge", "sid"])
    parser.add_argument("--sid-steps", type=int, default=200, help="SID optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size % 16:
        parser.error(f"--size must be a multiple of 16 (SID), got {args.size}")
    if args.sessions == ["all"]:
        args.sessions = sorted(
            p.stem.removeprefix("images_")
            for p in (args.root / "cowley_v4" / "images").glob("*.zip")
        )
    torch.set_num_threads(args.threads)
    common = {
        "image_size": args.size,
        "batch_size": args.batch_size,
        "sid_steps": args.sid_steps,
        "seed": args.seed,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    doc: dict = {}
    for dataset_name, load in find_datasets(args.root, args.sessions, args.size).items():
        _log(f"{dataset_name}: reading")
        ds = load()
        doc[dataset_name] = {}
        for model_name in args.models:
            entry: dict = {}
            for control, key in (("none", "real"), ("shuffle", "shuffled")):
                _log(f"{dataset_name}: {model_name} ({key})")
                entry[key], setup = train_and_score(model_name, ds, control, args)
                entry.setdefault("setup", {"n_units": ds.n_units, **common})
                entry["setup"][f"{key}_fit"] = setup
            if dataset_name in NOTES:
                entry["setup"]["note"] = NOTES[dataset_name]
            doc[dataset_name][model_name] = entry
            _log(f"{dataset_name}: {model_name} {json.dumps(entry['real'])}")
    if not doc:
        _log(f"no real data sets found under {args.root}")
    return print_document(doc)


if __name__ == "__main__":
    main()
