"""The ``mnist``, ``cifar10`` and ``cifar100`` sources: torchvision's files under ``root``.

The data sets are read from torchvision's on-disk layout under ``root``, with their own
train/test split, and only downloaded when ``download=True``. A draw larger than its split
starts another shuffled pass, so every image repeats equally often.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from neuralsight.data.sources.blocks import Draw, StimulusBlock, register_source, row_blocks
from neuralsight.data.sources.common import render_pixels, shuffled_passes, source_rng

_TORCHVISION_CLASSES = {"mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


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
    return data[shuffled_passes(source_rng(seed, name, split), len(data), n)]


@register_source(
    "mnist", "torchvision MNIST under root (28x28 grey digits); download=True fetches it"
)
@register_source(
    "cifar10",
    "torchvision CIFAR-10 under root (32x32 colour, 10 classes); download=True fetches it",
)
@register_source(
    "cifar100",
    "torchvision CIFAR-100 under root (32x32 colour, 100 classes); download=True fetches it",
)
def torchvision_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a torchvision data set's draw: the chosen images' pixels."""
    pixels = _torchvision_pixels(draw.name, draw.n, draw.seed, draw.split, draw.root, draw.download)
    yield from row_blocks(pixels, draw, render_pixels)
