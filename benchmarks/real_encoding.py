"""Real V4 encoding: LN, CNN and frozen-AlexNet-core encoders on the ten Cowley V4 sessions.

For each Cowley V4 session found under ``--root`` (default ``../shared/data/real``; the
files and the held-out 20% of the images are those of ``benchmarks/real_data.py``, whose
`find_datasets` reads them; repeats averaged), the encoders of ``--encoders`` (default the first three below) are trained on the same
training images, 10% of them carved out for validation (`NeuralDataModule`, seeded), for a
fixed number of epochs, Poisson loss:

- ``ln``: `LNEncoder` on the images resized to ``--size`` (default 32);
- ``cnn``: `CNNEncoder` (3 conv layers, Gaussian readout) on the same images;
- ``pretrained_core``: `PretrainedCoreEncoder`, a frozen AlexNet (weights from
  ``--weights``, default ``../shared/weights``; provenance recorded under ``"weights"``)
  read at one of ``--layers``, on the images at ``--feature-size`` (default 112, the
  photographs' own size). The layer is chosen per session by `choose_layer`: one encoder
  per layer, the best mean correlation on the validation images wins; the test images are
  not used for the choice;
- ``flig`` (only when ``--encoders`` names it): `FLIG`'s encoding direction, the model
  trained as ``real_data.py`` trains it for decoding (`FLIG_SETTINGS`, `FLIG_EPOCHS`,
  gradients clipped at 1) on the ``--size`` images.

Each is scored on the held-out test images by `neuralsight.metrics.score_encoder`:
per-unit Pearson r against the repeat-averaged response and, for the session with
per-repeat responses (210325), the noise ceiling and FEVE from its repeats. The document
gives per session and encoder the per-unit r, their median and mean, FEVE where there are
repeats, the seconds and (pretrained core) every layer's validation r; ``summary`` the
medians over sessions and over all units pooled; ``paired_tests`` the pretrained core
against each other encoder and against the better of them (the one with the higher median
of session medians): wins and two-sided Wilcoxon signed-rank p over the sessions' median r
(paired by session) and over all units' r (paired by unit).

Run it with ``nice -n 10 python benchmarks/real_encoding.py --sessions all --threads 1``
(11.4 minutes on two shared CPU cores); results: ``benchmarks/results/real_encoding*.json``
(``_epochs_60``: LN and CNN trained three times longer; ``_factorised``: ``--readout
factorised``, the better readout: median r 0.579 against 0.449).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon

from machine import describe_run, print_document
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.data.readers import npz
from neuralsight.metrics import score_encoder
from neuralsight.metrics.encoding import per_unit_correlation
from neuralsight.models.decoders import FLIG
from neuralsight.models.encoders import CNNEncoder, Encoder, LNEncoder, choose_layer
from neuralsight.train import fit
from real_data import FLIG_EPOCHS, FLIG_SETTINGS, ROOT, WEIGHTS, find_datasets, resized

ENCODERS = ("ln", "cnn", "pretrained_core", "flig")
DEFAULT_ENCODERS = ("ln", "cnn", "pretrained_core")
PRETRAINED = "pretrained_core"
NATIVE_SIZE = 112
"""Side of the Cowley V4 photographs."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def all_sessions(root: Path) -> list[str]:
    """The Cowley V4 sessions whose images are under ``root``."""
    images = root / "cowley_v4" / "images"
    return sorted(p.stem.removeprefix("images_") for p in images.glob("images_*.zip"))


def repeats_dataset(root: Path, session: str, size: int) -> NeuralDataset | None:
    """The session's per-repeat trials (same images and test split), where the file exists."""
    raw = root / "cowley_v4" / "responses_raw" / f"responses_{session}.npy"
    images = root / "cowley_v4" / "images" / f"images_{session}.zip"
    if not raw.is_file():
        return None
    return npz.read_npy_images([raw, images], image_size=size, area="V4", show_progress=False)


def held_out_predictions(model: Encoder, ds: NeuralDataset) -> tuple[np.ndarray, np.ndarray]:
    """Predictions ``[n_test_images, n_units, n_bins]`` and their stimulus ids."""
    ids = np.unique(ds.stimulus_id[ds.trials("test")])
    return model.predict_responses(np.asarray(ds.stimuli[ids])), ids


def score(model: Encoder, ds: NeuralDataset, repeats: NeuralDataset | None, seconds: float) -> dict:
    """Per-unit r on the test images (repeat-averaged) and, with ``repeats``, FEVE."""
    predicted, ids = held_out_predictions(model, ds)
    scores = score_encoder(predicted, ds, split="test", stimulus_id=ids).metrics
    trials = ds.trials("test")
    order = np.searchsorted(ids, ds.stimulus_id[trials])
    recorded = np.asarray(ds.responses[trials]).reshape(len(trials), -1)
    r = per_unit_correlation(predicted.reshape(len(ids), -1)[order], recorded)
    entry = {"median_r": float(np.median(r)), "mean_r": float(r.mean()), "per_unit_r": r.tolist()}
    entry["score_encoder"] = scores
    if repeats is not None:
        entry["with_repeats"] = score_encoder(
            predicted, repeats, split="test", stimulus_id=ids
        ).metrics
    entry["fit_seconds"] = round(seconds, 1)
    return entry


def train_pixel_encoder(name: str, dm: NeuralDataModule, args: argparse.Namespace) -> Encoder:
    """LN or CNN encoder trained for ``--epochs``, or FLIG as ``real_data.py`` trains it."""
    torch.manual_seed(args.seed)
    if name == "flig":
        flig = FLIG(dm.n_inputs, dm.image_shape, **FLIG_SETTINGS)
        fit(
            flig,
            dm,
            max_epochs=FLIG_EPOCHS,
            progress=False,
            accelerator="cpu",
            gradient_clip_val=1.0,
        )
        return flig.eval()
    if name == "ln":
        model: Encoder = LNEncoder(dm.n_inputs, dm.image_shape)
    else:
        model = CNNEncoder(dm.n_inputs, dm.image_shape, seed=args.seed)
    return fit(model, dm, max_epochs=args.epochs, progress=False, accelerator="cpu")


def run_session(name: str, ds: NeuralDataset, args: argparse.Namespace) -> dict:
    """Train and score the three encoders on one session."""
    session = name.removeprefix("cowley_v4_")
    repeats = repeats_dataset(args.root, session, args.size)
    small = resized(ds, args.size)
    modules = {
        key: NeuralDataModule(
            dataset=data, batch_size=args.batch_size, val_fraction=args.val_fraction, seed=args.seed
        )
        for key, data in (("small", small), ("full", ds))
    }
    for dm in modules.values():
        dm.setup("fit")
    entry: dict = {
        "n_units": ds.n_units,
        "train_images": len(modules["full"].train_set),
        "val_images": len(modules["full"].val_set),
        "test_images": len(np.unique(ds.stimulus_id[ds.trials("test")])),
        "repeats": None if repeats is None else len(repeats.trials("test")),
        "encoders": {},
    }
    for encoder in [e for e in args.encoders if e != PRETRAINED]:
        _log(f"{name}: {encoder}")
        start = time.perf_counter()
        model = train_pixel_encoder(encoder, modules["small"], args)
        entry["encoders"][encoder] = score(model, small, repeats, time.perf_counter() - start)
        _log(f"{name}: {encoder} median r {entry['encoders'][encoder]['median_r']:.3f}")
    if PRETRAINED in args.encoders:
        entry["encoders"][PRETRAINED], entry["weights"] = pretrained_entry(
            name, modules["full"], ds, repeats, args
        )
    return entry


def pretrained_entry(
    name: str,
    dm: NeuralDataModule,
    ds: NeuralDataset,
    repeats: NeuralDataset | None,
    args: argparse.Namespace,
) -> tuple[dict, str]:
    """The pretrained core at the layer `choose_layer` picks on validation; its weights."""
    _log(f"{name}: {PRETRAINED}, layers {args.layers}")
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    train = functools.partial(fit, max_epochs=args.core_epochs, progress=False, accelerator="cpu")
    choice = choose_layer(
        dm,
        train,
        args.layers,
        weights=args.weights,
        feature_size=args.feature_size,
        readout=args.readout,
        seed=args.seed,
    )
    result = score(choice.model, ds, repeats, time.perf_counter() - start)
    result |= {"layer": choice.layer, "val_r": choice.val_r, "layer_seconds": choice.seconds}
    _log(f"{name}: {PRETRAINED} ({choice.layer}) median r {result['median_r']:.3f}")
    return result, choice.model.core_weights


def _wilcoxon(gains: np.ndarray) -> float | None:
    return float(wilcoxon(gains).pvalue) if len(gains) > 1 and np.any(gains != 0) else None


def compare(sessions: dict, model: str, rival: str) -> dict:
    """``model`` against ``rival``: wins and Wilcoxon p over sessions and over units.

    Examples
    --------
    >>> sessions = {str(i): {"encoders": {
    ...     "a": {"median_r": 0.5 + i / 100, "per_unit_r": [0.5, 0.6 + i / 100]},
    ...     "b": {"median_r": 0.4, "per_unit_r": [0.4, 0.5]}}} for i in range(6)}
    >>> test = compare(sessions, "a", "b")
    >>> test["sessions"]["wins"], test["sessions"]["p_wilcoxon"] < 0.05
    ('6/6', True)
    """
    entries = [s["encoders"] for s in sessions.values()]
    by_session = np.array([e[model]["median_r"] - e[rival]["median_r"] for e in entries])
    by_unit = np.concatenate(
        [np.subtract(e[model]["per_unit_r"], e[rival]["per_unit_r"]) for e in entries]
    )
    return {
        level: {
            "median_gain": float(np.median(gains)),
            "wins": f"{int((gains > 0).sum())}/{len(gains)}",
            "p_wilcoxon": _wilcoxon(gains),
        }
        for level, gains in (("sessions", by_session), ("units", by_unit))
    }


def summarise(sessions: dict) -> tuple[dict, dict]:
    """Medians per encoder, and the paired tests of the pretrained core."""
    summary: dict = {}
    present = [e for e in ENCODERS if all(e in s["encoders"] for s in sessions.values())]
    for encoder in present:
        medians = [s["encoders"][encoder]["median_r"] for s in sessions.values()]
        units = np.concatenate([s["encoders"][encoder]["per_unit_r"] for s in sessions.values()])
        feve = [
            s["encoders"][encoder]["with_repeats"]["mean_feve"]
            for s in sessions.values()
            if "with_repeats" in s["encoders"][encoder]
        ]
        summary[encoder] = {
            "median_of_session_median_r": float(np.median(medians)),
            "median_unit_r_pooled": float(np.median(units)),
            "mean_unit_r_pooled": float(units.mean()),
            "n_units": int(units.size),
            "mean_feve_sessions_with_repeats": feve,
        }
    if PRETRAINED not in present:
        return summary, {}
    summary["chosen_layers"] = {k: s["encoders"][PRETRAINED]["layer"] for k, s in sessions.items()}
    rivals = [e for e in present if e != PRETRAINED]
    tests: dict = {
        f"{PRETRAINED} vs {rival}": compare(sessions, PRETRAINED, rival) for rival in rivals
    }
    if rivals:
        tests["best_other"] = max(rivals, key=lambda e: summary[e]["median_of_session_median_r"])
    return summary, tests


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder of the real data sets")
    parser.add_argument("--sessions", nargs="+", default=["all"], help="V4 sessions, or 'all'")
    parser.add_argument("--size", type=int, default=32, help="image side of the LN and CNN")
    parser.add_argument("--feature-size", type=int, default=NATIVE_SIZE, help="AlexNet's input")
    parser.add_argument(
        "--encoders", nargs="+", choices=ENCODERS, default=list(DEFAULT_ENCODERS), help="which"
    )
    parser.add_argument("--layers", nargs="+", default=["conv2", "conv3", "conv4", "conv5"])
    parser.add_argument("--readout", choices=("gaussian", "factorised"), default="gaussian")
    parser.add_argument("--weights", default=str(WEIGHTS), help="AlexNet weights (load_pretrained)")
    parser.add_argument("--epochs", type=int, default=20, help="LN and CNN epochs")
    parser.add_argument("--core-epochs", type=int, default=20, help="pretrained-core epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    torch.set_num_threads(args.threads)
    sessions_asked = all_sessions(args.root) if args.sessions == ["all"] else args.sessions
    found = {
        name: load
        for name, load in find_datasets(args.root, sessions_asked, NATIVE_SIZE).items()
        if name.startswith("cowley_v4_")
    }
    sessions: dict = {}
    for name, load in found.items():
        _log(f"{name}: reading")
        sessions[name] = run_session(name, load(), args)
    doc: dict = {
        "benchmark": "real_encoding",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "weights": sorted({s["weights"] for s in sessions.values() if "weights" in s}),
        "sessions": sessions,
    }
    if sessions:
        doc["summary"], doc["paired_tests"] = summarise(sessions)
    else:
        doc["skipped"] = f"no Cowley V4 session found under {args.root}"
        _log(doc["skipped"])
    doc["machine"] = describe_run(started, load_before)
    return print_document(doc)


if __name__ == "__main__":
    main()
