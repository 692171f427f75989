"""pix2pix networks (Isola et al., CVPR 2017) as MonkeySee uses them: U-Net generator, PatchGAN.

`Pix2PixGenerator` follows the reference code of MonkeySee (neuralcodinglab/MonkeySee,
``generator_vgg.py``): five 4x4 stride-2 convolutions down (64, 128, 256, 512, 512
channels; LeakyReLU 0.2, BatchNorm on all but the outermost and the innermost), five 4x4
stride-2 transposed convolutions up (ReLU before each, BatchNorm after all but the last),
skip connections that concatenate each encoder level with the decoder level of the same
size, and a sigmoid output in [0, 1]. Height and width must divide by ``2 ** depth`` (32 by
default; 96 x 96 in the paper). Weights start from N(0, 0.02), BatchNorm scales from
N(1, 0.02), biases at 0, as in pix2pix. Departure: the reference has no dropout (its
dropout loop runs zero times); here the innermost ``dropout_layers`` decoder levels drop
with probability ``dropout`` (0.5, as pix2pix), only in training mode.

`PatchDiscriminator` is the conditional 70 x 70 PatchGAN: it sees the generator's input
channels concatenated with an image and scores overlapping patches (logits, one per patch).
"""

from __future__ import annotations

import torch
from torch import nn

from neuralsight.models.blocks.unet import check_halvable


def init_pix2pix_weights(module: nn.Module) -> None:
    """pix2pix initialisation: conv weights N(0, 0.02), BatchNorm N(1, 0.02), biases 0.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 64, 4), nn.BatchNorm2d(64))
    >>> net.apply(init_pix2pix_weights)[0].weight.std().item() < 0.03
    True
    """
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReLU(),
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Pix2PixGenerator(nn.Module):
    """pix2pix U-Net generator: input channels -> image in [0, 1] of the same height and width.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input (e.g. the inverse-RF channels) and of the output image.
    base_channels
        Channels after the first convolution; doubled per level up to ``8 * base_channels``.
    depth
        Number of stride-2 levels; height and width must divide by ``2 ** depth``.
    dropout
        Dropout probability of the innermost ``dropout_layers`` decoder levels (0: none).
    dropout_layers
        How many decoder levels, from the innermost, have dropout.

    Examples
    --------
    >>> import torch
    >>> net = Pix2PixGenerator(15, 3, base_channels=8).eval()
    >>> out = net(torch.randn(2, 15, 32, 32))
    >>> tuple(out.shape), bool(out.min() >= 0) and bool(out.max() <= 1)
    ((2, 3, 32, 32), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        base_channels: int = 64,
        depth: int = 5,
        dropout: float = 0.5,
        dropout_layers: int = 2,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2, found {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), found {dropout}")
        widths = [base_channels * min(2**level, 8) for level in range(depth)]
        self.depth = depth
        self.down = nn.ModuleList(
            _down(in_channels if i == 0 else widths[i - 1], widths[i], 0 < i < depth - 1)
            for i in range(depth)
        )
        self.up = nn.ModuleList()
        for i in reversed(range(1, depth)):
            c_in = widths[i] if i == depth - 1 else 2 * widths[i]
            innermost_rank = depth - 1 - i
            self.up.append(
                _up(c_in, widths[i - 1], dropout if innermost_rank < dropout_layers else 0.0)
            )
        self.out = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * widths[0], out_channels, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )
        self.apply(init_pix2pix_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Condition maps ``[B, C_in, H, W]`` -> images ``[B, C_out, H, W]`` in [0, 1]."""
        check_halvable("Pix2PixGenerator", self.depth, x)
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for up in self.up:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return self.out(x)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: logits ``[B, 1, h, w]`` for (condition, image) pairs.

    Parameters
    ----------
    condition_channels
        Channels of the generator's input that the discriminator is conditioned on.
    image_channels
        Channels of the real or generated image.
    base_channels
        Channels of the first convolution; doubled per layer up to ``8 * base_channels``.
    n_layers
        Stride-2 convolutions after the first (3: the 70 x 70 PatchGAN); images need at least
        ``2 ** (n_layers + 2)`` pixels per side.

    Examples
    --------
    >>> import torch
    >>> net = PatchDiscriminator(15, 3, base_channels=8)
    >>> net(torch.randn(2, 15, 32, 32), torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 1, 2, 2])
    """

    def __init__(
        self,
        condition_channels: int,
        image_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
    ) -> None:
        super().__init__()
        widths = [base_channels * min(2**i, 8) for i in range(n_layers + 1)]
        layers: list[nn.Module] = [
            nn.Conv2d(condition_channels + image_channels, widths[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(widths[i]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.min_size = 2 ** (n_layers + 2)
        self.apply(init_pix2pix_weights)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Real-or-fake logits per patch of ``image`` given ``condition``."""
        if condition.shape[-2:] != image.shape[-2:] or min(image.shape[-2:]) < self.min_size:
            raise ValueError(
                f"condition and image must share height and width of at least {self.min_size}, "
                f"found {tuple(condition.shape)} and {tuple(image.shape)}"
            )
        return self.net(torch.cat([condition, image], dim=1))
