"""The ``deadleaves`` source: procedural dead-leaves scenes with natural-image statistics.

Opaque discs with power-law radii (density ~ r^-3) and uniform random grey levels or
colours, stacked until they cover the image. They share the scale invariance and the ~1/f^2
power spectrum of natural images, and are unlimited: image ``i`` of a draw has its own
seeded stream, so a longer draw extends a shorter one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Literal

import numpy as np

from neuralsight.data.sources.blocks import Draw, StimulusBlock, register_source
from neuralsight.data.sources.common import SPLITS, check_source_args

DEADLEAVES_R_MIN = 1 / 32
DEADLEAVES_R_MAX = 1 / 2
DEADLEAVES_SUPERSAMPLE = 2
_DEADLEAVES_BATCH = 2048


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


@register_source(
    "deadleaves", "procedural dead-leaves scenes (r^-3 discs), natural-image statistics; unlimited"
)
def dead_leaves_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a ``deadleaves`` draw: each holds the image indices it renders."""
    for start in range(0, draw.n, draw.block):
        stop = min(start + draw.block, draw.n)
        args = (start, stop, draw.size, draw.channels, draw.seed, draw.split)
        yield StimulusBlock(start, stop - start, _dead_leaves_range, args)
