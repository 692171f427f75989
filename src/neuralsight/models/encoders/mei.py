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


def _project(image: torch.Tensor, mean: float, norm: float, rounds: int = 5) -> torch.Tensor:
    """Rescale the deviation from ``mean`` to L2 norm ``norm`` and clip to [0, 1], ``rounds``
    times: clipping shortens the deviation, the next rescaling makes up for it elsewhere."""
    for _ in range(rounds):
        deviation = image - mean
        image = (mean + deviation * (norm / deviation.norm().clamp_min(1e-12))).clamp(0.0, 1.0)
    return image


def most_exciting_input(
    encoder: Encoder,
    unit: int,
    time_bin: int = 0,
    steps: int = 200,
    lr: float = 0.05,
    contrast: float = 0.1,
    mean: float = 0.5,
    blur_sigma: float = 1.0,
    jitter: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """The image ``[C, H, W]`` in [0, 1] that maximises ``unit``'s predicted response.

    Parameters
    ----------
    encoder
        A trained encoder (left in the training mode it had; it runs in eval mode here, and
        its parameters get no gradients).
    unit, time_bin
        Which output ``[unit, time_bin]`` to maximise.
    steps, lr
        Gradient-ascent steps and the step size (image units, on the normalised gradient).
    contrast
        RMS deviation from ``mean`` per pixel and channel that the image keeps.
    mean
        The grey level the contrast is measured from, in [0, 1].
    blur_sigma
        Gaussian blur of the gradient in pixels at the first step, down to 0 at the last.
    jitter
        Largest shift in pixels of the image each step reads (0: none).
    seed
        Seed of the starting noise and of the jitter.

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
    if not 0 <= unit < encoder.n_units or not 0 <= time_bin < encoder.n_bins:
        raise ValueError(
            f"unit and time_bin must index the encoder's [{encoder.n_units}, "
            f"{encoder.n_bins}] outputs, found unit={unit}, time_bin={time_bin}"
        )
    if steps < 1 or lr <= 0 or contrast <= 0 or not 0 <= mean <= 1 or jitter < 0:
        raise ValueError(
            "most_exciting_input needs steps >= 1, lr > 0, contrast > 0, 0 <= mean <= 1 and "
            f"jitter >= 0; found steps={steps}, lr={lr}, contrast={contrast}, mean={mean}, "
            f"jitter={jitter}"
        )
    generator = torch.Generator().manual_seed(seed)
    shape = (1, *encoder.image_shape)
    norm = contrast * float(np.sqrt(np.prod(shape)))
    start = mean + contrast * torch.randn(shape, generator=generator)
    image = _project(start, mean, norm).to(encoder.device)
    was_training = encoder.training
    encoder.eval()
    try:
        for step in range(steps):
            image.requires_grad_(True)
            shift = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            seen = torch.roll(image, shifts=shift, dims=(2, 3)) if jitter else image
            response = encoder(seen)[0, unit, time_bin]
            (gradient,) = torch.autograd.grad(response, image)
            sigma = blur_sigma * (1 - step / steps)
            gradient = gaussian_blur(gradient, sigma)
            step_size = lr / gradient.abs().mean().clamp_min(1e-12)
            image = _project(image.detach() + step_size * gradient, mean, norm)
    finally:
        encoder.train(was_training)
    return image[0].detach().cpu().numpy().astype(np.float32)
