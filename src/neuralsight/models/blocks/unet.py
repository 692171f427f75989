"""A compact U-Net: convolutional encoder-decoder with skip connections at every scale.

Used by the improved SID to refine a coarse linear reconstruction: the skips carry the
fine detail the bottleneck of SID's plain autoencoder throws away.
"""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` downsamplings; height and width must divide by ``2**depth``.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output images.
    base_channels
        Channels at full resolution; doubled at every level.
    depth
        Number of 2x downsamplings.

    Examples
    --------
    >>> import torch
    >>> UNet(1, 1, base_channels=8, depth=2)(torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self, in_channels: int, out_channels: int, base_channels: int = 32, depth: int = 3
    ) -> None:
        super().__init__()
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.inc = _double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(widths[i], widths[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(
            _double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Image ``[B, C_in, H, W]`` -> output ``[B, C_out, H, W]`` through the skips."""
        check_halvable("UNet", self.depth, image)
        skips = [self.inc(image)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.out(x)


def check_halvable(network: str, depth: int, image: torch.Tensor) -> None:
    """Raise a ValueError unless ``image`` can be halved ``depth`` times (a U-Net's levels).

    Height and width must be divisible by ``2**depth``; the message names ``network``.

    Examples
    --------
    >>> check_halvable("UNet", 2, torch.zeros(1, 1, 8, 12))
    >>> check_halvable("UNet", 3, torch.zeros(1, 1, 8, 12))
    Traceback (most recent call last):
    ...
    ValueError: UNet of depth 3 needs height and width divisible by 8, found (8, 12)
    """
    factor = 2**depth
    if image.shape[-1] % factor or image.shape[-2] % factor:
        raise ValueError(
            f"{network} of depth {depth} needs height and width divisible by {factor}, "
            f"found {tuple(image.shape[-2:])}"
        )
