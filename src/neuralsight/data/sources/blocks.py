"""What a stimulus source is: a registered maker of `StimulusBlock` recipes for a `Draw`.

Every source registers itself in `SOURCES` with `register_source`, under its short name and
with a one-line description for command-line help. What it registers is a block maker: given
a checked `Draw` (which source, how many images, their size, channels, seed and split), it
yields the `StimulusBlock` recipes whose images, concatenated, are the draw. Everything
random is decided while the recipes are made, in order; rendering a recipe needs no random
state, so another process can do it.

Examples
--------
>>> import neuralsight.data.sources
>>> SOURCES.names()
('cifar10', 'cifar100', 'deadleaves', 'digits', 'folder', 'mnist', 'natural')
>>> SOURCES.get("digits").description.startswith("scikit-learn's bundled")
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from neuralsight.registry import Registry


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


@dataclass(frozen=True)
class Draw:
    """The checked parameters of one draw, as `neuralsight.data.sources.stimulus_blocks`
    takes them: ``n`` images of ``size`` x ``size`` pixels and ``channels`` channels, cut
    into blocks of ``block``, from the source ``name``."""

    name: str
    n: int
    block: int
    size: int
    channels: int
    seed: int
    split: Literal["train", "test"]
    root: str | None
    download: bool


BlockMaker = Callable[[Draw], Iterator[StimulusBlock]]


@dataclass(frozen=True)
class Source:
    """A registered source: its block maker and its one-line description."""

    blocks: BlockMaker
    description: str


SOURCES: Registry[Source] = Registry("source")
"""Every stimulus source by short name: ``SOURCES.get(name).blocks(draw)``."""


def register_source(name: str, description: str) -> Callable[[BlockMaker], BlockMaker]:
    """Decorator registering a block maker in `SOURCES` as ``name``, with its description.

    Examples
    --------
    >>> from neuralsight.data.sources.digits import digit_blocks
    >>> SOURCES.get("digits").blocks is digit_blocks
    True
    """

    def decorate(blocks: BlockMaker) -> BlockMaker:
        SOURCES.add(name, Source(blocks, description))
        return blocks

    return decorate


def row_blocks(
    rows: Sequence[Any] | np.ndarray, draw: Draw, make: Callable[..., np.ndarray]
) -> Iterator[StimulusBlock]:
    """Blocks of ``draw.block`` of the chosen ``rows`` (pixels or file names), each
    rendered as ``make(rows_of_the_block, size, channels)``.

    Examples
    --------
    >>> draw = Draw("digits", 5, 2, 8, 1, 0, "train", None, False)
    >>> [(b.start, b.count) for b in row_blocks(list("abcde"), draw, print)]
    [(0, 2), (2, 2), (4, 1)]
    """
    for start in range(0, len(rows), draw.block):
        part = rows[start : start + draw.block]
        yield StimulusBlock(start, len(part), make, (part, draw.size, draw.channels))
