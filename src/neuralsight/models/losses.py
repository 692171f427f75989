"""Training losses of the GAN decoders: VGG19 feature loss and adversarial helpers.

`VGG19FeatureLoss` is MonkeySee's perceptual loss (reference code ``generator_vgg.py``):
reconstruction and target are resized (bilinear, to 224 x 224 by default), grey images are
repeated to three channels, both are ImageNet-normalised and passed through torchvision's
VGG19; the loss is the mean over several feature depths of the L1 distance between their
features. The default depths are the reference's ``features[:8]``, ``[:15]``, ``[:22]``,
``[:29]`` and ``[:35]`` (the outputs, before ReLU, of conv2_2, conv3_3, conv4_2, conv5_1 and
conv5_4; torchvision and MXNet number VGG19's feature layers alike). The network comes from
`neuralsight.pretrained.load_pretrained` (offline-aware); its provenance is kept in
``weights``. It is frozen, but gradients flow through it to the reconstruction; its
feature layers (convolutions, ReLUs, max pooling) behave alike in train and eval mode.

The adversarial helpers are the pix2pix ones on logits: binary cross-entropy against all
ones (real) or all zeros (fake), the discriminator's loss halved as in pix2pix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neuralsight.pretrained import load_pretrained

VGG19_CUTS = (8, 15, 22, 29, 35)
"""Feature depths of the loss: outputs of ``vgg19.features[:k]`` for each k (the reference's)."""

VGG_INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19FeatureLoss(nn.Module):
    """Mean over feature depths of the L1 distance between VGG19 features of two image batches.

    Parameters
    ----------
    weights
        VGG19 weights, passed to `load_pretrained` (``"auto"``, ``"imagenet"``, ``"random"``
        or a path to a state dict).
    cuts
        Feature depths: the loss compares the outputs of ``features[:k]`` for each ``k``
        (1 to 36).
    input_size
        Side images are resized to before the network (224, as the reference); ``None``
        keeps their size (cheaper, for small images on a CPU).

    Attributes
    ----------
    weights
        Provenance of the network's weights: ``"imagenet"``, ``"random"`` or ``"file:..."``.

    Examples
    --------
    >>> import torch
    >>> loss = VGG19FeatureLoss(weights="random", cuts=(4, 9), input_size=None)
    >>> x = torch.rand(2, 1, 32, 32)
    >>> float(loss(x, x)), loss.weights
    (0.0, 'random')
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        weights: str | os.PathLike | None = "auto",
        cuts: Sequence[int] = VGG19_CUTS,
        input_size: int | None = VGG_INPUT_SIZE,
    ) -> None:
        super().__init__()
        cuts = sorted({int(k) for k in cuts})
        if not cuts or cuts[0] < 1 or cuts[-1] > 36:
            raise ValueError(f"cuts must be feature depths between 1 and 36, found {cuts}")
        network, self.weights = load_pretrained("vgg19", weights=weights)
        features = network.features
        assert isinstance(features, nn.Sequential)  # torchvision's VGG19
        self.features = features[: cuts[-1]].requires_grad_(False).train(self.training)
        for layer in self.features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # the pre-ReLU outputs at the cuts are kept
        self.cuts = tuple(cuts)
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
        """Mean L1 distance between the VGG19 features of ``pred`` and ``target``."""
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


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss: BCE of the discriminator's logits on fakes against 1.

    Examples
    --------
    >>> import torch
    >>> round(float(generator_adversarial_loss(torch.zeros(2, 1, 4, 4))), 4)  # log 2
    0.6931
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: half the BCE of real logits against 1 plus fakes against 0.

    Examples
    --------
    >>> import torch
    >>> float(discriminator_loss(torch.full((1, 1, 2, 2), 20.0), torch.full((1, 1, 2, 2), -20.0))) < 1e-6
    True
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)
