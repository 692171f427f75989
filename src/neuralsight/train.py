"""The training path: one Trainer factory for the API, the CLI, the analyses and benchmarks.

`make_trainer` builds a ``lightning.Trainer`` with neuralsight's defaults (`TRAINER_DEFAULTS`,
which LightningCLI's ``neuralsight fit`` uses too, and third-party noise silenced:
`neuralsight.quiet`); `fit` trains a model with it, for scripts and notebooks. YAML configs
become models and Trainers through `neuralsight.lightning_cli.load_config`. Checkpoints are
read with ``weights_only=True`` only (tensors and plain values: a crafted file cannot run
code); `UNSAFE_CHECKPOINT` says why one was refused. `RunCheckpoint` is the checkpoint
callback of ``neuralsight fit``: it keeps ``last.ckpt`` (every epoch and, for long epochs,
every N training steps) with the random number generators' states, so a killed run resumes
with ``--ckpt_path last`` where it stopped. `train_feature_prior` trains the image prior of
the feature-space decoder on unlabelled photographs (no neural data).
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any, Literal, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.metrics.features import ALEXNET_INPUT_SIZE
from neuralsight.models.decoders.feature import (
    FeaturePrior,
    alexnet_features,
    feature_shape,
    prior_targets,
)
from neuralsight.quiet import silence_third_party

UNSAFE_CHECKPOINT = (
    "it holds Python objects other than tensors and plain values, which could run code when "
    "unpickled; neuralsight loads checkpoints with weights_only=True only"
)
"""Why a checkpoint that ``torch.load(..., weights_only=True)`` refuses is not loaded."""

TRAINER_DEFAULTS: dict[str, Any] = {
    "accelerator": "auto",
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}
"""Trainer arguments every neuralsight Trainer starts from (API and ``neuralsight fit``)."""

RNG_STATES_KEY = "neuralsight_rng_states"
"""Checkpoint key of the generators' states `RunCheckpoint` saves and restores."""


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and PyTorch's global generators, as plain values.

    Only tensors, ints, floats, strings and tuples, so a checkpoint holding them still loads
    with ``weights_only=True``; `set_rng_states` puts them back.

    Examples
    --------
    >>> states = rng_states()
    >>> first = torch.rand(1)
    >>> set_rng_states(states)
    >>> bool(torch.rand(1) == first)
    True
    """
    legacy = cast(tuple, np.random.get_state())  # noqa: NPY002 (the global generator's)
    name, keys, position, has_gauss, cached = legacy
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the generators' states `rng_states` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RunCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint` that also keeps a resumable ``last.ckpt``.

    ``last.ckpt`` is rewritten (atomically) at the end of every epoch and, when
    ``last_every_n_train_steps`` is set, every that many optimizer steps, so a killed run
    loses at most one epoch or that many steps. It holds the generators' states
    (`rng_states`) as well as the weights, optimizer and loop counters, and the loggers are
    flushed with it, so a run resumed from an epoch's end with ``--ckpt_path last`` ends
    with the weights of an uninterrupted run of the same seed and one log. A resume from a
    mid-epoch ``last.ckpt`` starts that epoch's batches again (Lightning warns: a plain
    DataLoader cannot say where it was), so it is close to, not equal to, an uninterrupted
    run. Every other argument is `ModelCheckpoint`'s (``save_last`` is on).

    Examples
    --------
    >>> callback = RunCheckpoint(last_every_n_train_steps=500)
    >>> callback.save_last, callback.last_every_n_train_steps
    (True, 500)
    """

    def __init__(
        self,
        last_every_n_train_steps: int | None = None,
        save_last: bool | Literal["link"] = True,
        enable_version_counter: bool = False,
        **kwargs: Any,
    ) -> None:
        if last_every_n_train_steps is not None and last_every_n_train_steps < 1:
            raise ValueError(
                f"last_every_n_train_steps must be a positive number of steps or None, "
                f"found {last_every_n_train_steps}"
            )
        super().__init__(
            save_last=save_last, enable_version_counter=enable_version_counter, **kwargs
        )
        self.last_every_n_train_steps = last_every_n_train_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        """Save ``last.ckpt`` every ``last_every_n_train_steps`` steps (and what the base saves)."""
        super().on_train_batch_end(trainer, pl_module, *args)
        steps = self.last_every_n_train_steps
        if steps and trainer.global_step % steps == 0 and trainer.global_step > 0:
            if not self._should_skip_saving_checkpoint(trainer):
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint):
        """Add the generators' states to every checkpoint written; flush the loggers.

        The flush writes the metrics logged so far (a CSV logger holds up to 100 steps in
        memory), so a run killed after this checkpoint keeps its log up to it.
        """
        checkpoint[RNG_STATES_KEY] = rng_states()
        for logger in trainer.loggers:
            logger.save()
        return super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint):
        """Restore the generators' states when a run resumes."""
        if RNG_STATES_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_STATES_KEY])
        return super().on_load_checkpoint(trainer, pl_module, checkpoint)


def make_trainer(
    max_epochs: int = 10,
    out_dir: str | os.PathLike | None = None,
    name: str = "model",
    progress: bool = True,
    **trainer_kwargs,
) -> L.Trainer:
    """A `lightning.Trainer` with neuralsight's defaults.

    With ``out_dir`` the best checkpoint is written to ``out_dir/checkpoints/<name>.ckpt``
    and metrics to a CSV log under ``out_dir/logs/<name>``; without it nothing is written.
    Several models may share one ``out_dir``. It trains on one device unless ``devices``
    says otherwise; any other ``trainer_kwargs`` (``logger`` included) override the
    defaults. Lightning's banners and known third-party warnings are silenced
    (`neuralsight.quiet`); its progress bar stays.

    Examples
    --------
    >>> trainer = make_trainer(max_epochs=1, progress=False)
    >>> trainer.max_epochs
    1
    """
    silence_third_party()
    callbacks = list(trainer_kwargs.pop("callbacks", None) or [])
    logger: L.pytorch.loggers.Logger | bool = False
    if out_dir is not None:
        out_dir = Path(out_dir)
        callbacks.append(
            ModelCheckpoint(dirpath=out_dir / "checkpoints", filename=name, save_top_k=1)
        )
        logger = L.pytorch.loggers.CSVLogger(out_dir / "logs", name=name, version="")
    options = {
        **TRAINER_DEFAULTS,
        "devices": 1,
        "logger": logger,
        "enable_checkpointing": out_dir is not None,
        "enable_progress_bar": progress,
        **trainer_kwargs,
    }
    return L.Trainer(max_epochs=max_epochs, callbacks=callbacks, **options)


def fit(
    model: L.LightningModule,
    datamodule: NeuralDataModule,
    max_epochs: int = 10,
    out_dir: str | os.PathLike | None = None,
    name: str = "model",
    progress: bool = True,
    **trainer_kwargs,
) -> L.LightningModule:
    """Train ``model`` on ``datamodule`` and return it (in eval mode).

    Examples
    --------
    >>> import numpy as np
    >>> from neuralsight.data import NeuralDataset
    >>> from neuralsight.models.decoders import RidgeDecoder
    >>> ds = NeuralDataset.from_arrays(np.random.rand(50, 8).astype("float32"),
    ...                                np.random.rand(50, 1, 4, 4).astype("float32"))
    >>> dm = NeuralDataModule(dataset=ds)
    >>> model = fit(RidgeDecoder(dm.n_inputs, dm.image_shape), dm, max_epochs=1, progress=False)
    >>> model.reconstruct(ds, split="train").shape
    (50, 1, 4, 4)
    """
    trainer = make_trainer(max_epochs, out_dir, name, progress, **trainer_kwargs)
    trainer.fit(model, datamodule)
    return model.eval()


FEATURE_PRIOR = "feature_prior"
"""The run name `train_feature_prior` gives its Trainer (logs and checkpoint)."""


def feature_prior_checkpoint(out_dir: str | os.PathLike) -> Path:
    """Where `train_feature_prior` with ``out_dir`` leaves the prior's checkpoint.

    Examples
    --------
    >>> feature_prior_checkpoint("runs/prior").as_posix()
    'runs/prior/checkpoints/feature_prior.ckpt'
    """
    return Path(out_dir) / "checkpoints" / f"{FEATURE_PRIOR}.ckpt"


def recorded_weights_source(weights: str | os.PathLike | None) -> str:
    """``weights`` as a checkpoint records it: a file or folder as its absolute path (so a
    decoder run from another folder finds it), "auto", "imagenet" or "random" as they are.

    Examples
    --------
    >>> recorded_weights_source("random"), Path(recorded_weights_source(".")).is_absolute()
    ('random', True)
    """
    if weights is not None and Path(weights).exists():
        return str(Path(weights).resolve())
    return str(weights)


def train_feature_prior(
    images: np.ndarray,
    layer: str = "conv5",
    weights: str | os.PathLike | None = "auto",
    feature_size: int = ALEXNET_INPUT_SIZE,
    width: int = 128,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
    low_res: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> FeaturePrior:
    """Train the prior of `FeatureDecoder` on unlabelled ``[N, C, H, W]`` images in [0, 1].

    The AlexNet ``layer`` features (and, with ``low_res > 0``, the images'
    ``low_res x low_res`` thumbnails: `prior_targets`) are computed once; ``val_fraction`` of
    the images (seeded) are held out and scored each epoch (``val_loss``). With ``out_dir`` the
    checkpoint is `feature_prior_checkpoint` of it (`neuralsight.train.make_trainer`).

    Examples
    --------
    >>> images = np.random.default_rng(0).random((20, 3, 32, 32), dtype=np.float32)
    >>> prior = train_feature_prior(images, weights="random", feature_size=64, width=8,
    ...                             epochs=1, progress=False)
    >>> prior.hparams["in_shape"]
    (256, 3, 3)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"images must be [N >= 2, C, H, W], found shape {tuple(images.shape)}")
    if not 0 <= low_res <= min(images.shape[2:]):
        raise ValueError(
            f"low_res must be 0 (no thumbnail) or a side up to the images' "
            f"{min(images.shape[2:])} pixels, found {low_res}"
        )
    extractor = alexnet_features(weights, layer, feature_size)
    features = prior_targets(extractor, images, low_res)
    in_shape = feature_shape(extractor)
    n_features = math.prod(in_shape)
    L.seed_everything(seed, verbose=False)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(val_fraction * len(images))) if val_fraction > 0 else 0
    val, train = order[:n_val], order[n_val:]
    pixels = torch.from_numpy(images)
    prior = FeaturePrior(
        layer,
        in_shape,
        images.shape[1:],
        width=width,
        scale=float(features[train, :n_features].std()) or 1.0,
        lr=lr,
        weights=recorded_weights_source(weights),
        weights_provenance=extractor.weights,
        feature_size=feature_size,
        low_res=low_res,
    )
    loader = DataLoader(
        TensorDataset(features[train], pixels[train]), batch_size=batch_size, shuffle=True
    )
    val_loader = (
        DataLoader(TensorDataset(features[val], pixels[val]), batch_size=256) if n_val else None
    )
    trainer = make_trainer(epochs, out_dir, FEATURE_PRIOR, progress)
    trainer.fit(prior, loader, val_loader)
    return prior.eval()
