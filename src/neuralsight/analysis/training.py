"""What the analyses that train read: any decoder's YAML config, with command-line overrides.

The analyses that train (single-area models, loss ablations) read the same LightningCLI
configs as ``neuralsight fit`` (``configs/*.yaml``) with the same loader
(`neuralsight.lightning_cli.load_config`), so their models are the published ones, and
train them with `neuralsight.lightning_cli.train_model`. `training_settings` adds what an
analysis changes: the data set it is given replaces ``data.path``, it trains on one device
into its own folder (``trainer.devices`` and ``trainer.default_root_dir`` are dropped), and
command-line flags (``--max-epochs``, ``--max-steps``, ``--batch-size``, ``-o KEY=VALUE``
model options) override the config. Without a config the model is MonkeySee.
`require_decoder` says clearly when a config's model cannot serve an analysis. Checkpoints
are loaded with `load_monkeysee`.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.lightning_cli import (
    DATA_SOURCE_KEYS,
    TrainingSettings,
    load_config,
    model_class,
)
from neuralsight.models.decoders.base import Decoder
from neuralsight.models.decoders.monkeysee import MonkeySee
from neuralsight.train import UNSAFE_CHECKPOINT

MONKEYSEE_CLASS = "neuralsight.models.decoders.MonkeySee"
DEFAULT_DATA = {"batch_size": 8, "val_fraction": 0.05, "average_repeats": True}
DEFAULT_MAX_EPOCHS = 10
ANALYSIS_DROPS_TRAINER = ("devices", "default_root_dir")
"""Trainer settings an analysis replaces: one device, its own output folder."""


def _overrides(
    config: str | os.PathLike | None,
    model_options: dict[str, Any] | None,
    trainer: dict[str, Any],
    data: dict[str, Any],
    seed: int | None,
) -> dict[str, Any]:
    """The flags as a nested mapping in the config's layout, for `load_config`."""
    model: dict[str, Any] = {"init_args": dict(model_options or {})}
    if config is None:
        model["class_path"] = MONKEYSEE_CLASS
    overrides: dict[str, Any] = {"model": model, "trainer": trainer, "data": data}
    if seed is not None:
        overrides["seed_everything"] = int(seed)
    return {key: value for key, value in overrides.items() if value}


def training_settings(
    config: str | os.PathLike | None = None,
    model_options: dict[str, Any] | None = None,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    accelerator: str | None = None,
    seed: int | None = None,
) -> TrainingSettings:
    """Settings from a config (or MonkeySee's defaults), with command-line overrides applied.

    ``max_steps`` alone trains for that many optimiser steps (no epoch limit); both given,
    training stops at the first reached. Note that MonkeySee with its discriminator makes
    two optimiser steps per batch. The analyses' defaults (`DEFAULT_DATA`, 10 epochs) fill
    what the config leaves out.

    Examples
    --------
    >>> s = training_settings(model_options={"mapping": "dense"}, max_steps=4, batch_size=2)
    >>> s.model_class, s.model, s.trainer, s.data["batch_size"]
    ('neuralsight.models.decoders.MonkeySee', {'mapping': 'dense'}, {'max_epochs': -1, 'max_steps': 4}, 2)
    """
    trainer: dict[str, Any] = {}
    if max_steps is not None:
        trainer |= {"max_steps": int(max_steps), "max_epochs": -1}
    if max_epochs is not None:
        trainer["max_epochs"] = int(max_epochs)
    if accelerator is not None:
        trainer["accelerator"] = accelerator
    data = {"batch_size": batch_size, "num_workers": num_workers}
    data = {key: int(value) for key, value in data.items() if value is not None}
    settings = load_config(config, _overrides(config, model_options, trainer, data, seed))
    trainer = {"max_epochs": DEFAULT_MAX_EPOCHS, **settings.trainer}
    return TrainingSettings(
        model_class=settings.model_class,
        model=settings.model,
        data={**DEFAULT_DATA, **_without(settings.data, DATA_SOURCE_KEYS)},
        trainer=dict(sorted(_without(trainer, ANALYSIS_DROPS_TRAINER).items())),
        seed=settings.seed,
    )


def _without(options: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in keys}


def require_decoder(settings: TrainingSettings, analysis: str) -> type[Decoder]:
    """The decoder class of ``settings``, or a clear error: ``analysis`` scores reconstructions.

    Examples
    --------
    >>> require_decoder(TrainingSettings("neuralsight.models.encoders.LNEncoder"), "ablation")
    Traceback (most recent call last):
    ...
    ValueError: ablation scores reconstructed images and needs a decoder; model.class_path 'neuralsight.models.encoders.LNEncoder' is not one (a Decoder subclass)
    """
    cls = model_class(settings)
    if not issubclass(cls, Decoder):
        raise ValueError(
            f"{analysis} scores reconstructed images and needs a decoder; model.class_path "
            f"{settings.model_class!r} is not one (a Decoder subclass)"
        )
    return cls


def load_monkeysee(checkpoint: str | os.PathLike) -> MonkeySee:
    """A trained `MonkeySee` from a Lightning checkpoint, on the CPU, in eval mode.

    The model restores itself from its hyperparameters (units, RFs, bin edges). The VGG19
    of the feature loss is used only in training and is not in the checkpoint; it is built
    with random weights here, so loading never reads or downloads ImageNet weights.

    Examples
    --------
    >>> load_monkeysee("outputs/monkeysee_spatial/checkpoints/model.ckpt")  # doctest: +SKIP
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file does not exist")
    try:
        model = MonkeySee.load_from_checkpoint(
            path, map_location="cpu", weights_only=True, vgg_weights="random"
        )
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: refused: {UNSAFE_CHECKPOINT} ({error})") from error
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: is not a MonkeySee checkpoint ({error})") from error
    if not model.built:
        raise ValueError(
            f"{path}: the MonkeySee in this checkpoint was never built (its units are unknown); "
            "save checkpoints after training starts"
        )
    return model.eval()


def check_matches(model: Decoder, dataset: NeuralDataset) -> None:
    """Raise a clear error unless ``model`` decodes ``dataset``'s units and bins.

    Every decoder must take ``n_units * n_bins`` inputs; a `MonkeySee` must also have the
    dataset's units' areas in the same order and its bin edges.

    Examples
    --------
    >>> import numpy as np
    >>> from neuralsight.models.decoders import RidgeDecoder
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> check_matches(RidgeDecoder(3, (1, 4, 4)), ds)
    >>> check_matches(RidgeDecoder(5, (1, 4, 4)), ds)
    Traceback (most recent call last):
    ...
    ValueError: dataset: the decoder takes 5 inputs but the data set has 3 units x 1 bins = 3
    """
    where = dataset.source or "dataset"
    n_inputs = dataset.n_units * dataset.n_bins
    if model.n_inputs != n_inputs:
        raise ValueError(
            f"{where}: the decoder takes {model.n_inputs} inputs but the data set has "
            f"{dataset.n_units} units x {dataset.n_bins} bins = {n_inputs}"
        )
    if model.image_shape != dataset.image_shape:
        raise ValueError(
            f"{where}: the decoder makes images of shape {model.image_shape}, the data set's "
            f"stimuli have shape {dataset.image_shape}"
        )
    if not isinstance(model, MonkeySee):
        return
    areas = [str(a) for a in dataset.units["area"]] if "area" in dataset.units else None
    if areas is not None and list(model.hparams["area"]) != areas:
        raise ValueError(
            f"{where}: the model was trained on other units (areas {_counts(model.hparams['area'])}, "
            f"the data set's {_counts(areas)}); give the data set it was trained on"
        )
    if not np.allclose(model.hparams["bin_edges_ms"], dataset.bin_edges_ms):
        raise ValueError(
            f"{where}: the model was trained on bins {model.hparams['bin_edges_ms'][0]:g} to "
            f"{model.hparams['bin_edges_ms'][-1]:g} ms ({len(model.hparams['bin_edges_ms']) - 1}), "
            f"the data set has {dataset.bin_edges_ms[0]:g} to {dataset.bin_edges_ms[-1]:g} ms "
            f"({dataset.n_bins})"
        )


def _counts(areas: list[str]) -> dict[str, int]:
    return {a: list(areas).count(a) for a in dict.fromkeys(areas)}
