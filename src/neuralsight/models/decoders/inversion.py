"""Decoding by inverting an encoder under a natural-image prior ("InvEnc").

An encoding model predicts the responses to any image; decoding can then ask which image
would have evoked the recorded responses (Naselaris et al., Neuron 2009, decoded by
searching images under such a model and a natural-image prior; MEIcoder, arXiv 2510.20762,
keeps "InvEnc", gradient inversion of a trained encoder, as a baseline). Here:

- the **prior** is the `FeatureDecoder`'s generator (`FeatureInverter`, trained on
  unlabelled photographs): the images searched are its outputs ``G(z)``, and its input
  ``z`` (AlexNet features and a thumbnail) is kept near where the feature decoder put it;
- the **start** is the feature decoder's estimate ``z0`` (ridge from the responses);
- the **search** is Adam on ``z`` for ``steps`` steps, all images of a batch at once, to
  lower, per image, the mean over units of ``(scale(encoder(G(z))) - scale(r))^2`` (the
  encoder's predictions and the recorded responses ``r`` both z-scored by the decoder's
  training statistics, so every unit counts alike) plus ``anchor_weight`` times the mean
  of ``((z - z0) / sd)^2``, ``sd`` the training SD of each generator input.

The design (gradient inversion through a generator trained on photographs, started at the
feature decoder's estimate, with a variance-normalised anchor) is ours.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, overload

import torch
from torch import nn

from neuralsight.models.decoders.base import Scaling
from neuralsight.models.decoders.feature import FeatureDecoder
from neuralsight.models.decoders.ridge import DEFAULT_ALPHAS
from neuralsight.models.encoders.base import Encoder
from neuralsight.models.registry import DECODERS, load_encoder

DEFAULT_STEPS = 50
DEFAULT_LR = 0.05
DEFAULT_ANCHOR_WEIGHT = 10.0


@DECODERS.register("encoder_inversion")
class EncoderInversionDecoder(FeatureDecoder):
    """The feature decoder's image, moved so that a trained encoder predicts the responses.

    Fitting is `FeatureDecoder`'s (ridge to the prior's features, closed form); decoding
    starts at its estimate ``z0`` of the generator's input and runs `invert`. With
    ``steps=0`` it is the feature decoder.

    Parameters
    ----------
    n_inputs, image_shape, prior, alphas, scaling, match_variance,
    match_thumbnail_variance, thumbnail_strength, weights
        As `FeatureDecoder`.
    encoder
        Path of a trained encoder checkpoint (images -> responses of the same units and
        bins), read with ``weights_only=True`` (`load_encoder`). It is frozen and never
        trained here. A checkpoint of this decoder holds its weights too, but reads the
        file again when it is loaded, as it does the prior.
    encoder_kind
        The encoder's registered kind (`neuralsight.models.ENCODERS`).
    steps
        Adam steps of the search (0: the feature decoder's image).
    lr
        Adam's learning rate, in units of each generator input's training SD.
    anchor_weight
        Strength of the pull towards ``z0`` (the prior's second half, beside the generator's
        range).

    Notes
    -----
    ``steps``, ``lr`` and ``anchor_weight`` were chosen on validation images only
    (``benchmarks/real_data_inversion_grid.py``: 20% of the training images of Cowley V4
    sessions 190923 and 210225, the session's `PretrainedCoreEncoder` at conv2 with the
    factorised readout, the Caltech prior with an 8x8 thumbnail). Two-way identification
    in pixels / in AlexNet conv5 and SSIM, 190923 then 210225:

    - feature decoder (no search): 0.751 / 0.707 / 0.154; 0.698 / 0.670 / 0.121
    - 50 steps, lr 0.05, anchor 0.1: 0.752 / 0.747 / 0.087; 0.705 / 0.697 / 0.067
    - 50 steps, lr 0.05, anchor 1: 0.754 / 0.762 / 0.098; 0.705 / 0.713 / 0.074
    - 50 steps, lr 0.05, anchor 10 (chosen): 0.757 / 0.758 / 0.113; 0.704 / 0.726 / 0.089

    The search raises two-way identification a little in pixels and more in conv5 features
    (the encoder reads AlexNet too, at conv2), and lowers SSIM (and raises pixel MSE) on
    both sessions. Anchor 10 was near the best two-way on both sessions and kept the most
    SSIM of the searches.
    About 0.6 s per image on one CPU thread (192 images: 2 minutes).

    Examples
    --------
    >>> model = EncoderInversionDecoder(33, (3, 32, 32), prior="prior.ckpt",
    ...                                 encoder="encoder.ckpt")  # doctest: +SKIP
    >>> z, trace = model.invert(model.scaler(responses), return_trace=True)  # doctest: +SKIP
    """

    z_scale: torch.Tensor

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        prior: str,
        encoder: str,
        encoder_kind: str = "pretrained_core",
        steps: int = DEFAULT_STEPS,
        lr: float = DEFAULT_LR,
        anchor_weight: float = DEFAULT_ANCHOR_WEIGHT,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        scaling: Scaling = "zscore",
        match_variance: bool = True,
        match_thumbnail_variance: bool = True,
        thumbnail_strength: Literal["own", "shared"] = "own",
        weights: str | None = None,
    ) -> None:
        super().__init__(
            n_inputs,
            image_shape,
            prior,
            alphas,
            scaling,
            match_variance,
            match_thumbnail_variance,
            thumbnail_strength,
            weights,
        )
        if int(steps) < 0:
            raise ValueError(f"steps must be 0 or more, found {steps}")
        if not float(lr) > 0:
            raise ValueError(f"lr must be positive, found {lr}")
        if not float(anchor_weight) >= 0:
            raise ValueError(f"anchor_weight must be 0 or more, found {anchor_weight}")
        self.save_hyperparameters()
        self.steps, self.lr, self.anchor_weight = int(steps), float(lr), float(anchor_weight)
        self.encoder = _frozen_encoder(encoder, encoder_kind, self.n_inputs, self.image_shape)
        self.register_buffer("z_scale", torch.ones(self.linear.out_features))

    def _set_weights(self, alpha: float) -> None:
        """`FeatureDecoder`'s solution, and the training SD of each generator input."""
        super()._set_weights(alpha)
        self.z_scale.copy_(self.solver._solved()["var_y"].sqrt().float())

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Scaled responses -> the generator's image at the inverted input."""
        return self.inverter(self.invert(features))

    def objective(self, z: torch.Tensor, z0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per image ``[B]``: response mismatch plus ``anchor_weight`` times the anchor.

        ``target`` holds the scaled recorded responses ``[B, n_inputs]``.
        """
        predicted = self.scaler(self.encoder(self.inverter(z)))
        mismatch = (predicted - target).pow(2).mean(1)
        anchor = ((z - z0) / self.z_scale.clamp_min(1e-12)).pow(2).mean(1)
        return mismatch + self.anchor_weight * anchor

    @overload
    def invert(
        self, features: torch.Tensor, return_trace: Literal[False] = False
    ) -> torch.Tensor: ...

    @overload
    def invert(
        self, features: torch.Tensor, return_trace: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def invert(
        self, features: torch.Tensor, return_trace: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The generator's input ``[B, D]`` found for scaled responses ``[B, n_inputs]``.

        Adam on ``z = z0 + sd * u`` from ``u = 0`` (so ``lr`` is in SD units). Each image's
        objective is summed, not averaged, so an image's search does not depend on the
        others in its batch. Nothing is random: the same responses give the same input.
        Runs with gradients even under ``torch.inference_mode`` (as in `reconstruct`).

        With ``return_trace``, also the mean objective over images before each step and
        after the last, ``[steps + 1]``.
        """
        with torch.inference_mode(False), torch.enable_grad():
            target = features.detach().clone()
            with torch.no_grad():
                z0 = self.linear(target)
            scale = self.z_scale.detach().clone()
            u = torch.zeros_like(z0, requires_grad=True)
            optimizer = torch.optim.Adam([u], lr=self.lr)
            trace = []
            for _ in range(self.steps):
                optimizer.zero_grad(set_to_none=True)
                loss = self.objective(z0 + scale * u, z0, target)
                loss.sum().backward()
                optimizer.step()
                trace.append(float(loss.detach().mean()))
            z = (z0 + scale * u).detach()
            if return_trace:
                with torch.no_grad():
                    trace.append(float(self.objective(z, z0, target).mean()))
        if return_trace:
            return z, torch.tensor(trace)
        return z

    def optimize_for_inference(self) -> EncoderInversionDecoder:
        """`Decoder.optimize_for_inference`, copied outside inference mode: the search
        differentiates through the copy's weights, which inference tensors cannot be."""
        with torch.inference_mode(False):
            return super().optimize_for_inference()

    def train(self, mode: bool = True) -> EncoderInversionDecoder:
        """Train mode for the Trainer; the generator and the encoder stay in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self


def _frozen_encoder(
    path: str | os.PathLike, kind: str, n_inputs: int, image_shape: tuple[int, int, int]
) -> nn.Module:
    """The encoder at ``path``, frozen in eval mode, checked against the decoder's sizes."""
    encoder = load_encoder(path, kind)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{path}: expected an Encoder checkpoint, found {type(encoder).__name__}")
    if encoder.n_inputs != n_inputs:
        raise ValueError(
            f"{path}: the encoder predicts {encoder.n_inputs} responses (n_units * n_bins = "
            f"{encoder.n_units} * {encoder.n_bins}), the decoder reads {n_inputs}"
        )
    if tuple(encoder.image_shape) != tuple(image_shape):
        raise ValueError(
            f"{path}: the encoder reads images of shape {tuple(encoder.image_shape)}, the "
            f"decoder makes {tuple(image_shape)}"
        )
    return encoder.requires_grad_(False).eval()
