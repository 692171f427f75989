"""Helpers every stimulus source shares: parameter checks, seeded streams, resizing, channels.

The splits and channel counts a source accepts, `check_source_args` for the parameters all
sources take, `source_rng` for a seeded stream per source and split, and the image helpers
that turn pixels of any size and channel count into the float32 ``[n, channels, size, size]``
arrays in [0, 1] of `neuralsight.data.sources.make_stimuli` (`resize_images`,
`to_channels`, `center_square`, `as_unit_float`, `render_pixels`).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

SPLITS: tuple[str, ...] = ("train", "test")


CHANNELS: tuple[int, ...] = (1, 3)

_LUMINANCE = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_block(block: int) -> None:
    """Check the images-per-block parameter of `neuralsight.data.sources.stimulus_blocks`.

    Raises
    ------
    ValueError
        When ``block`` is not a positive integer; the message names it and the value found.

    Examples
    --------
    >>> check_block(2)
    >>> check_block(0)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'block' must be a positive integer, found 0
    """
    if not _is_integer(block) or block < 1:
        raise ValueError(f"parameter 'block' must be a positive integer, found {block!r}")


def check_source_args(n: int, size: int, channels: int, seed: int, split: str) -> None:
    """Check the parameters every stimulus source shares.

    Parameters
    ----------
    n, size, channels, seed, split
        As in `make_stimuli`.

    Raises
    ------
    ValueError
        When a parameter is out of range; the message names it, the allowed values and
        the value found.

    Examples
    --------
    >>> check_source_args(4, 16, 1, 0, "train")
    >>> check_source_args(4, 16, 2, 0, "train")
    Traceback (most recent call last):
    ...
    ValueError: parameter 'channels' must be one of (1, 3), found 2
    """
    if not _is_integer(n) or n < 1:
        raise ValueError(f"parameter 'n' must be a positive integer, found {n!r}")
    if not _is_integer(size) or size < 2:
        raise ValueError(f"parameter 'size' must be an integer >= 2, found {size!r}")
    if not _is_integer(channels) or channels not in CHANNELS:
        raise ValueError(f"parameter 'channels' must be one of {CHANNELS}, found {channels!r}")
    if not _is_integer(seed) or seed < 0:
        raise ValueError(f"parameter 'seed' must be a non-negative integer, found {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"parameter 'split' must be one of {SPLITS}, found {split!r}")


def source_rng(seed: int, source: str, split: str) -> np.random.Generator:
    """A random generator whose stream depends on the seed, the source and the split.

    Parameters
    ----------
    seed
        Non-negative seed.
    source
        Name of the stream, usually the source name (any string works).
    split
        ``"train"`` or ``"test"``.

    Returns
    -------
    numpy.random.Generator
        The same stream for the same arguments; different sources or splits get
        independent streams.

    Raises
    ------
    ValueError
        When ``split`` is not in `SPLITS`.

    Examples
    --------
    >>> a = source_rng(0, "digits", "train").integers(10**6)
    >>> bool(a == source_rng(0, "digits", "train").integers(10**6))
    True
    >>> bool(a == source_rng(0, "digits", "test").integers(10**6))
    False
    """
    return np.random.default_rng([int(seed), zlib.crc32(source.encode()), SPLITS.index(split)])


def shuffled_passes(rng: np.random.Generator, pool: int, n: int) -> np.ndarray:
    """``n`` indices into ``pool`` items: shuffled passes over the pool, repeated as needed.

    Examples
    --------
    >>> indices = shuffled_passes(np.random.default_rng(0), 3, 7)
    >>> sorted(indices[:3].tolist()), sorted(indices[3:6].tolist()), len(indices)
    ([0, 1, 2], [0, 1, 2], 7)
    """
    passes = -(-n // pool)
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:n]


def resize_images(
    images: np.ndarray, size: int, mode: Literal["bicubic", "bilinear"] = "bicubic"
) -> np.ndarray:
    """Resize ``[n, c, h, w]`` float images to ``size`` x ``size``.

    Bicubic (or ``mode="bilinear"``) with anti-aliasing, so downsampling does not alias and
    upsampling is smooth; the cubic overshoot is clipped back into [0, 1]. Images already
    of that size are only cast to float32.

    Parameters
    ----------
    images
        Float images ``[n, c, h, w]`` in [0, 1].
    size
        Side of the square output in pixels.
    mode
        ``"bicubic"`` or ``"bilinear"`` interpolation.

    Returns
    -------
    numpy.ndarray
        float32 ``[n, c, size, size]`` in [0, 1].

    Examples
    --------
    >>> resize_images(np.ones((2, 1, 8, 12), np.float32), 4).shape
    (2, 1, 4, 4)
    """
    if images.shape[-2:] == (size, size):
        return images.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    resized = F.interpolate(
        tensor, size=(size, size), mode=mode, antialias=True, align_corners=False
    )
    return resized.clamp_(0.0, 1.0).numpy()


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``[n, c, h, w]`` images with c in (1, 3) to ``channels`` channels.

    Colour to grey takes the Rec. 709 luminance; grey to colour repeats the grey level in
    all three channels; images that already have ``channels`` channels come back as given.

    Parameters
    ----------
    images
        Images ``[n, c, h, w]`` with c in (1, 3).
    channels
        1 or 3.

    Returns
    -------
    numpy.ndarray
        ``[n, channels, h, w]``; float32 when converted from colour to grey.

    Examples
    --------
    >>> colour = to_channels(np.full((1, 1, 2, 2), 0.5, np.float32), 3)
    >>> colour.shape
    (1, 3, 2, 2)
    >>> round(float(to_channels(colour, 1)[0, 0, 0, 0]), 4)
    0.5
    """
    if images.shape[1] == channels:
        return images
    if channels == 1:
        return np.einsum("nchw,c->nhw", images, _LUMINANCE)[:, None].astype(np.float32)
    return np.repeat(images, 3, axis=1)


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of a ``[c, h, w]`` image.

    Parameters
    ----------
    image
        An image ``[c, h, w]``.

    Returns
    -------
    numpy.ndarray
        A view ``[c, s, s]`` with ``s = min(h, w)``; an odd margin leaves the extra pixel on
        the bottom or right.

    Examples
    --------
    >>> image = np.arange(12).reshape(1, 2, 6)
    >>> center_square(image)
    array([[[2, 3],
            [8, 9]]])
    """
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[:, top : top + side, left : left + side]


def as_unit_float(array: np.ndarray, path: Path) -> np.ndarray:
    """Decoded image pixels as float32 ``[c, h, w]`` in [0, 1], c in (1, 3); alpha dropped.

    Integers are divided by their dtype's maximum, booleans become 0 and 1, floats are
    clipped to [0, 1]. Grey with alpha keeps the grey channel, RGBA the three colours.

    Parameters
    ----------
    array
        Decoded pixels ``[h, w]`` or ``[h, w, k]`` with k in 1-4.
    path
        Where the pixels came from, named in error messages.

    Returns
    -------
    numpy.ndarray
        C-contiguous float32 ``[c, h, w]`` in [0, 1], c in (1, 3).

    Raises
    ------
    ValueError
        When ``array`` has another shape.

    Examples
    --------
    >>> pixels = np.array([[[0, 255, 51, 255]]], np.uint8)  # one RGBA pixel
    >>> as_unit_float(pixels, Path("pixel.png"))[:, 0, 0].tolist()
    [0.0, 1.0, 0.20000000298023224]
    """
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"{path}: expected an image of shape [height, width] or [height, width, 1-4 "
            f"channels], found shape {array.shape}"
        )
    array = array[:, :, :1] if array.shape[2] in (1, 2) else array[:, :, :3]
    if array.dtype == bool:
        values = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        values = array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    else:
        values = np.clip(array.astype(np.float32), 0.0, 1.0)
    return np.ascontiguousarray(values.transpose(2, 0, 1))


def render_pixels(pixels: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Images from stored pixels, resized and converted to ``channels``.

    Parameters
    ----------
    pixels
        ``[k, h, w]`` grey or ``[k, h, w, 3]`` colour, float in [0, 1] or uint8 (scaled
        by 1/255).
    size, channels
        As in `neuralsight.data.sources.make_stimuli`.

    Returns
    -------
    numpy.ndarray
        float32 ``[k, channels, size, size]`` in [0, 1].

    Examples
    --------
    >>> render_pixels(np.full((2, 4, 4, 3), 255, np.uint8), 8, 1).shape
    (2, 1, 8, 8)
    """
    images = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    return to_channels(resize_images(images, size), channels)
