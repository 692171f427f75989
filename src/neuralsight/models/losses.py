"""Training losses of the GAN decoders: the VGG feature loss, SSIM and adversarial helpers.

`VGGFeatureLoss` is MonkeySee's perceptual loss (reference code ``generator_vgg.py``):
reconstruction and target are resized (bilinear, to 224 x 224 by default), grey images are
repeated to three channels, both are ImageNet-normalised and passed through torchvision's
VGG19; the loss is the mean over several feature depths of the L1 distance between their
features. The reference's depths are ``features[:8]``, ``[:15]``, ``[:22]``, ``[:29]`` and
``[:35]`` (the outputs, before ReLU, of conv2_2, conv3_3, conv4_2, conv5_1 and conv5_4;
torchvision and MXNet number VGG19's feature layers alike).

**VGG16 in place of VGG19** (a documented departure). Where VGG19's ImageNet weights are
absent but VGG16's are present (`neuralsight.pretrained.first_available`), the loss runs on
VGG16 at the same named depths: conv2_2 ``[:8]``, conv3_3 ``[:15]``, conv4_2 ``[:20]`` and
conv5_1 ``[:25]`` exist in both networks and sit at the same resolution after the same
number of poolings; VGG16 has no conv5_4, so its last convolution, conv5_3 ``[:29]``,
stands for the deepest term (`VGG_CUTS`). The two networks share their design and training
recipe and differ only by one convolution in each of blocks 3 to 5, so the terms measure
distances at the same scales. ``network`` and ``weights`` record which network and file were
used.

The network is frozen, but gradients flow through it to the reconstruction; its feature
layers (convolutions, ReLUs, max pooling) behave alike in train and eval mode.

The adversarial helpers score against all ones (real) or all zeros (fake), the
discriminator's loss halved as in pix2pix: by binary cross-entropy on logits (pix2pix,
MonkeySee) or by squared error (least-squares GAN, MEIcoder's). `ssim_loss` is the negative
log SSIM MEIcoder trains with.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from neuralsight.metrics.image import ssim_sigma
from neuralsight.pretrained import first_available

VGG_CUTS: dict[str, tuple[int, ...]] = {
    "vgg19": (8, 15, 22, 29, 35),
    "vgg16": (8, 15, 20, 25, 29),
}
"""Feature depths of the loss (outputs of ``features[:k]``): the reference's for VGG19 and
the same named layers for VGG16 (conv5_3 for the missing conv5_4)."""

VGG_FEATURE_LAYERS = {"vgg19": 36, "vgg16": 30}
"""Modules in each network's ``features`` below the last pooling, the deepest usable cut."""

VGG_INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatureLoss(nn.Module):
    """Mean over feature depths of the L1 distance between VGG features of two image batches.

    Parameters
    ----------
    weights
        Passed to `first_available` for VGG19, then VGG16 (``"auto"``, ``"imagenet"``,
        ``"random"``, a folder or a file).
    cuts
        Feature depths: the loss compares the outputs of ``features[:k]`` for each ``k``
        (1 to 36 for VGG19, 1 to 30 for VGG16); by default `VGG_CUTS` of the network used.
    input_size
        Side images are resized to before the network (224, as the reference); ``None``
        keeps their size (cheaper, for small images on a CPU).

    Attributes
    ----------
    network
        ``"vgg19"`` or ``"vgg16"``.
    weights
        Provenance of the network's weights (see `neuralsight.pretrained`).

    Examples
    --------
    >>> import torch
    >>> loss = VGGFeatureLoss(weights="random", cuts=(4, 9), input_size=None)
    >>> x = torch.rand(2, 1, 32, 32)
    >>> float(loss(x, x)), loss.network, loss.weights
    (0.0, 'vgg19', 'random')
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        weights: str | os.PathLike | None = "auto",
        cuts: Sequence[int] | None = None,
        input_size: int | None = VGG_INPUT_SIZE,
    ) -> None:
        super().__init__()
        pretrained = first_available(("vgg19", "vgg16"), weights=weights)
        self.network, self.weights = pretrained.name, pretrained.weights
        chosen = sorted({int(k) for k in (VGG_CUTS[self.network] if cuts is None else cuts)})
        deepest = VGG_FEATURE_LAYERS[self.network]
        if not chosen or chosen[0] < 1 or chosen[-1] > deepest:
            raise ValueError(
                f"cuts must be feature depths between 1 and {deepest} for {self.network}, "
                f"found {chosen}"
            )
        features = pretrained.network.features
        assert isinstance(features, nn.Sequential)  # torchvision's VGG
        self.features = features[: chosen[-1]].requires_grad_(False).train(self.training)
        for layer in self.features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # the pre-ReLU outputs at the cuts are kept
        self.cuts = tuple(chosen)
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[:, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[:, None, None], persistent=False)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            raise ValueError(
                f"images must have 1 or 3 channels at axis 1, found shape {tuple(images.shape)}"
            )
        size = self.input_size
        if size is not None and tuple(images.shape[-2:]) != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x, out = self._prepare(images), []
        for index, layer in enumerate(self.features, start=1):
            x = layer(x)
            if index in self.cuts:
                out.append(x)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean L1 distance between the VGG features of ``pred`` and ``target``."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, found {tuple(pred.shape)} and "
                f"{tuple(target.shape)}"
            )
        with torch.no_grad():
            target_features = self._features(target)
        pred_features = self._features(pred)
        terms = [F.l1_loss(p, t) for p, t in zip(pred_features, target_features, strict=True)]
        return torch.stack(terms).mean()


AdversarialLoss = Literal["bce", "least_squares"]
ADVERSARIAL_LOSSES = ("bce", "least_squares")
"""The discriminator's scores: logits under binary cross-entropy (pix2pix, MonkeySee), or
scores under squared error (least-squares GAN, Mao et al. 2017; MEIcoder's)."""


def _adversarial(scores: torch.Tensor, target: float, kind: AdversarialLoss) -> torch.Tensor:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(
            f"adversarial loss must be one of {list(ADVERSARIAL_LOSSES)}, found {kind!r}"
        )
    goal = torch.full_like(scores, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(scores, goal)
    return F.mse_loss(scores, goal)


def generator_adversarial_loss(
    fake_scores: torch.Tensor, kind: AdversarialLoss = "bce"
) -> torch.Tensor:
    """The generator's adversarial loss: the discriminator's scores on fakes against 1.

    Examples
    --------
    >>> import torch
    >>> round(float(generator_adversarial_loss(torch.zeros(2, 1, 4, 4))), 4)  # log 2
    0.6931
    >>> float(generator_adversarial_loss(torch.zeros(2, 1, 4, 4), "least_squares"))
    1.0
    """
    return _adversarial(fake_scores, 1.0, kind)


def discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, kind: AdversarialLoss = "bce"
) -> torch.Tensor:
    """The discriminator's loss: half of its loss on real scores against 1 and fakes against 0.

    Examples
    --------
    >>> import torch
    >>> float(discriminator_loss(torch.full((1, 1, 2, 2), 20.0), torch.full((1, 1, 2, 2), -20.0))) < 1e-6
    True
    >>> float(discriminator_loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "least_squares"))
    0.0
    """
    return 0.5 * (_adversarial(real_scores, 1.0, kind) + _adversarial(fake_scores, 0.0, kind))


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log SSIM, ``-log((1 + SSIM) / 2)`` of each image, averaged (0 when equal).

    SSIM as the metric computes it (`neuralsight.metrics.image.ssim_per_image`: torchmetrics,
    Gaussian window of `ssim_sigma`, data range 1), here with gradients; the log of
    ``(1 + SSIM) / 2`` keeps it defined for SSIM in (-1, 1] and steepens it where SSIM is
    low. MEIcoder (Sobotka et al., NeurIPS 2025) trains with a negative-log SSIM loss.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 3, 16, 16)
    >>> float(ssim_loss(x, x)) < 1e-6, float(ssim_loss(x, 1 - x)) > 0.5
    (True, True)
    """
    ssim = structural_similarity_index_measure(
        pred,
        target,
        gaussian_kernel=True,
        sigma=ssim_sigma(pred.shape[-2], pred.shape[-1]),
        data_range=1.0,
        reduction="none",
    )
    assert isinstance(ssim, torch.Tensor)  # a tuple only with return_full_image
    return -torch.log((1 + ssim.clamp(-1 + 1e-4, 1)) / 2).mean()
