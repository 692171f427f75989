"""The ``folder`` source: any folder of image files, sorted by name.

Each file is centre-cropped to a square and resized. In name order every
`FOLDER_TEST_EVERY`-th file (the 10th, 20th, ...) is test, the rest train; a draw takes a
seeded subset of its split, kept in name order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import numpy as np

from neuralsight.data.sources.blocks import Draw, StimulusBlock, register_source, row_blocks
from neuralsight.data.sources.common import (
    SPLITS,
    as_unit_float,
    center_square,
    resize_images,
    source_rng,
    to_channels,
)

FOLDER_TEST_EVERY = 10
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


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


def _folder_choice(
    root: str | None, n: int, seed: int, split: Literal["train", "test"]
) -> list[Path]:
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


@register_source(
    "folder", "image files in the folder given as root, sorted by name; every 10th file is test"
)
def folder_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a ``folder`` draw: the chosen file names, read as they are rendered."""
    files = _folder_choice(draw.root, draw.n, draw.seed, draw.split)
    yield from row_blocks(files, draw, _render_files)
