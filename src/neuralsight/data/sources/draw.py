"""Draw images from any registered stimulus source by name: `make_stimuli`, `stimulus_blocks`.

`make_stimuli` returns a whole draw; `stimulus_blocks` cuts a draw too large for memory into
`StimulusBlock` recipes; `describe_source` gives the one line of help of a source. All three
check the source's name against `SOURCES` and the shared parameters before anything is read
or drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from neuralsight.data.sources.blocks import SOURCES, Draw, StimulusBlock
from neuralsight.data.sources.common import check_block, check_source_args


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
        A name in `SOURCES`.
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
    check_block(block)
    draw = Draw(name, n, block, size, channels, seed, split, root, download)
    yield from SOURCES.get(name).blocks(draw)


def describe_source(name: str) -> str:
    """One line describing a source, for command-line help.

    Examples
    --------
    >>> describe_source("deadleaves").startswith("procedural dead-leaves")
    True
    """
    _check_source_name(name)
    return SOURCES.get(name).description


def _check_source_name(name: str) -> None:
    if name not in SOURCES:
        raise ValueError(f"parameter 'name' must be one of {SOURCES.names()}, found {name!r}")
