"""Stimulus sources: the images that simulators, the CLI and the API show to a model brain.

Every source is reached by name through `make_stimuli`, which returns float32
``[n, channels, size, size]`` arrays in [0, 1], the ``stimuli`` layout of `NeuralDataset`.
The same seed always gives the same images, and the train and test splits never share an
image (or, for ``natural``, a photograph).

Sources
-------
``digits``
    scikit-learn's bundled 8x8 handwritten digits (1797 images), upsampled smoothly. Every
    `DIGITS_TEST_EVERY`-th sample (index 0, 5, 10, ...) is test, the rest train.
``natural``
    Random crops, at random scales and with random horizontal flips, of the natural
    photographs that ship inside the scikit-image wheel. Whole photographs are held out for
    the test split (`NATURAL_TEST_PHOTOS`), so test crops come from unseen scenes. The files
    are read straight from the scikit-image installation: nothing is ever downloaded.
``deadleaves``
    Procedural dead-leaves scenes: opaque discs with power-law radii (density ~ r^-3) and
    uniform random grey levels or colours, stacked until they cover the image. They share the
    scale invariance and the ~1/f^2 power spectrum of natural images, and are unlimited.
``folder``
    Any folder of image files, sorted by name, centre-cropped to a square and resized. Every
    `FOLDER_TEST_EVERY`-th file (the 10th, 20th, ...) is test, the rest train.
``mnist``, ``cifar10``, ``cifar100``
    The torchvision data sets under ``root``, with their own train/test split. They are only
    downloaded when ``download=True``.

Grey (``channels=1``) images are the luminance of colour ones (Rec. 709 weights, as in
``skimage.color.rgb2gray``); colour (``channels=3``) images of grey-only sources repeat the
grey level in all three channels, except ``natural``, which then crops colour photographs
only (`NATURAL_COLOUR_PHOTOS`).

A draw too large for memory is made block by block: `stimulus_blocks` cuts it into
`StimulusBlock` recipes (small and picklable, so another process can render them) whose
images, concatenated, are those of `make_stimuli`.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

SOURCES: tuple[str, ...] = (
    "digits",
    "natural",
    "deadleaves",
    "folder",
    "mnist",
    "cifar10",
    "cifar100",
)
SPLITS: tuple[str, ...] = ("train", "test")
CHANNELS: tuple[int, ...] = (1, 3)

DIGITS_TEST_EVERY = 5
FOLDER_TEST_EVERY = 10
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")

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

DEADLEAVES_R_MIN = 1 / 32
DEADLEAVES_R_MAX = 1 / 2
DEADLEAVES_SUPERSAMPLE = 2
_DEADLEAVES_BATCH = 2048

_LUMINANCE = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
_TORCHVISION_CLASSES = {"mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_DESCRIPTIONS = {
    "digits": "scikit-learn's bundled 8x8 handwritten digits (1797), upsampled; offline",
    "natural": "random crops of scikit-image's bundled photographs, test photos held out; offline",
    "deadleaves": "procedural dead-leaves scenes (r^-3 discs), natural-image statistics; unlimited",
    "folder": "image files in the folder given as root, sorted by name; every 10th file is test",
    "mnist": "torchvision MNIST under root (28x28 grey digits); download=True fetches it",
    "cifar10": "torchvision CIFAR-10 under root (32x32 colour, 10 classes); download=True fetches it",
    "cifar100": "torchvision CIFAR-100 under root (32x32 colour, 100 classes); download=True fetches it",
}


def make_stimuli(
    name: str,
    n: int,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
    root: str | None = None,
    download: bool = False,
) -> np.ndarray:
    """Draw ``n`` stimulus images from the source called ``name``.

    Parameters
    ----------
    name
        One of `SOURCES`.
    n
        Number of images, at least 1. ``digits``, ``mnist`` and ``cifar*`` draw without
        replacement while ``n`` fits in the split and then start another shuffled pass (so
        every image repeats equally often); ``folder`` raises when the split holds fewer than
        ``n`` files; ``natural`` and ``deadleaves`` are unlimited.
    size
        Side of the square output images in pixels, at least 2.
    channels
        1 (grey, luminance) or 3 (RGB).
    seed
        Non-negative seed; the same seed gives the same images.
    split
        ``"train"`` or ``"test"``; the two never share an image.
    root
        The image folder for ``folder``; the data directory for ``mnist``/``cifar10``/
        ``cifar100``. Ignored by the other sources.
    download
        Let torchvision fetch ``mnist``/``cifar10``/``cifar100`` into ``root`` when absent.

    Returns
    -------
    numpy.ndarray
        float32 ``[n, channels, size, size]`` in [0, 1].

    Raises
    ------
    ValueError
        For an unknown source or a bad parameter; the message names it and the allowed values.
    FileNotFoundError
        When a folder or data set is missing; the message names the expected files.

    Examples
    --------
    >>> images = make_stimuli("digits", 4, size=16)
    >>> images.shape, images.dtype
    ((4, 1, 16, 16), dtype('float32'))
    >>> bool(images.min() >= 0 and images.max() <= 1)
    True
    """
    (block,) = stimulus_blocks(name, n, n, size, channels, seed, split, root, download)
    return block.render()


@dataclass(frozen=True)
class StimulusBlock:
    """A recipe for ``count`` consecutive images of a draw, from image ``start`` on.

    It holds only what the images are made from (pixel arrays of a few images, crop boxes,
    file names or seeds), so it is small and can be sent to another process; `render`
    makes the images there.
    """

    start: int
    count: int
    make: Callable[..., np.ndarray]
    args: tuple[Any, ...]

    def render(self) -> np.ndarray:
        """The images, float32 ``[count, channels, size, size]`` in [0, 1]."""
        return np.ascontiguousarray(self.make(*self.args), dtype=np.float32)


def stimulus_blocks(
    name: str,
    n: int,
    block: int,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
    root: str | None = None,
    download: bool = False,
) -> Iterator[StimulusBlock]:
    """Cut the draw of `make_stimuli` into blocks of ``block`` images (the last may be short).

    The blocks come lazily, in order; the images of all of them, concatenated, are the
    ``n`` images ``make_stimuli(name, n, ...)`` returns. Everything random is decided here,
    in order (so ``natural`` crops are drawn as the blocks are asked for); rendering a
    block (resizing, reading files, drawing dead leaves) needs no random state.

    Parameters
    ----------
    name, n, size, channels, seed, split, root, download
        As in `make_stimuli`.
    block
        Images per block, at least 1.

    Examples
    --------
    >>> blocks = list(stimulus_blocks("digits", 5, 2, size=16))
    >>> [(b.start, b.count) for b in blocks]
    [(0, 2), (2, 2), (4, 1)]
    >>> whole = make_stimuli("digits", 5, size=16)
    >>> bool(np.array_equal(np.concatenate([b.render() for b in blocks]), whole))
    True
    """
    _check_source_name(name)
    check_source_args(n, size, channels, seed, split)
    if not _is_integer(block) or block < 1:
        raise ValueError(f"parameter 'block' must be a positive integer, found {block!r}")
    if name == "natural":
        yield from _natural_blocks(n, block, size, channels, seed, split)
        return
    if name == "deadleaves":
        for start in range(0, n, block):
            stop = min(start + block, n)
            args = (start, stop, size, channels, seed, split)
            yield StimulusBlock(start, stop - start, _dead_leaves_range, args)
        return
    if name == "digits":
        pixels, make = _digit_pixels(n, seed, split), _render_pixels
    elif name == "folder":
        pixels, make = _folder_choice(root, n, seed, split), _render_files
    else:
        pixels = _torchvision_pixels(name, n, seed, split, root, download)
        make = _render_pixels
    for start in range(0, n, block):
        rows = pixels[start : start + block]
        yield StimulusBlock(start, len(rows), make, (rows, size, channels))


def _render_pixels(pixels: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Images from stored pixels: ``[k, h, w]`` grey or ``[k, h, w, 3]`` colour, float in
    [0, 1] or uint8 (scaled by 1/255), resized and converted to ``channels``."""
    images = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    return to_channels(resize_images(images, size), channels)


def describe_source(name: str) -> str:
    """One line describing a source, for command-line help.

    Examples
    --------
    >>> describe_source("deadleaves").startswith("procedural dead-leaves")
    True
    """
    _check_source_name(name)
    return _DESCRIPTIONS[name]


# ---------------------------------------------------------------------------------------
# parameter checks and shared helpers


def _check_source_name(name: str) -> None:
    if name not in SOURCES:
        raise ValueError(f"parameter 'name' must be one of {SOURCES}, found {name!r}")


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


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


def _shuffled_passes(rng: np.random.Generator, pool: int, n: int) -> np.ndarray:
    """``n`` indices into ``pool`` items: shuffled passes over the pool, repeated as needed."""
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


# ---------------------------------------------------------------------------------------
# digits


@functools.lru_cache(maxsize=1)
def _digit_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0
    images.setflags(write=False)
    return images


def _digit_pixels(n: int, seed: int, split: str) -> np.ndarray:
    """The ``n`` chosen 8x8 digits, float ``[n, 8, 8]`` in [0, 1]."""
    images = _digit_images()
    is_test = np.arange(len(images)) % DIGITS_TEST_EVERY == 0
    pool = images[is_test if split == "test" else ~is_test]
    return pool[_shuffled_passes(source_rng(seed, "digits", split), len(pool), n)]


# ---------------------------------------------------------------------------------------
# natural photographs


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


def _natural_blocks(
    n: int, block: int, size: int, channels: int, seed: int, split: str
) -> Iterator[StimulusBlock]:
    crops: list[_Crop] = []
    start = 0
    for crop in _draw_crops(n, size, channels, seed, split, NATURAL_MAX_SCALE, True):
        crops.append(crop)
        if len(crops) == block or start + len(crops) == n:
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


# ---------------------------------------------------------------------------------------
# dead leaves


def _power_law_radii(rng: np.random.Generator, count: int, r_min: float, r_max: float):
    """Radii with density proportional to r^-3 on [r_min, r_max] (inverse-CDF sampling)."""
    u = rng.random(count)
    return (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5


def _covering_pairs(
    size: int, centre_x: np.ndarray, centre_y: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All (pixel, disc) pairs where the disc covers the pixel centre, ordered by disc.

    Only the pixels of each disc's bounding box are tested, so small discs cost little.
    """
    x0, x1, y0, y1 = (
        np.clip(bound, 0, size).astype(np.int64)
        for bound in (
            np.ceil(centre_x - radius - 0.5),
            np.floor(centre_x + radius - 0.5) + 1,
            np.ceil(centre_y - radius - 0.5),
            np.floor(centre_y + radius - 0.5) + 1,
        )
    )
    width, height = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    counts = width * height
    disc = np.repeat(np.arange(len(radius)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pixel_x = x0[disc] + offset % width[disc]
    pixel_y = y0[disc] + offset // width[disc]
    distance2 = (pixel_x + 0.5 - centre_x[disc]) ** 2 + (pixel_y + 0.5 - centre_y[disc]) ** 2
    inside = distance2 <= radius[disc] ** 2
    return (pixel_y * size + pixel_x)[inside], disc[inside]


def _render_dead_leaves(
    rng: np.random.Generator, size: int, channels: int, r_min: float, r_max: float
) -> np.ndarray:
    """One ``[channels, size, size]`` dead-leaves image, without anti-aliasing; radii in pixels.

    Discs are drawn front to back in batches: each pixel takes the colour of the first disc
    that covers its centre, and drawing stops once every pixel is covered. Disc centres are
    uniform on the image grown by ``r_max`` on every side, so discs entering from outside are
    as frequent as on an infinite plane.
    """
    image = np.zeros((channels, size * size), dtype=np.float32)
    covered = np.zeros(size * size, dtype=bool)
    while not covered.all():
        radius = _power_law_radii(rng, _DEADLEAVES_BATCH, r_min, r_max)
        centre_x, centre_y = rng.uniform(-r_max, size + r_max, (2, _DEADLEAVES_BATCH))
        colour = rng.random((_DEADLEAVES_BATCH, channels), dtype=np.float32)
        pixel, disc = _covering_pairs(size, centre_x, centre_y, radius)
        pixel, first = np.unique(pixel, return_index=True)
        new = ~covered[pixel]
        image[:, pixel[new]] = colour[disc[first[new]]].T
        covered[pixel[new]] = True
    return image.reshape(channels, size, size)


def dead_leaves(
    n: int,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
    r_min: float = DEADLEAVES_R_MIN,
    r_max: float = DEADLEAVES_R_MAX,
) -> np.ndarray:
    """Dead-leaves scenes: occluding discs with power-law radii and random colours.

    Radii follow a density ~ r^-3 between ``r_min`` and ``r_max`` (fractions of the image
    side; the smallest radius is kept at half a pixel or more), which makes the scenes scale
    invariant with a power spectrum close to natural images' 1/f^2. Grey levels (or each RGB
    component) are uniform in [0, 1]. Scenes are rendered at `DEADLEAVES_SUPERSAMPLE` times
    the resolution and box-averaged down, so disc edges are anti-aliased. Image ``i`` depends only on ``seed``, ``split`` and
    ``i``, so a longer draw extends a shorter one; train and test use different streams.

    Parameters
    ----------
    n, size, channels, seed, split
        As in `make_stimuli`.
    r_min, r_max
        Smallest and largest disc radius as fractions of the image side,
        ``0 < r_min < r_max``.

    Returns
    -------
    numpy.ndarray
        float32 ``[n, channels, size, size]`` in [0, 1].

    Examples
    --------
    >>> images = dead_leaves(2, size=32, seed=3)
    >>> images.shape, bool(np.array_equal(images[:1], dead_leaves(1, size=32, seed=3)))
    ((2, 1, 32, 32), True)
    """
    check_source_args(n, size, channels, seed, split)
    if not 0 < r_min < r_max:
        raise ValueError(
            f"parameters 'r_min' and 'r_max' must satisfy 0 < r_min < r_max, "
            f"found r_min={r_min!r}, r_max={r_max!r}"
        )
    return _dead_leaves_range(0, n, size, channels, seed, split, r_min, r_max)


def _dead_leaves_range(
    start: int,
    stop: int,
    size: int,
    channels: int,
    seed: int,
    split: str,
    r_min: float = DEADLEAVES_R_MIN,
    r_max: float = DEADLEAVES_R_MAX,
) -> np.ndarray:
    """Images ``start`` to ``stop - 1`` of a dead-leaves draw; image ``i`` has its own stream,
    the ``i``-th child of the draw's seed sequence."""
    fine = size * DEADLEAVES_SUPERSAMPLE
    radius_low = max(r_min * size, 0.5) * DEADLEAVES_SUPERSAMPLE
    radius_high = max(r_max * size * DEADLEAVES_SUPERSAMPLE, radius_low * 1.01)
    entropy = [int(seed), zlib.crc32(b"deadleaves"), SPLITS.index(split)]
    images = np.stack(
        [
            _render_dead_leaves(
                np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(index,))),
                fine,
                channels,
                radius_low,
                radius_high,
            )
            for index in range(start, stop)
        ]
    )
    blocks = (stop - start, channels, size, DEADLEAVES_SUPERSAMPLE, size, DEADLEAVES_SUPERSAMPLE)
    return images.reshape(blocks).mean(axis=(3, 5))


# ---------------------------------------------------------------------------------------
# folders of image files


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


def folder_files(root: str | Path, split: Literal["train", "test"] = "train") -> list[Path]:
    """The image files of one split of a folder, sorted by name.

    Files with an extension in `IMAGE_EXTENSIONS` (any case) count, sub-folders do not. In
    name order, every `FOLDER_TEST_EVERY`-th file (the 10th, 20th, ...) is test and the others
    are train.

    Examples
    --------
    >>> import tempfile, imageio.v3 as iio
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(12):
    ...     iio.imwrite(folder / f"{i:02d}.png", np.zeros((4, 4), np.uint8))
    >>> [path.name for path in folder_files(folder, "test")]
    ['09.png']
    """
    if split not in SPLITS:
        raise ValueError(f"parameter 'split' must be one of {SPLITS}, found {split!r}")
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder (parameter 'root') does not exist")
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise FileNotFoundError(
            f"{folder}: no image files found; expected files ending in {IMAGE_EXTENSIONS}"
        )
    is_test = (np.arange(len(files)) + 1) % FOLDER_TEST_EVERY == 0
    return [path for path, test in zip(files, is_test, strict=True) if test == (split == "test")]


def _read_image_file(path: Path) -> np.ndarray:
    try:
        pixels = iio.imread(path, index=0)
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as an image ({error})") from error
    return as_unit_float(np.asarray(pixels), path)


def _folder_choice(root: str | None, n: int, seed: int, split: str) -> list[Path]:
    """``n`` files of the split, a seeded subset kept in name order; all of them when ``n``
    equals the split size."""
    if root is None:
        raise ValueError("source 'folder' needs parameter 'root', the folder of images; found None")
    files = folder_files(root, split)
    if len(files) < n:
        raise ValueError(
            f"{root}: the {split} split holds {len(files)} image files (every "
            f"{FOLDER_TEST_EVERY}th file is test), fewer than the n={n} requested"
        )
    chosen = np.sort(source_rng(seed, "folder", split).choice(len(files), size=n, replace=False))
    return [files[index] for index in chosen]


def _render_files(paths: Sequence[Path], size: int, channels: int) -> np.ndarray:
    """Read, centre-crop and resize image files: float32 ``[len(paths), channels, size, size]``."""
    images = np.empty((len(paths), channels, size, size), dtype=np.float32)
    for row, path in enumerate(paths):
        square = center_square(_read_image_file(path))
        images[row] = to_channels(resize_images(square[None], size), channels)[0]
    return images


# ---------------------------------------------------------------------------------------
# torchvision data sets


def _expected_files(name: str, root: Path) -> tuple[Path, list[str]]:
    """The directory torchvision reads ``name`` from, and the file names it needs there."""
    import torchvision.datasets as tvd

    dataset_class = getattr(tvd, _TORCHVISION_CLASSES[name])
    if name == "mnist":
        names = [Path(url).name.removesuffix(".gz") for url, _ in dataset_class.resources]
        return root / dataset_class.__name__ / "raw", names
    listed = dataset_class.train_list + dataset_class.test_list
    names = [file_name for file_name, _ in listed] + [dataset_class.meta["filename"]]
    return root / dataset_class.base_folder, names


def _missing_files_error(name: str, directory: Path, missing: Sequence[str]) -> FileNotFoundError:
    return FileNotFoundError(
        f"{directory}: {name} files not found (missing: {', '.join(missing)}). "
        f"Expected {name} in torchvision's layout under that directory; pass download=True "
        "(or --download on the command line) to fetch it where the network allows, or point "
        "root at a directory that already holds it"
    )


def _torchvision_pixels(
    name: str, n: int, seed: int, split: str, root: str | None, download: bool
) -> np.ndarray:
    """The ``n`` chosen images of a torchvision data set, uint8 ``[n, h, w(, 3)]``."""
    import torchvision.datasets as tvd

    if root is None:
        raise ValueError(
            f"source {name!r} needs parameter 'root', the directory holding (or to receive) "
            "the data set; found None"
        )
    directory, needed = _expected_files(name, Path(root))
    missing = [file_name for file_name in needed if not (directory / file_name).is_file()]
    if missing and not download:
        raise _missing_files_error(name, directory, missing)
    dataset_class = getattr(tvd, _TORCHVISION_CLASSES[name])
    try:
        dataset = dataset_class(root=str(root), train=split == "train", download=download)
    except RuntimeError as error:
        raise RuntimeError(f"{directory}: torchvision could not load {name}: {error}") from error
    data = np.asarray(dataset.data)
    return data[_shuffled_passes(source_rng(seed, name, split), len(data), n)]
