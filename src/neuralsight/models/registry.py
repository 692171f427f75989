"""The registries of models: every decoder and every encoder, by short name.

Each model class registers itself where it is defined (``@DECODERS.register("sid")``);
importing `neuralsight.models` imports every model module, so the lists are complete as
soon as anything under `neuralsight.models` is imported. LightningCLI configs name the
same classes by ``class_path``; the tests check that both lists agree.

Examples
--------
>>> from neuralsight.models import DECODERS, ENCODERS
>>> DECODERS.names()  # doctest: +NORMALIZE_WHITESPACE
('encoder_inversion', 'feature_ridge', 'flig', 'improved_sid', 'monkeysee', 'ridge', 'sid',
 'video_sid')
>>> ENCODERS.names(), ENCODERS.get("ln").__name__
(('cnn', 'flig', 'ln', 'pretrained_core'), 'LNEncoder')
"""

from __future__ import annotations

import contextvars
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import lightning as L

from neuralsight.registry import Registry

if TYPE_CHECKING:
    from neuralsight.models.encoders.base import Encoder

DECODERS: Registry[type[L.LightningModule]] = Registry("decoder")
"""Responses -> images: each has ``forward(responses)`` and ``reconstruct(dataset)``."""

ENCODERS: Registry[type[L.LightningModule]] = Registry("encoder")
"""Images -> responses: each has ``predict_responses(dataset)``."""


ModelT = TypeVar("ModelT", bound=L.LightningModule)


def load_checkpoint(model_class: type[ModelT], path: str | os.PathLike) -> ModelT:
    """A ``model_class`` checkpoint read with ``weights_only=True``, on the CPU, in eval mode.

    It is read in an empty ``contextvars`` context: while LightningCLI builds a model
    (``neuralsight fit --config``) it holds that model's configuration in a context
    variable that ``save_hyperparameters`` would otherwise take as the loaded model's. A
    missing file is an error naming it.

    Examples
    --------
    >>> load_checkpoint(ENCODERS.get("ln"), "missing.ckpt")
    Traceback (most recent call last):
    ...
    FileNotFoundError: missing.ckpt: expected a LNEncoder checkpoint, found no such file
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: expected a {model_class.__name__} checkpoint, found no such file"
        )
    load = functools.partial(
        model_class.load_from_checkpoint, path, map_location="cpu", weights_only=True
    )
    return contextvars.Context().run(load).eval()


def load_encoder(path: str | os.PathLike, kind: str = "pretrained_core") -> Encoder:
    """The trained encoder of registered ``kind`` (`ENCODERS`) at ``path`` (`load_checkpoint`).

    Examples
    --------
    >>> load_encoder("missing.ckpt", kind="cnn")
    Traceback (most recent call last):
    ...
    FileNotFoundError: missing.ckpt: expected a CNNEncoder checkpoint, found no such file
    """
    return cast("Encoder", load_checkpoint(ENCODERS.get(kind), path))
