"""Training entry point for the API: a configured Lightning `Trainer` around any model.

`fit` is a thin convenience over ``lightning.Trainer`` for scripts and notebooks; the CLI
builds the same Trainer from YAML through LightningCLI.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from neuralsight.data.datamodule import NeuralDataModule


def make_trainer(
    max_epochs: int = 10,
    out_dir: str | Path | None = None,
    name: str = "model",
    progress: bool = True,
    **trainer_kwargs,
) -> L.Trainer:
    """A `lightning.Trainer` with neuralsight's defaults.

    With ``out_dir`` the best checkpoint is written to ``out_dir/checkpoints/<name>.ckpt``
    and metrics to a CSV log under ``out_dir/logs/<name>``; without it nothing is written.
    Several models may share one ``out_dir``.

    Examples
    --------
    >>> trainer = make_trainer(max_epochs=1, progress=False)
    >>> trainer.max_epochs
    1
    """
    callbacks = list(trainer_kwargs.pop("callbacks", []))
    logger = False
    if out_dir is not None:
        out_dir = Path(out_dir)
        callbacks.append(
            ModelCheckpoint(dirpath=out_dir / "checkpoints", filename=name, save_top_k=1)
        )
        warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
        logger = L.pytorch.loggers.CSVLogger(out_dir / "logs", name=name, version="")
    trainer_kwargs.setdefault("accelerator", "auto")
    trainer_kwargs.setdefault("devices", 1)
    return L.Trainer(
        max_epochs=max_epochs,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=out_dir is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )


def fit(
    model: L.LightningModule,
    datamodule: NeuralDataModule,
    max_epochs: int = 10,
    out_dir: str | Path | None = None,
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
