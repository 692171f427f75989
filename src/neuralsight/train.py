"""The training path: one Trainer factory for the API, the CLI, the analyses and benchmarks.

`make_trainer` builds a ``lightning.Trainer`` with neuralsight's defaults (`TRAINER_DEFAULTS`,
which LightningCLI's ``neuralsight fit`` uses too, and third-party noise silenced:
`neuralsight.quiet`); `fit` trains a model with it, for scripts and notebooks. YAML configs
become models and Trainers through `neuralsight.lightning_cli.load_config`. Checkpoints are
read with ``weights_only=True`` only (tensors and plain values: a crafted file cannot run
code); `UNSAFE_CHECKPOINT` says why one was refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from neuralsight.data.datamodule import NeuralDataModule
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
