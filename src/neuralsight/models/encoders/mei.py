"""Most exciting inputs (MEIs): the image an encoder predicts drives one unit hardest.

After Walker et al., "Inception loops discover what excites neurons most using deep
predictive models", Nature Neuroscience 2019: gradient ascent on the unit's predicted
response, starting from faint seeded noise around mean grey, with

- a **contrast constraint**: after every step the image's deviation from the grey level
  ``mean`` is rescaled to the RMS contrast ``contrast`` (per pixel and channel) and the
  image clipped to [0, 1] (a few rounds of both, so that clipping costs little contrast),
  so the optimum is a pattern and not a brighter image;
- a **blurred gradient** (``blur_sigma`` pixels, Gaussian, shrinking linearly to 0 over
  the steps) against high-frequency patterns the model reads but no eye would;
- optional **jitter**: each step reads the image shifted by up to ``jitter`` pixels, so
  the result does not hang on a single pixel alignment.

Steps follow the gradient normalised by its mean absolute value (``lr`` in image units per
step). The noise and the jitter come from ``seed``, so a call repeats exactly on the CPU.
`most_exciting_input` works for any encoder with ``forward(images) -> [B, n_units,
n_bins]`` and an ``image_shape`` (LN, CNN, pretrained core).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from neuralsight.models.encoders.base import Encoder


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``[B, C, H, W]`` with a Gaussian of ``sigma`` pixels per channel (reflected edges).

    torchvision's ``gaussian_blur``, its kernel 3 sigma wide on each side but no wider than
    reflection allows. ``sigma <= 0`` returns the images unchanged.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 1, 9, 9)
    >>> x[0, 0, 4, 4] = 1.0
    >>> round(float(gaussian_blur(x, 1.0).sum()), 5), bool(gaussian_blur(x, 1.0)[0, 0, 4, 4] < 1)
    (1.0, True)
    """
    if sigma <= 0:
        return images
    radius = min(int(np.ceil(3 * sigma)), (min(images.shape[-2:]) - 1) // 2)
    size = 2 * radius + 1
    return TF.gaussian_blur(images, [size, size], [sigma, sigma])


def _project(images: torch.Tensor, mean: float, norm: float, rounds: int = 5) -> torch.Tensor:
    """Rescale each image's deviation from ``mean`` to L2 norm ``norm`` and clip to [0, 1],
    ``rounds`` times: clipping shortens the deviation, the next rescaling makes up for it
    elsewhere."""
    for _ in range(rounds):
        deviation = images - mean
        length = deviation.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
        images = (mean + deviation * (norm / length)).clamp(0.0, 1.0)
    return images


def most_exciting_input(encoder: Encoder, unit: int, **options) -> np.ndarray:
    """The image ``[C, H, W]`` in [0, 1] that maximises ``unit``'s predicted response.

    `most_exciting_inputs` for the one unit; ``options`` are its keyword arguments.

    Examples
    --------
    >>> import torch
    >>> from neuralsight.models.encoders import LNEncoder
    >>> model = LNEncoder(n_inputs=1, image_shape=(1, 9, 9))
    >>> with torch.no_grad():
    ...     model.filters[0, 0, 2, 6] = 1.0
    >>> image = most_exciting_input(model, unit=0, steps=20)
    >>> image.shape, divmod(int(image[0].argmax()), 9)
    ((1, 9, 9), (2, 6))
    """
    return most_exciting_inputs(encoder, [unit], **options)[0]


def most_exciting_inputs(
    encoder: Encoder,
    units: Sequence[int] | None = None,
    time_bin: int = 0,
    steps: int = 200,
    lr: float = 0.05,
    contrast: float = 0.1,
    mean: float = 0.5,
    blur_sigma: float = 1.0,
    jitter: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """The images ``[n, C, H, W]`` in [0, 1] that maximise each of ``units``' predicted response.

    The units' images are optimised together, one batch (each image drives only its own
    unit's response, and each step is normalised per image), so the cost of many MEIs is
    about that of one batch.

    Parameters
    ----------
    encoder
        A trained encoder (left in the training mode it had; it runs in eval mode here, and
        its parameters get no gradients).
    units
        Which units (default all), each maximised at output ``[unit, time_bin]``.
    steps, lr
        Gradient-ascent steps and the step size (image units, on the normalised gradient).
    contrast
        RMS deviation from ``mean`` per pixel and channel that each image keeps.
    mean
        The grey level the contrast is measured from, in [0, 1].
    blur_sigma
        Gaussian blur of the gradient in pixels at the first step, down to 0 at the last.
    jitter
        Largest shift in pixels of the images each step reads (0: none).
    seed
        Seed of the starting noise and of the jitter.

    Examples
    --------
    >>> import torch
    >>> from neuralsight.models.encoders import LNEncoder
    >>> model = LNEncoder(n_inputs=2, image_shape=(1, 9, 9))
    >>> with torch.no_grad():
    ...     model.filters[0, 0, 2, 6] = 1.0
    ...     model.filters[1, 0, 7, 1] = 1.0
    >>> images = most_exciting_inputs(model, steps=20)
    >>> images.shape, [divmod(int(image[0].argmax()), 9) for image in images]
    ((2, 1, 9, 9), [(2, 6), (7, 1)])
    """
    units = list(range(encoder.n_units)) if units is None else [int(u) for u in units]
    if not units or not all(0 <= u < encoder.n_units for u in units):
        raise ValueError(f"units must index the encoder's {encoder.n_units} units, found {units}")
    if not 0 <= time_bin < encoder.n_bins:
        raise ValueError(
            f"time_bin must index the encoder's {encoder.n_bins} bins, found {time_bin}"
        )
    if steps < 1 or lr <= 0 or contrast <= 0 or not 0 <= mean <= 1 or jitter < 0:
        raise ValueError(
            "most_exciting_inputs needs steps >= 1, lr > 0, contrast > 0, 0 <= mean <= 1 and "
            f"jitter >= 0; found steps={steps}, lr={lr}, contrast={contrast}, mean={mean}, "
            f"jitter={jitter}"
        )
    generator = torch.Generator().manual_seed(seed)
    shape = (len(units), *encoder.image_shape)
    norm = contrast * float(np.sqrt(np.prod(encoder.image_shape)))
    start = mean + contrast * torch.randn(shape, generator=generator)
    images = _project(start, mean, norm).to(encoder.device)
    rows, columns = torch.arange(len(units)), torch.tensor(units)
    was_training = encoder.training
    encoder.eval()
    try:
        for step in range(steps):
            images.requires_grad_(True)
            shift = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            seen = torch.roll(images, shifts=shift, dims=(2, 3)) if jitter else images
            response = encoder(seen)[rows, columns, time_bin].sum()
            (gradient,) = torch.autograd.grad(response, images)
            gradient = gaussian_blur(gradient, blur_sigma * (1 - step / steps))
            scale = gradient.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            images = _project(images.detach() + lr * gradient / scale, mean, norm)
    finally:
        encoder.train(was_training)
    return images.detach().cpu().numpy().astype(np.float32)
