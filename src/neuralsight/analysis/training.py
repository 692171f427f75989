"""Training and loading MonkeySee models for the analyses, from the same YAML configs.

The analyses that train (single-area models, loss ablations) read the same LightningCLI
configs as ``neuralsight fit`` (``configs/monkeysee_*.yaml``), so their models are the
published ones:

- ``model.init_args`` become `MonkeySee` keyword arguments (``n_inputs``, ``image_shape``
  and the units come from the data set);
- ``data``: ``batch_size``, ``val_fraction``, ``average_repeats``, ``num_workers``,
  ``shuffle`` and ``control`` go to the `NeuralDataModule` (``path`` is replaced by the data
  set the analysis is given);
- ``trainer``: `TRAINER_KEYS` go to the Trainer (one device; ``default_root_dir`` is the
  analysis folder);
- ``seed_everything`` seeds the run.

Command-line flags (``--max-epochs``, ``--max-steps``, ``--batch-size``, ``-o KEY=VALUE``
model options) override the config. Checkpoints are loaded with `load_monkeysee`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import yaml

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.data.dataset import NeuralDataset
from neuralsight.models.decoders.base import Decoder
from neuralsight.models.decoders.monkeysee import MonkeySee, unit_info
from neuralsight.train import fit

MONKEYSEE_CLASS = "neuralsight.models.decoders.MonkeySee"
DATA_KEYS = ("batch_size", "val_fraction", "average_repeats", "num_workers", "shuffle", "control")
TRAINER_KEYS = (
    "max_epochs",
    "max_steps",
    "accelerator",
    "precision",
    "limit_train_batches",
    "limit_val_batches",
)
DEFAULT_DATA = {"batch_size": 8, "val_fraction": 0.05, "average_repeats": True}
DEFAULT_MAX_EPOCHS = 10
DERIVED_MODEL_KEYS = ("n_inputs", "image_shape")


@dataclass(frozen=True)
class TrainingSettings:
    """What an analysis trains with: model options, DataModule options, Trainer options, seed.

    Examples
    --------
    >>> settings = TrainingSettings(model={"mapping": "dense"})
    >>> settings.data["batch_size"], settings.trainer["max_epochs"]
    (8, 10)
    """

    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_DATA))
    trainer: dict[str, Any] = field(default_factory=lambda: {"max_epochs": DEFAULT_MAX_EPOCHS})
    seed: int = 0

    def with_model(self, **options: Any) -> TrainingSettings:
        """A copy with some model options changed."""
        return replace(self, model={**self.model, **options})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``run.json``."""
        return {"model": self.model, "data": self.data, "trainer": self.trainer, "seed": self.seed}


def load_config(path: str | os.PathLike) -> TrainingSettings:
    """`TrainingSettings` from a MonkeySee LightningCLI YAML config.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(path, "w").write(
    ...     "model:\\n  class_path: neuralsight.models.decoders.MonkeySee\\n"
    ...     "  init_args: {mapping: dense}\\ndata: {path: x.h5, batch_size: 4}\\n"
    ...     "trainer: {max_epochs: 2, devices: auto}\\n")
    >>> settings = load_config(path)
    >>> settings.model, settings.data["batch_size"], settings.trainer
    ({'mapping': 'dense'}, 4, {'max_epochs': 2})
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a config must be a YAML mapping, found {type(config).__name__}")
    model = config.get("model") or {}
    class_path = model.get("class_path", MONKEYSEE_CLASS)
    if class_path != MONKEYSEE_CLASS:
        raise ValueError(
            f"{path}: field 'model.class_path' must be {MONKEYSEE_CLASS!r} for the MonkeySee "
            f"analyses, found {class_path!r}"
        )
    init_args = {
        k: v for k, v in (model.get("init_args") or {}).items() if k not in DERIVED_MODEL_KEYS
    }
    data = {k: v for k, v in (config.get("data") or {}).items() if k in DATA_KEYS}
    trainer = {k: v for k, v in (config.get("trainer") or {}).items() if k in TRAINER_KEYS}
    return TrainingSettings(
        model=init_args,
        data={**DEFAULT_DATA, **data},
        trainer=trainer or {"max_epochs": DEFAULT_MAX_EPOCHS},
        seed=int(config.get("seed_everything") or 0),
    )


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
    """Settings from a config (or the defaults), with command-line overrides applied.

    ``max_steps`` alone trains for that many optimiser steps (no epoch limit); both given,
    training stops at the first reached. Note that MonkeySee with its discriminator makes
    two optimiser steps per batch.

    Examples
    --------
    >>> s = training_settings(model_options={"mapping": "dense"}, max_steps=4, batch_size=2)
    >>> s.model, s.trainer, s.data["batch_size"]
    ({'mapping': 'dense'}, {'max_epochs': -1, 'max_steps': 4}, 2)
    """
    settings = load_config(config) if config is not None else TrainingSettings()
    trainer = dict(settings.trainer)
    if max_steps is not None:
        trainer |= {"max_steps": int(max_steps), "max_epochs": -1}
    if max_epochs is not None:
        trainer["max_epochs"] = int(max_epochs)
    if accelerator is not None:
        trainer["accelerator"] = accelerator
    data = dict(settings.data)
    if batch_size is not None:
        data["batch_size"] = int(batch_size)
    if num_workers is not None:
        data["num_workers"] = int(num_workers)
    return TrainingSettings(
        model={**settings.model, **(model_options or {})},
        data=data,
        trainer=dict(sorted(trainer.items())),
        seed=settings.seed if seed is None else int(seed),
    )


def build_monkeysee(dataset: NeuralDataset, settings: TrainingSettings) -> MonkeySee:
    """The untrained `MonkeySee` that `train_monkeysee` starts from.

    The units' areas, arrays, RFs and bin edges come from ``dataset`` (`unit_info`);
    ``settings.model`` overrides any of them (``rf_x=None`` starts every learned field at a
    random place).

    Examples
    --------
    >>> from neuralsight.simulate.cortex import simulate_cortex
    >>> images = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    >>> ds = simulate_cortex(images, arrays={"V1": 1}, electrodes_per_array=4, mode="window",
    ...                      progress=False)
    >>> settings = training_settings(model_options={"mapping": "end_to_end", "rf_x": None,
    ...     "feature_weight": 0, "base_channels": 4, "discriminator_channels": 4})
    >>> set(build_monkeysee(ds, settings).learned_fields()["initialised"])
    {'random'}
    """
    return MonkeySee(
        n_inputs=dataset.n_units * dataset.n_bins,
        image_shape=dataset.image_shape,
        **{**unit_info(dataset), **settings.model},
    )


def train_monkeysee(
    dataset: NeuralDataset,
    settings: TrainingSettings,
    out: str | os.PathLike | None = None,
    name: str = "monkeysee",
    progress: bool = True,
) -> MonkeySee:
    """Train a `MonkeySee` on ``dataset`` with ``settings``; returns it in eval mode.

    With ``out`` the checkpoint is written to ``out/checkpoints/<name>.ckpt`` and a CSV log
    to ``out/logs/<name>`` (`neuralsight.train.make_trainer`).

    Examples
    --------
    >>> from neuralsight.simulate.cortex import simulate_cortex
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((10, 3, 32, 32), dtype=np.float32)
    >>> ds = simulate_cortex(images[:8], images[8:], arrays={"V1": 1}, electrodes_per_array=4,
    ...                      mode="window", progress=False)
    >>> settings = training_settings(model_options={"feature_weight": 0, "base_channels": 4,
    ...     "discriminator_channels": 4}, max_steps=2, batch_size=4)
    >>> train_monkeysee(ds, settings, progress=False).reconstruct(ds).shape  # doctest: +SKIP
    (2, 3, 32, 32)
    """
    L.seed_everything(settings.seed, verbose=False)
    datamodule = NeuralDataModule(dataset=dataset, seed=settings.seed, **settings.data)
    model = build_monkeysee(dataset, settings)
    trainer = dict(settings.trainer)
    max_epochs = trainer.pop("max_epochs", DEFAULT_MAX_EPOCHS)
    return fit(
        model,
        datamodule,
        max_epochs=max_epochs,
        out_dir=out,
        name=name,
        progress=progress,
        **trainer,
    )


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
            path, map_location="cpu", weights_only=False, vgg_weights="random"
        )
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
    if areas is not None and list(model.hparams.area) != areas:
        raise ValueError(
            f"{where}: the model was trained on other units (areas {_counts(model.hparams.area)}, "
            f"the data set's {_counts(areas)}); give the data set it was trained on"
        )
    if not np.allclose(model.hparams.bin_edges_ms, dataset.bin_edges_ms):
        raise ValueError(
            f"{where}: the model was trained on bins {model.hparams.bin_edges_ms[0]:g} to "
            f"{model.hparams.bin_edges_ms[-1]:g} ms ({len(model.hparams.bin_edges_ms) - 1}), "
            f"the data set has {dataset.bin_edges_ms[0]:g} to {dataset.bin_edges_ms[-1]:g} ms "
            f"({dataset.n_bins})"
        )


def _counts(areas: list[str]) -> dict[str, int]:
    return {a: list(areas).count(a) for a in dict.fromkeys(areas)}
