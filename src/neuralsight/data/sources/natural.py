"""The ``natural`` source: random crops of the natural photographs inside scikit-image.

Crops at random scales and with random horizontal flips of the photographs that ship inside
the scikit-image wheel, read straight from the installation: nothing is ever downloaded.
Whole photographs are held out for the test split (`NATURAL_TEST_PHOTOS`), so test crops
come from unseen scenes; colour draws crop colour photographs only
(`NATURAL_COLOUR_PHOTOS`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import numpy as np

from neuralsight.data.sources.blocks import Draw, StimulusBlock, register_source
from neuralsight.data.sources.common import (
    as_unit_float,
    check_source_args,
    resize_images,
    source_rng,
    to_channels,
)

NATURAL_PHOTO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "moon": "moon.png",
    "motorcycle": "motorcycle_left.png",
    "rocket": "rocket.jpg",
}
NATURAL_COLOUR_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "motorcycle", "rocket")
NATURAL_TEST_PHOTOS: tuple[str, ...] = ("chelsea", "coins", "gravel")
NATURAL_TRAIN_PHOTOS: tuple[str, ...] = tuple(
    name for name in NATURAL_PHOTO_FILES if name not in NATURAL_TEST_PHOTOS
)
NATURAL_MAX_SCALE = 4.0


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


@functools.lru_cache(maxsize=len(NATURAL_PHOTO_FILES))
def load_photo(name: str) -> np.ndarray:
    """A bundled photograph as read-only float32 ``[c, h, w]`` in [0, 1], c in (1, 3).

    Read straight from the files in the scikit-image wheel, never through
    ``skimage.data.<name>()``, whose fetcher may try to download. Results are cached, so
    every call for one name returns the same read-only array.

    Parameters
    ----------
    name
        A key of `NATURAL_PHOTO_FILES`.

    Returns
    -------
    numpy.ndarray
        Read-only float32 ``[c, h, w]`` in [0, 1]; c is 3 for the photographs in
        `NATURAL_COLOUR_PHOTOS`, 1 for the others.

    Raises
    ------
    KeyError
        When ``name`` is not a key of `NATURAL_PHOTO_FILES`.
    FileNotFoundError
        When the scikit-image installation lacks the photograph's file.

    Examples
    --------
    >>> photo = load_photo("camera")
    >>> photo.shape, photo.dtype, photo.flags.writeable
    ((1, 512, 512), dtype('float32'), False)
    """
    path = _skimage_data_dir() / NATURAL_PHOTO_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: bundled scikit-image photograph {name!r} is missing; "
            "reinstall scikit-image (its wheel ships this file)"
        )
    photo = as_unit_float(iio.imread(path), path)
    photo.setflags(write=False)
    return photo


def natural_photos(channels: int, split: str) -> tuple[str, ...]:
    """The bundled photographs a split of the ``natural`` source draws from.

    Parameters
    ----------
    channels
        1 (every photograph of the split) or 3 (only those in `NATURAL_COLOUR_PHOTOS`).
    split
        ``"test"`` for `NATURAL_TEST_PHOTOS`; anything else for `NATURAL_TRAIN_PHOTOS`.

    Returns
    -------
    tuple of str
        Keys of `NATURAL_PHOTO_FILES`.

    Examples
    --------
    >>> natural_photos(3, "test")
    ('chelsea',)
    """
    photos = NATURAL_TEST_PHOTOS if split == "test" else NATURAL_TRAIN_PHOTOS
    if channels == 3:
        photos = tuple(name for name in photos if name in NATURAL_COLOUR_PHOTOS)
    return photos


@dataclass(frozen=True)
class _Crop:
    """Where a crop lies in a bundled photograph: ``side`` pixels from ``(top, left)``."""

    photo: str
    top: int
    left: int
    side: int
    flipped: bool


def _draw_crop(
    rng: np.random.Generator, photo: str, size: int, max_scale: float, flip: bool
) -> _Crop:
    """One square crop of ``photo`` with a log-uniform side in [size, max_scale * size]."""
    height, width = load_photo(photo).shape[-2:]
    shortest = min(height, width)
    low, high = min(size, shortest), min(max_scale * size, shortest)
    side = round(float(np.exp(rng.uniform(np.log(low), np.log(high)))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return _Crop(photo, top, left, side, bool(flip and rng.random() < 0.5))


def _draw_crops(
    n: int, size: int, channels: int, seed: int, split: str, max_scale: float, flip: bool
) -> Iterator[_Crop]:
    """The ``n`` crops of a draw, in order, from one generator."""
    pool = natural_photos(channels, split)
    rng = source_rng(seed, "natural", split)
    for _ in range(n):
        yield _draw_crop(rng, pool[int(rng.integers(len(pool)))], size, max_scale, flip)


def _render_crops(crops: Sequence[_Crop], size: int, channels: int) -> np.ndarray:
    """Cut, flip and resize crops: float32 ``[len(crops), channels, size, size]``."""
    images = np.empty((len(crops), channels, size, size), dtype=np.float32)
    for index, crop in enumerate(crops):
        pixels = load_photo(crop.photo)[
            :, crop.top : crop.top + crop.side, crop.left : crop.left + crop.side
        ]
        if crop.flipped:
            pixels = pixels[:, :, ::-1]
        images[index] = to_channels(resize_images(pixels[None], size), channels)[0]
    return images


@register_source(
    "natural", "random crops of scikit-image's bundled photographs, test photos held out; offline"
)
def natural_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a ``natural`` draw: the crops are drawn as the blocks are asked for."""
    crops: list[_Crop] = []
    start = 0
    size, channels = draw.size, draw.channels
    for crop in _draw_crops(draw.n, size, channels, draw.seed, draw.split, NATURAL_MAX_SCALE, True):
        crops.append(crop)
        if len(crops) == draw.block or start + len(crops) == draw.n:
            yield StimulusBlock(start, len(crops), _render_crops, (tuple(crops), size, channels))
            start, crops = start + len(crops), []


def natural_crops(
    n: int,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
    max_scale: float = NATURAL_MAX_SCALE,
    flip: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Random crops of scikit-image's bundled natural photographs, and where each came from.

    Each crop picks a photograph uniformly from the split (`NATURAL_TRAIN_PHOTOS` or
    `NATURAL_TEST_PHOTOS`; for ``channels=3`` only those in `NATURAL_COLOUR_PHOTOS`), a square
    side log-uniform between ``size`` and ``max_scale * size`` (capped by the photograph), a
    uniform position and, when ``flip``, a horizontal flip with probability 1/2; it is then
    resized to ``size`` with anti-aliasing. Grey crops of colour photographs are luminance.

    Parameters
    ----------
    n, size, channels, seed, split
        As in `make_stimuli`.
    max_scale
        Largest crop side as a multiple of ``size``, at least 1.
    flip
        Allow random horizontal flips.

    Returns
    -------
    images : numpy.ndarray
        float32 ``[n, channels, size, size]`` in [0, 1].
    photos : list of str
        The photograph each crop was cut from.

    Examples
    --------
    >>> images, photos = natural_crops(3, size=32, split="test", seed=1)
    >>> images.shape, set(photos) <= set(NATURAL_TEST_PHOTOS)
    ((3, 1, 32, 32), True)
    """
    check_source_args(n, size, channels, seed, split)
    if not max_scale >= 1:
        raise ValueError(f"parameter 'max_scale' must be >= 1, found {max_scale!r}")
    crops = list(_draw_crops(n, size, channels, seed, split, max_scale, flip))
    return _render_crops(crops, size, channels), [crop.photo for crop in crops]
