"""Colourfulness of images: the composite score of Hasler & Suesstrunk (2003).

Reconstructions often lose colour before they lose shape; the colourfulness of a set of
reconstructions next to that of the true images shows it. Per image, with opponent
channels ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over all pixels::

    C = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)

Images in [0, 1] are scaled to the paper's 0-255 pixel values first, so scores keep the
paper's scale (about 0 not colourful, 15 slightly, 33 moderately, 45 averagely, 59 quite,
82 highly, 109 extremely colourful). Standard deviations are population ones (``ddof=0``).
Grey images (one channel, or three equal channels) score 0.
"""

from __future__ import annotations

import numpy as np
import torch

from neuralsight.metrics.image import ImageBatch, as_image_tensor

PIXEL_SCALE = 255.0
"""Images in [0, 1] are multiplied by this before scoring, as in Hasler & Suesstrunk (2003)."""


def colourfulness_per_image(images: ImageBatch) -> np.ndarray:
    """Composite colourfulness of each image ``[N, C, H, W]`` in [0, 1] (0-255 scale), ``[N]``.

    Examples
    --------
    >>> import numpy as np
    >>> red = np.zeros((1, 3, 4, 4), np.float32); red[:, 0] = 1.0
    >>> colourfulness_per_image(red).round(3)  # rg = 255, yb = 127.5: 0.3 * sqrt(255² + 127.5²)
    array([85.53])
    """
    tensor = as_image_tensor(images, "images")
    if tensor.shape[1] == 1:
        return np.zeros(tensor.shape[0])
    if tensor.shape[1] != 3:
        raise ValueError(
            f"'images' must have 1 or 3 channels at axis 1, found shape {tuple(tensor.shape)}"
        )
    red, green, blue = (tensor[:, c].flatten(1) * PIXEL_SCALE for c in range(3))
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    offset = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return (spread + 0.3 * offset).cpu().numpy()


def colourfulness(images: ImageBatch) -> float:
    """Mean composite colourfulness of a batch ``[N, C, H, W]`` in [0, 1] (0-255 scale).

    Examples
    --------
    >>> import numpy as np
    >>> colourfulness(np.full((2, 3, 8, 8), 0.5, np.float32))
    0.0
    """
    return float(colourfulness_per_image(images).mean())
