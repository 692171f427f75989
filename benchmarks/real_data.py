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
photographs, which stay in colour). The decoders of ``--models`` (ridge and SID by default)
are trained on the training split, 10% of its images held out for validation:

- ``ridge``: `RidgeDecoder`, one closed-form epoch, strength chosen on validation;
- ``sid``: the published SID (`SID`, Adam 1e-3, MSE), briefly: ``--sid-steps`` optimizer
  steps of batches of ``--batch-size`` (rounded up to whole epochs), far fewer than the
  reference trains for;
- ``feature``: `FeatureDecoder`, ridge to the AlexNet features of ``--prior`` (a
  `FeaturePrior` checkpoint; without it one is trained first, `train_feature_prior` on the
  ``--prior-images`` Caltech-101 training photographs, none of them a V4 stimulus, with an
  ``--prior-low-res`` thumbnail beside the features), then its generator; colour data sets
  only (the fMRI sets are skipped);
- ``inversion``: `EncoderInversionDecoder`, the feature model's estimate moved by
  gradient steps through the prior's generator until the session's `PretrainedCoreEncoder`
  (`train_encoder`, `ENCODER_SETTINGS`, trained on the same pairs under the same control)
  predicts the recorded responses; ``--inversion-option KEY=VALUE`` sets its keyword
  arguments (``steps``, ``lr``, ``anchor_weight``; its ``--feature-option`` too);
- ``mei``: `MonkeySee` with the ``"mei"`` mapping (`MEI_SETTINGS`): the MEIs of the
  session's encoder (`train_encoder`, under the same control) read in each unit's
  response, a U-Net generator trained ``--mei-epochs`` epochs on negative log SSIM and a
  least-squares adversarial term, as MEIcoder; ``--mei-option KEY=VALUE`` overrides; V4
  only (`MEI_MAX_UNITS`);
- ``flig``: `FLIG`, the bidirectional flow, with ``configs/flig_retina.yaml``'s choices
  (`FLIG_SETTINGS`: the CAE's PCA start of the session's own training images, the flow
  from its ridge start, 4 epochs at flow lr 1e-5).

Each is trained twice: on the real pairing and with ``control="shuffle"`` (training and
validation responses paired with the wrong images: the chance level of the pipeline). Both
are scored on the real held-out pairs, repeats of a test image averaged, by
`neuralsight.metrics.score_decoder`: MSE, SSIM, PixCorr, two-way identification in pixel
space (chance 0.5) and, with AlexNet weights from ``--weights`` (default
``../shared/weights``: ImageNet AlexNet conv1-conv5; their provenance is recorded under
``"feature_weights"``), the AlexNet conv1-conv5 layer correlations and two-way
identification on conv2 and conv5 features (Alex(2) / Alex(5)). ``--weights none`` scores
pixels only.

It prints one JSON document ``{"feature_weights": ..., "<dataset>": {"<model>": {"real":
{metric: value}, "shuffled": {...}, "separation": {metric: real - shuffled}, "setup":
{...}}}, "separation_summary": ...}``, ``setup`` holding the sizes, epochs, seconds and notes
of that model; ``separation_summary`` counts, per model and metric, the data sets on which
the real pairing beats its shuffle control (lower MSE, higher everything else);
``paired_tests`` compares each model with ridge over the V4 sessions (median gain, wins,
Wilcoxon signed-rank p); ``feature_prior`` says which prior the feature model used.

Run it with ``python benchmarks/real_data.py [--sessions all] [--size 32]``; with the
defaults (pixel metrics only, before the feature metrics) it took 6.5 minutes on two shared
CPU cores (one torch thread); with the ten V4 sessions, 27 minutes (two threads). Results:
``benchmarks/results/real_data*.json``. Choices between decoders or settings are made with
``--validation`` (`validation_view`: the test images dropped, 20% of the training images
scored in their place), never on the test images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from scipy.stats import wilcoxon

from machine import print_document
from neuralsight.analysis.conditions import feature_extractor
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.data.readers import fmri69, npz
from neuralsight.data.sources import make_stimuli, resize_images
from neuralsight.metrics import AlexNetFeatures, score_decoder
from neuralsight.models.decoders import (
    FLIG,
    SID,
    EncoderInversionDecoder,
    FeatureDecoder,
    MonkeySee,
    RidgeDecoder,
)
from neuralsight.models.decoders.feature import load_feature_prior
from neuralsight.models.encoders import PretrainedCoreEncoder
from neuralsight.train import feature_prior_checkpoint, fit, train_feature_prior

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
ROOT = SHARED / "data" / "real"
WEIGHTS = SHARED / "weights"
PRIOR_IMAGES = SHARED / "data" / "images" / "caltech101"
MODELS = ("ridge", "sid", "feature", "flig", "inversion", "mei")
PRIOR_MODELS = ("feature", "inversion")
"""The models that read the feature prior."""
FLIG_SETTINGS = {"n_features": 256, "cae_epochs": 0, "flow_lr": 1e-5}
"""``configs/flig_retina.yaml``'s choices (PCA start kept, slow flow), trained 4 epochs."""
FLIG_EPOCHS = 4
ENCODER_SETTINGS = {"layer": "conv2", "feature_size": 112, "readout": "factorised"}
"""The encoder the encoder-based decoders read: ``configs/encoder_pretrained_core_v4.yaml``'s
choices (made on validation images by ``benchmarks/real_encoding.py``)."""
ENCODER_EPOCHS = 20
MEI_SETTINGS = {
    "mapping": "mei",
    "feature_weight": 0.0,
    "pixel_weight": 0.0,
    "ssim_weight": 1.0,
    "adversarial_weight": 0.01,
    "adversarial_loss": "least_squares",
    "base_channels": 32,
    "discriminator_channels": 32,
    "lr": 1e-3,
}
"""The MEI decoder's losses (MEIcoder's: SSIM and a least-squares GAN, no VGG term) and size."""
MEI_MAX_UNITS = 256
"""The MEI decoder runs on the V4 sessions (24-70 units); the fMRI sets' thousands of voxels
would each need an MEI and a read-in map."""
PAIRED_METRICS = ("ssim", "pixcorr", "twoway_pixel", "twoway_conv2", "twoway_conv5")
PIXEL_METRICS = ("mse", "ssim", "pixcorr")
LOWER_IS_BETTER = ("mse",)
DEFAULT_SESSIONS = ("190923", "210225")
SUMMARIES = ("separation_summary", "paired_tests")
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


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(KEY, VALUE parsed as YAML)``.

    Examples
    --------
    >>> key_value("thumbnail_strength=own"), key_value("match_variance=false")
    (('thumbnail_strength', 'own'), ('match_variance', False))
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, found {text!r}")
    return key, yaml.safe_load(value)


def validation_view(ds: NeuralDataset, fraction: float = 0.2, seed: int = 0) -> NeuralDataset:
    """The training trials alone, a seeded ``fraction`` of their images relabelled ``test``.

    Design choices are scored on this view (``--validation``): the test images are dropped
    before anything is fitted, so choosing on it never looks at them.

    Examples
    --------
    >>> ds = NeuralDataset.from_arrays(np.ones((10, 2), np.float32), np.ones((10, 1, 2, 2)),
    ...                                split=["train"] * 8 + ["test"] * 2)
    >>> view = validation_view(ds, fraction=0.25)
    >>> view.n_trials, int((view.split == "test").sum())
    (8, 2)
    """
    train = ds.trials("train")
    stimuli = np.unique(ds.stimulus_id[train])
    rng = np.random.default_rng(seed)
    held = rng.choice(stimuli, size=max(1, round(fraction * len(stimuli))), replace=False)
    view = ds.select_trials(train)
    split = np.where(np.isin(view.stimulus_id, held), "test", "train")
    return dataclasses.replace(view, split=split)


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


def separation(real: dict[str, float], shuffled: dict[str, float]) -> dict[str, float]:
    """``real - shuffled`` for every metric (for MSE, lower is better: a negative gap)."""
    return {k: real[k] - shuffled[k] for k in real}


def beats_control(gap: float, metric: str) -> bool:
    """Whether a real-minus-shuffled gap favours the real pairing."""
    return gap < 0 if metric in LOWER_IS_BETTER else gap > 0


def separation_summary(doc: dict) -> dict:
    """Per model and metric: on how many data sets the real pairing beats its shuffle control.

    Examples
    --------
    >>> doc = {"a": {"ridge": {"separation": {"mse": -0.1, "ssim": 0.2}}},
    ...        "b": {"ridge": {"separation": {"mse": 0.1, "ssim": 0.1}}}}
    >>> separation_summary(doc)["ridge"]
    {'mse': '1/2', 'ssim': '2/2'}
    """
    wins: dict[str, dict[str, list[bool]]] = {}
    for entries in doc.values():
        for model, entry in entries.items():
            for metric, gap in entry.get("separation", {}).items():
                wins.setdefault(model, {}).setdefault(metric, []).append(beats_control(gap, metric))
    return {
        model: {metric: f"{sum(won)}/{len(won)}" for metric, won in metrics.items()}
        for model, metrics in wins.items()
    }


def prepare_prior(args: argparse.Namespace, folder: Path) -> dict:
    """The feature model's prior: ``--prior``, or one trained now on ``--prior-root``'s images.

    Sets ``args.prior`` to the checkpoint and returns what it is (layer, weights, images,
    seconds). The photographs are Caltech-101's training split by default: none is a
    stimulus of any V4 session, so no test image can leak into the prior.
    """
    if args.prior is None:
        _log(f"training the feature prior on {args.prior_root}")
        start = time.perf_counter()
        images = make_stimuli(
            "folder",
            args.prior_images,
            size=args.size,
            channels=3,
            seed=args.seed,
            root=args.prior_root,
            split="train",
        )
        train_feature_prior(
            images,
            layer=args.prior_layer,
            weights=args.weights,
            epochs=args.prior_epochs,
            seed=args.seed,
            low_res=args.prior_low_res,
            out_dir=folder,
            progress=False,
        )
        args.prior = feature_prior_checkpoint(folder)
        seconds = round(time.perf_counter() - start, 1)
        trained = {"images": len(images), "root": str(args.prior_root), "seconds": seconds}
    else:
        trained = {"checkpoint": str(args.prior)}
    hp = load_feature_prior(args.prior).hparams
    keys = (
        "layer",
        "weights",
        "weights_provenance",
        "feature_size",
        "in_shape",
        "image_shape",
        "width",
        "low_res",
    )
    return trained | {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items() if k in keys}


def paired_tests(doc: dict, rival: str = "ridge") -> dict:
    """Each model against ``rival`` over the V4 sessions: median gain, wins, Wilcoxon p.

    Per metric of `PAIRED_METRICS`: the median over sessions of model minus rival on the
    real pairing, on how many sessions the model is higher, and the two-sided Wilcoxon
    signed-rank p-value (``None`` with fewer than two sessions).

    Examples
    --------
    >>> doc = {f"cowley_v4_{i}": {"ridge": {"real": {"ssim": 0.1}},
    ...                           "feature": {"real": {"ssim": 0.2 + i / 100}}} for i in range(6)}
    >>> test = paired_tests(doc)["feature vs ridge"]["ssim"]
    >>> test["wins"], test["p_wilcoxon"] < 0.05
    ('6/6', True)
    """
    sessions = {k: v for k, v in doc.items() if k.startswith("cowley_v4_") and rival in v}
    models = sorted({m for entries in sessions.values() for m in entries if m != rival})
    tests: dict = {}
    for model in models:
        pairs = [e for e in sessions.values() if model in e]
        for metric in PAIRED_METRICS:
            if not pairs or metric not in pairs[0][model]["real"]:
                continue
            gains = np.array([e[model]["real"][metric] - e[rival]["real"][metric] for e in pairs])
            p = float(wilcoxon(gains).pvalue) if len(gains) > 1 else None
            tests.setdefault(f"{model} vs {rival}", {})[metric] = {
                "median_gain": float(np.median(gains)),
                "wins": f"{int((gains > 0).sum())}/{len(gains)}",
                "p_wilcoxon": p,
            }
    return tests


def train_encoder(dm: NeuralDataModule, args: argparse.Namespace, folder: Path) -> Path:
    """The session's `PretrainedCoreEncoder` trained on ``dm``'s training pairs; its checkpoint.

    Under ``dm``'s control: with shuffled pairs the encoder learns the shuffled pairing, so
    the decoders built on it get no information the control denies them.
    """
    if args.weights == "none":
        raise SystemExit("the encoder-based decoders need AlexNet weights (--weights)")
    L.seed_everything(args.seed, verbose=False)
    encoder = PretrainedCoreEncoder(
        dm.n_inputs, dm.image_shape, weights=args.weights, seed=args.seed, **ENCODER_SETTINGS
    )
    fit(
        encoder,
        dm,
        max_epochs=ENCODER_EPOCHS,
        out_dir=folder,
        name="encoder",
        progress=False,
        accelerator="cpu",
    )
    return folder / "checkpoints" / "encoder.ckpt"


def train_and_score(
    name: str,
    ds: NeuralDataset,
    control: str,
    args: argparse.Namespace,
    extractor: AlexNetFeatures | None,
) -> tuple[dict[str, float], dict]:
    """Train decoder ``name`` (one of `MODELS`) under ``control``; scores and setup."""
    L.seed_everything(args.seed, verbose=False)
    dm = NeuralDataModule(dataset=ds, batch_size=args.batch_size, control=control, seed=args.seed)
    encoder_seconds = None
    scratch = tempfile.TemporaryDirectory(prefix="real_data_encoder_")
    if name == "ridge":
        model, epochs = RidgeDecoder(dm.n_inputs, dm.image_shape), 1
    elif name == "feature":
        options = dict(args.feature_option)
        model = FeatureDecoder(dm.n_inputs, dm.image_shape, prior=str(args.prior), **options)
        epochs = 1
    elif name == "inversion":
        start = time.perf_counter()
        options = dict(args.feature_option) | dict(args.inversion_option)
        encoder = train_encoder(dm, args, Path(scratch.name))
        model = EncoderInversionDecoder(
            dm.n_inputs, dm.image_shape, prior=str(args.prior), encoder=str(encoder), **options
        )
        encoder_seconds = time.perf_counter() - start
        epochs = 1
    elif name == "mei":
        start = time.perf_counter()
        encoder = train_encoder(dm, args, Path(scratch.name))
        options = MEI_SETTINGS | {"rf_seed": args.seed} | dict(args.mei_option)
        model = MonkeySee(dm.n_inputs, dm.image_shape, mei_encoder=str(encoder), **options)
        encoder_seconds, epochs = time.perf_counter() - start, args.mei_epochs
    elif name == "flig":
        model, epochs = FLIG(dm.n_inputs, dm.image_shape, **FLIG_SETTINGS), FLIG_EPOCHS
    else:
        model = SID(dm.n_inputs, dm.image_shape)
        epochs = math.ceil(args.sid_steps / math.ceil(len(dm.train_set) / args.batch_size))
    start = time.perf_counter()
    clip = {"gradient_clip_val": 1.0} if name == "flig" else {}
    fit(model, dm, max_epochs=epochs, progress=False, accelerator="cpu", **clip)
    scratch.cleanup()
    setup = {
        "epochs": epochs,
        "train_items": len(dm.train_set),
        "val_items": len(dm.val_set),
        "test_images": len(np.unique(ds.stimulus_id[ds.trials("test")])),
        "fit_seconds": time.perf_counter() - start,
    }
    if name in ("ridge", *PRIOR_MODELS):
        setup["alpha"] = float(model.alpha)
    if encoder_seconds is not None:
        setup["encoder_seconds"] = encoder_seconds
    start = time.perf_counter()
    scores = score_decoder(model, ds, features=extractor or "pixels")
    setup["score_seconds"] = time.perf_counter() - start
    metrics = {k: scores.image[k] for k in PIXEL_METRICS}
    features = scores.features or {}
    metrics |= {k: float(v) for k, v in features.items() if k.startswith(("corr_", "twoway_"))}
    return metrics, setup


def add_model_option(parser: argparse.ArgumentParser, flag: str, what: str) -> None:
    """A repeatable ``flag KEY=VALUE`` (`key_value`) that gathers one model's keyword
    arguments."""
    parser.add_argument(
        flag,
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what} (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder of the real data sets")
    parser.add_argument(
        "--sessions", nargs="+", default=list(DEFAULT_SESSIONS), help="V4 sessions, or 'all'"
    )
    parser.add_argument("--size", type=int, default=32, help="image side (a multiple of 16)")
    parser.add_argument(
        "--weights",
        default=str(WEIGHTS),
        help="AlexNet weights for the feature metrics (load_pretrained's policy), or 'none'",
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["ridge", "sid"])
    parser.add_argument(
        "--prior", type=Path, default=None, help="FeaturePrior checkpoint of the feature model"
    )
    parser.add_argument(
        "--prior-root", type=Path, default=PRIOR_IMAGES, help="its photographs, without --prior"
    )
    parser.add_argument("--prior-layer", default="conv5", help="AlexNet layer it inverts")
    parser.add_argument("--prior-epochs", type=int, default=15)
    parser.add_argument(
        "--prior-low-res", type=int, default=8, help="side of its image thumbnail (0: none)"
    )
    parser.add_argument("--prior-images", type=int, default=6095, help="the Caltech train split")
    parser.add_argument("--sid-steps", type=int, default=200, help="SID optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    add_model_option(
        parser, "--feature-option", "a FeatureDecoder keyword argument, value parsed as YAML"
    )
    add_model_option(
        parser,
        "--inversion-option",
        "an EncoderInversionDecoder keyword argument (steps, lr, anchor_weight)",
    )
    parser.add_argument("--mei-epochs", type=int, default=40, help="MEI decoder epochs")
    add_model_option(parser, "--mei-option", "a MonkeySee keyword argument of the MEI decoder")
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="print one document from these runs' documents instead of running",
    )
    parser.add_argument(
        "--no-control", action="store_true", help="skip the shuffle control (for --validation)"
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score on 20%% of the training images instead of the test images (for choices)",
    )
    return parser


def skip_reason(model_name: str, ds: NeuralDataset, prior_shape: tuple) -> str | None:
    """Why ``model_name`` does not run on ``ds`` (``None``: it runs).

    Examples
    --------
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 300), np.float32), np.zeros((2, 3, 4, 4), np.float32))
    >>> skip_reason("mei", ds, (3, 4, 4)), skip_reason("ridge", ds, ())
    ('300 units, one MEI each is too many', None)
    """
    if model_name in PRIOR_MODELS and ds.image_shape != prior_shape:
        return f"no feature prior for images {ds.image_shape}"
    if model_name == "mei" and ds.n_units > MEI_MAX_UNITS:
        return f"{ds.n_units} units, one MEI each is too many"
    return None


def combine(paths: Sequence[Path]) -> dict:
    """One document from several runs' (e.g. sessions split over two processes).

    Each data set's models are merged (a model already taken from an earlier file is kept),
    and the summaries are computed again over all of them. The runs must share their
    feature weights and prior.

    Examples
    --------
    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     doc = {"feature_weights": "w", "feature_prior": {}, f"cowley_v4_{i}": {
    ...         "ridge": {"real": {"ssim": 0.1}}, "x": {"real": {"ssim": 0.2}}}}
    ...     _ = (folder / f"{i}.json").write_text(json.dumps(doc))
    >>> merged = combine([folder / "0.json", folder / "1.json"])
    >>> merged["paired_tests"]["x vs ridge"]["ssim"]["wins"]
    '2/2'
    """
    docs = [json.loads(Path(p).read_text()) for p in paths]
    shared = ("feature_weights", "feature_prior")
    for key in shared:
        found = {json.dumps(d.get(key), sort_keys=True) for d in docs}
        if len(found) > 1:
            raise SystemExit(f"--combine: the runs differ in {key!r}: {sorted(found)}")
    merged: dict = {}
    for doc in docs:
        for name, models in doc.items():
            if isinstance(models, dict) and name not in (*shared, *SUMMARIES):
                merged[name] = models | merged.get(name, {})
    summary = {
        "separation_summary": separation_summary(merged),
        "paired_tests": paired_tests(merged),
    }
    return {key: docs[0].get(key) for key in shared} | merged | summary


def model_entry(
    name: str,
    ds: NeuralDataset,
    args: argparse.Namespace,
    extractor: AlexNetFeatures | None,
    common: dict,
) -> dict:
    """Decoder ``name`` on ``ds``, real and (unless ``--no-control``) shuffled: its entry."""
    controls = [("none", "real")] + ([] if args.no_control else [("shuffle", "shuffled")])
    entry: dict = {"setup": {"n_units": ds.n_units, **common}}
    for control, key in controls:
        _log(f"{ds.source or 'dataset'}: {name} ({key})")
        entry[key], entry["setup"][f"{key}_fit"] = train_and_score(
            name, ds, control, args, extractor
        )
    if "shuffled" in entry:
        entry["separation"] = separation(entry["real"], entry["shuffled"])
    return entry


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.combine:
        return print_document(combine(args.combine))
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
        "scored_on": "validation images" if args.validation else "test images",
        "feature_options": dict(args.feature_option),
        "inversion_options": dict(args.inversion_option),
        "mei_options": MEI_SETTINGS | dict(args.mei_option),
        "mei_epochs": args.mei_epochs,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    extractor = None if args.weights == "none" else feature_extractor(args.weights)
    doc: dict = {}
    with tempfile.TemporaryDirectory(prefix="feature_prior_") as folder:
        wanted = set(PRIOR_MODELS) & set(args.models)
        prior = prepare_prior(args, Path(folder)) if wanted else {}
        prior_shape = tuple(prior.get("image_shape", ()))
        for dataset_name, load in find_datasets(args.root, args.sessions, args.size).items():
            _log(f"{dataset_name}: reading")
            ds = validation_view(load(), seed=args.seed) if args.validation else load()
            doc[dataset_name] = {}
            for model_name in args.models:
                reason = skip_reason(model_name, ds, prior_shape)
                if reason:
                    _log(f"{dataset_name}: {reason}, skipped")
                    continue
                entry = model_entry(model_name, ds, args, extractor, common)
                if dataset_name in NOTES:
                    entry["setup"]["note"] = NOTES[dataset_name]
                doc[dataset_name][model_name] = entry
                _log(f"{dataset_name}: {model_name} {json.dumps(entry['real'])}")
    if not doc:
        _log(f"no real data sets found under {args.root}")
    weights = extractor.weights if extractor is not None else "none"
    summary = {"separation_summary": separation_summary(doc), "paired_tests": paired_tests(doc)}
    return print_document({"feature_weights": weights, "feature_prior": prior, **doc, **summary})


if __name__ == "__main__":
    main()
