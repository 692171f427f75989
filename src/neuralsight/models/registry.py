"""The registries of models: every decoder and every encoder, by short name.

Each model class registers itself where it is defined (``@DECODERS.register("sid")``);
importing `neuralsight.models` imports every model module, so the lists are complete as
soon as anything under `neuralsight.models` is imported. LightningCLI configs name the
same classes by ``class_path``; the tests check that both lists agree.

Examples
--------
>>> from neuralsight.models import DECODERS, ENCODERS
>>> DECODERS.names()
('feature_ridge', 'flig', 'improved_sid', 'monkeysee', 'ridge', 'sid', 'video_sid')
>>> ENCODERS.names(), ENCODERS.get("ln").__name__
(('cnn', 'flig', 'ln', 'pretrained_core'), 'LNEncoder')
"""

from __future__ import annotations

import lightning as L

from neuralsight.registry import Registry

DECODERS: Registry[type[L.LightningModule]] = Registry("decoder")
"""Responses -> images: each has ``forward(responses)`` and ``reconstruct(dataset)``."""

ENCODERS: Registry[type[L.LightningModule]] = Registry("encoder")
"""Images -> responses: each has ``predict_responses(dataset)``."""
