"""SID's convolutional autoencoder and spike-to-image converter (Zhang et al., 2020).

Layer by layer as in the reference code (jiankliu/Spike-Image-Decoder, ``SID.py``):

- converter: Dense(n_inputs -> 512) -> BatchNorm -> ReLU -> Dropout(0.5) ->
  Dense(-> C*H*W) -> sigmoid, reshaped to an image;
- encoder: Conv 64 k7, 128 k5, 256 k3, 256 k3, each stride 2 with "same" padding,
  BatchNorm + ReLU, Dropout(0.25) after every conv but the first;
- decoder: 2x nearest upsampling + Conv 256 k3, 128 k3, 64 k5 (BatchNorm, ReLU,
  Dropout(0.25)), then 2x upsampling + Conv C k7 and the output head.

The reference's output head is a BatchNorm with no activation (``output="batchnorm"``). After
six dropout layers its running statistics do not match eval-mode activations, and on short
runs the eval-mode error grows while the training error falls (measured: MSE 0.37 -> 0.68
over 32 epochs of a toy set). ``output="sigmoid"`` (our default) bounds the output to [0, 1]
like the converter's.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class SpikeToImageConverter(nn.Module):
    """SID's MLP from a response vector to a first, coarse image.

    Examples
    --------
    >>> import torch
    >>> SpikeToImageConverter(10, (1, 8, 8))(torch.randn(4, 10)).shape
    torch.Size([4, 1, 8, 8])
    """

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        n_pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.net = nn.Sequential(
            nn.Linear(n_inputs, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_pixels),
            nn.Sigmoid(),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``[B, n_inputs]`` -> images ``[B, C, H, W]``."""
        return self.net(features).reshape(-1, *self.image_shape)


class SIDAutoencoder(nn.Module):
    """SID's image-to-image convolutional autoencoder (16x spatial bottleneck, no skips).

    Examples
    --------
    >>> import torch
    >>> SIDAutoencoder(1)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self,
        channels: int,
        dropout: float = 0.25,
        output: Literal["sigmoid", "batchnorm"] = "sigmoid",
    ) -> None:
        super().__init__()
        if output not in ("sigmoid", "batchnorm"):
            raise ValueError(f"output must be 'sigmoid' or 'batchnorm', found {output!r}")
        self.encoder = nn.Sequential(
            _conv_bn_relu(channels, 64, 7, 2, 0.0),
            _conv_bn_relu(64, 128, 5, 2, dropout),
            _conv_bn_relu(128, 256, 3, 2, dropout),
            _conv_bn_relu(256, 256, 3, 2, dropout),
        )
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.Sequential(
            up,
            _conv_bn_relu(256, 256, 3, 1, dropout),
            up,
            _conv_bn_relu(256, 128, 3, 1, dropout),
            up,
            _conv_bn_relu(128, 64, 5, 1, dropout),
            up,
            nn.Conv2d(64, channels, 7, padding=3),
            nn.Sigmoid() if output == "sigmoid" else nn.BatchNorm2d(channels),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Image -> encoded -> decoded image of the same shape."""
        if image.shape[-1] % 16 or image.shape[-2] % 16:
            raise ValueError(
                f"SID's autoencoder halves the image 4 times: height and width must be "
                f"divisible by 16, found {tuple(image.shape[-2:])}"
            )
        return self.decoder(self.encoder(image))
