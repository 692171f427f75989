"""The ``digits`` source: scikit-learn's bundled 8x8 handwritten digits, upsampled smoothly.

1797 images ship inside scikit-learn, so nothing is downloaded. Every
`DIGITS_TEST_EVERY`-th sample (index 0, 5, 10, ...) is test, the rest train; a draw larger
than its split starts another shuffled pass, so every image repeats equally often.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from neuralsight.data.sources.blocks import Draw, StimulusBlock, register_source, row_blocks
from neuralsight.data.sources.common import render_pixels, shuffled_passes, source_rng

DIGITS_TEST_EVERY = 5


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
    return pool[shuffled_passes(source_rng(seed, "digits", split), len(pool), n)]


@register_source(
    "digits", "scikit-learn's bundled 8x8 handwritten digits (1797), upsampled; offline"
)
def digit_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a ``digits`` draw: the chosen digits, resized as they are rendered."""
    pixels = _digit_pixels(draw.n, draw.seed, draw.split)
    yield from row_blocks(pixels, draw, render_pixels)
