"""Loss ablations: a decoder retrained with one loss term switched off at a time.

A decoder's loss terms are its ``<term>_weight`` keyword arguments (`loss_terms`).
MonkeySee's generator loss is ``adversarial_weight`` x adversarial + ``feature_weight`` x
VGG19 features + ``pixel_weight`` x L1 (0.01, 1.0, 0.5 in the paper) + ``ssim_weight`` x
negative log SSIM (0 in the paper); FLIG weighs its
reconstruction, latent and image terms the same way. `ablation_conditions` gives the full
model and, for each term that is on, the model with that weight set to 0 (MonkeySee's
``"no adversarial"`` also drops the discriminator); `run_ablation` trains them all with the
same settings and seed and scores them side by side on the held-out images.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from neuralsight.analysis.conditions import write_trained_conditions
from neuralsight.analysis.training import require_decoder
from neuralsight.data.dataset import NeuralDataset
from neuralsight.lightning_cli import TrainingSettings, train_model
from neuralsight.metrics.score import held_out_pairs
from neuralsight.models.decoders.base import Decoder
from neuralsight.models.decoders.monkeysee import MonkeySee

FULL = "full"


def loss_terms(model: type = MonkeySee) -> tuple[str, ...]:
    """The loss terms ``model`` weighs: its ``<term>_weight`` arguments with a numeric default.

    Examples
    --------
    >>> loss_terms()
    ('adversarial', 'feature', 'pixel', 'ssim')
    >>> from neuralsight.models.decoders import RidgeDecoder
    >>> loss_terms(RidgeDecoder)
    ()
    """
    return tuple(
        name.removesuffix("_weight")
        for name, parameter in inspect.signature(model).parameters.items()
        if name.endswith("_weight")
        and isinstance(parameter.default, int | float)
        and not isinstance(parameter.default, bool)
    )


def loss_weights(model_options: dict[str, Any], model: type = MonkeySee) -> dict[str, float]:
    """The loss weights of a ``model`` built with ``model_options`` (defaults filled).

    Examples
    --------
    >>> loss_weights({"feature_weight": 0.0})
    {'adversarial': 0.01, 'feature': 0.0, 'pixel': 0.5, 'ssim': 0.0}
    """
    defaults = inspect.signature(model).parameters
    return {
        term: float(model_options.get(f"{term}_weight", defaults[f"{term}_weight"].default))
        for term in loss_terms(model)
    }


def ablation_conditions(
    model_options: dict[str, Any], terms: Sequence[str] | None = None, model: type = MonkeySee
) -> dict[str, dict[str, float]]:
    """``{condition: loss weights}``: ``"full"``, then ``"no <term>"`` for each term that is on.

    ``terms`` limits the terms switched off (default all of ``model``'s). A condition that
    would leave no positive weight is left out. A model without loss weights cannot be
    ablated (a clear error).

    Examples
    --------
    >>> list(ablation_conditions({}))
    ['full', 'no adversarial', 'no feature', 'no pixel']
    >>> ablation_conditions({"feature_weight": 0})["no pixel"]
    {'adversarial_weight': 0.01, 'feature_weight': 0.0, 'pixel_weight': 0.0, 'ssim_weight': 0.0}
    """
    known = loss_terms(model)
    if not known:
        raise ValueError(
            f"ablation switches off loss terms (keyword arguments named <term>_weight); "
            f"{model.__name__} has none"
        )
    terms = list(terms) if terms else list(known)
    unknown = [t for t in terms if t not in known]
    if unknown:
        raise ValueError(f"unknown loss term(s) {unknown}; expected some of {list(known)}")
    weights = loss_weights(model_options, model)
    full = {f"{t}_weight": w for t, w in weights.items()}
    conditions = {FULL: full}
    for term in terms:
        if weights[term] == 0:
            continue
        ablated = {**full, f"{term}_weight": 0.0}
        if any(ablated.values()):
            conditions[f"no {term}"] = ablated
    return conditions


def run_ablation(
    dataset: NeuralDataset,
    settings: TrainingSettings,
    out: str | os.PathLike,
    terms: Sequence[str] | None = None,
    weights: str | None = "auto",
    feature_size: int = 224,
    features: bool = True,
    progress: bool = True,
) -> Path:
    """Train the full model and each ablation, score them, write the folder ``out``.

    Checkpoints go to ``out/checkpoints/<condition>.ckpt`` (spaces as underscores); the
    figures, tables and report are those of `write_conditions`.

    Examples
    --------
    >>> run_ablation(ds, training_settings("configs/monkeysee_spatial.yaml", max_epochs=5),
    ...              "outputs/ablation")  # doctest: +SKIP
    PosixPath('outputs/ablation/report.html')
    """
    model_class = require_decoder(settings, "ablation")
    conditions = ablation_conditions(settings.model, terms, model_class)
    responses, targets, ids = held_out_pairs(dataset)
    reconstructions: dict[str, np.ndarray] = {}
    for name, loss in conditions.items():
        trained = train_model(
            dataset,
            settings.with_model(**loss),
            out,
            name=name.replace(" ", "_"),
            progress=progress,
        )
        model = cast(Decoder, trained)
        reconstructions[name] = model.reconstruct(responses)
    columns = {
        f"{term}_weight": {name: loss[f"{term}_weight"] for name, loss in conditions.items()}
        for term in loss_terms(model_class)
    }
    return write_trained_conditions(
        reconstructions,
        dataset,
        (targets, ids),
        out,
        "loss ablations",
        training=settings.as_dict(),
        condition_settings={"loss_weights": conditions},
        columns=columns,
        weights=weights,
        feature_size=feature_size,
        features=features,
    )
