"""The ``mnist``, ``cifar10`` and ``cifar100`` sources: their files under ``root``, no download.

Each data set keeps its own train/test split, is read from local files, and is only
downloaded (by torchvision, into its layout under ``root``) when ``download=True``. A draw
larger than its split starts another shuffled pass, so every image repeats equally often.

``root`` may hold either layout:

``mnist``
    torchvision's layout (the unpacked IDX files in ``root/MNIST/raw/``, read by
    torchvision), or the IDX files directly in ``root``, gzipped (``*-ubyte.gz``, as
    distributed) or not, read by `read_idx_images`. Train is ``train-images-idx3-ubyte``
    (60,000 images), test ``t10k-images-idx3-ubyte`` (10,000).
``cifar10``, ``cifar100``
    torchvision's pickled batches (``root/cifar-10-batches-py/``,
    ``root/cifar-100-python/``), or a folder or ``.zip`` of image files laid out as
    ``<split>/<class>/*.jpg`` (any extension in `IMAGE_EXTENSIONS`), sorted by path and read
    as they are rendered. Such a tree may hold one split only (a CIFAR-10 test-set zip):
    asking for the other is an error.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from neuralsight.data.sources.blocks import Draw, StimulusBlock, register_source, row_blocks
from neuralsight.data.sources.common import (
    SPLITS,
    render_pixels,
    shuffled_passes,
    source_rng,
)
from neuralsight.data.sources.folder import image_files, read_images, tree_files

_TORCHVISION_CLASSES = {"mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
_MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_MNIST_SIDE = 28
_IDX_UBYTE_3D = 0x0803
_IDX_HEADER_BYTES = 16


def read_idx_images(path: str | Path) -> np.ndarray:
    """The images of an IDX file of unsigned bytes (MNIST's format), gzipped or not.

    torchvision's MNIST reader only opens unpacked files under its own layout, so this reads
    the 16-byte header (magic number, count, rows, columns) and the pixels with `gzip` and
    NumPy. Files ending in ``.gz`` are decompressed in memory.

    Parameters
    ----------
    path
        An ``*-idx3-ubyte`` file, or ``*-idx3-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        uint8 ``[count, rows, columns]``.

    Raises
    ------
    ValueError
        When the file is not gzip where it should be, its magic number is not 0x00000803
        (unsigned bytes, 3 dimensions) or its size disagrees with its header; the message
        names the file, what was expected and what was found.

    Examples
    --------
    >>> import gzip, struct, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "toy-images-idx3-ubyte.gz"
    >>> header = struct.pack(">4I", 0x0803, 2, 3, 4)
    >>> _ = path.write_bytes(gzip.compress(header + bytes(range(24))))
    >>> images = read_idx_images(path)
    >>> images.shape, int(images[1, 2, 3])
    ((2, 3, 4), 23)
    """
    location = Path(path)
    data = _idx_bytes(location)
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_UBYTE_3D:
        raise ValueError(
            f"{location}: expected IDX magic number 0x{_IDX_UBYTE_3D:08x} (unsigned bytes, 3 "
            f"dimensions: images), found 0x{magic:08x}"
        )
    if len(data) < _IDX_HEADER_BYTES:
        raise ValueError(
            f"{location}: expected an IDX header of {_IDX_HEADER_BYTES} bytes, found a file "
            f"of {len(data)} bytes"
        )
    count, rows, columns = (int(value) for value in np.frombuffer(data, ">u4", 3, 4))
    found = len(data) - _IDX_HEADER_BYTES
    if found != count * rows * columns:
        raise ValueError(
            f"{location}: header gives {count} x {rows} x {columns} = "
            f"{count * rows * columns} pixel bytes, found {found}"
        )
    pixels = np.frombuffer(data, np.uint8, offset=_IDX_HEADER_BYTES)
    return pixels.reshape(count, rows, columns)


def _idx_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path) as stream:
            return stream.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: expected a gzip file, cannot decompress it ({error})") from error


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


def _missing_files_error(
    name: str, directory: Path, missing: Sequence[str], alternative: str
) -> FileNotFoundError:
    return FileNotFoundError(
        f"{directory}: {name} files not found (missing: {', '.join(missing)}). "
        f"Expected {name} in torchvision's layout under that directory, or {alternative}; "
        "pass download=True (or --download on the command line) to fetch it where the "
        "network allows, or point root at a directory that already holds it"
    )


def _torchvision_data(name: str, root: Path, split: str, download: bool) -> np.ndarray:
    """All images of a split, read by torchvision from its layout (fetched if asked)."""
    import torchvision.datasets as tvd

    dataset_class = getattr(tvd, _TORCHVISION_CLASSES[name])
    directory = _expected_files(name, root)[0]
    try:
        dataset = dataset_class(root=str(root), train=split == "train", download=download)
    except RuntimeError as error:
        raise RuntimeError(f"{directory}: torchvision could not load {name}: {error}") from error
    return np.asarray(dataset.data)


def _missing_torchvision_files(name: str, root: Path) -> tuple[Path, list[str]]:
    directory, needed = _expected_files(name, root)
    return directory, [file_name for file_name in needed if not (directory / file_name).is_file()]


def _mnist_data(root: Path, split: str, download: bool) -> np.ndarray:
    """All MNIST images of a split: torchvision's layout, else IDX files directly in root."""
    directory, missing = _missing_torchvision_files("mnist", root)
    if download or not missing:
        return _torchvision_data("mnist", root, split, download)
    direct = [root / (_MNIST_FILES[split] + suffix) for suffix in ("", ".gz")]
    found = [path for path in direct if path.is_file()]
    if not found:
        alternative = f"{direct[0]} or {direct[1].name} directly in root (the IDX files)"
        raise _missing_files_error("mnist", directory, missing, alternative)
    images = read_idx_images(found[0])
    if images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise ValueError(
            f"{found[0]}: expected MNIST images of {_MNIST_SIDE} x {_MNIST_SIDE} pixels, found "
            f"{images.shape[1]} x {images.shape[2]}"
        )
    return images


def _is_image_tree(name: str, root: Path) -> bool:
    """Whether ``root`` is a folder or zip of ``<split>/<class>/`` images rather than
    torchvision's layout of ``name``."""
    if root.is_file():
        return True
    torchvision_folder = _expected_files(name, root)[0]
    return not torchvision_folder.is_dir() and any((root / split).is_dir() for split in SPLITS)


def cifar_image_files(name: str, root: str | Path, split: str) -> list[str]:
    """The image files of one split of a ``<split>/<class>/*.jpg`` tree, sorted by path.

    Parameters
    ----------
    name
        ``"cifar10"`` or ``"cifar100"``: how many class folders the split must hold.
    root
        A folder or ``.zip`` archive.
    split
        ``"train"`` or ``"test"``.

    Returns
    -------
    list of str
        POSIX paths relative to ``root`` such as ``test/cat/0001.jpg``, sorted.

    Raises
    ------
    FileNotFoundError
        When ``root`` holds no image files under ``<split>/``; the message names the splits
        it does hold.
    ValueError
        When the split has another number of class folders than the data set has classes.

    Examples
    --------
    >>> import tempfile, imageio.v3 as iio
    >>> root = Path(tempfile.mkdtemp())
    >>> for index in range(10):
    ...     (root / "test" / f"class{index}").mkdir(parents=True)
    ...     iio.imwrite(root / "test" / f"class{index}" / "0.png", np.zeros((2, 2), np.uint8))
    >>> cifar_image_files("cifar10", root, "test")[:2]
    ['test/class0/0.png', 'test/class1/0.png']
    """
    location = Path(root)
    images = image_files(tree_files(location))
    files = [file_name for file_name in images if file_name.startswith(f"{split}/")]
    if not files:
        raise _missing_split_error(name, location, split, images)
    classes = {file_name.split("/")[1] for file_name in files if file_name.count("/") >= 2}
    if len(classes) != _CIFAR_CLASSES[name]:
        raise ValueError(
            f"{location}: expected {_CIFAR_CLASSES[name]} class folders of {name} images under "
            f"{split}/, found {len(classes)}"
        )
    return files


def _missing_split_error(
    name: str, root: Path, split: str, images: Sequence[str]
) -> FileNotFoundError:
    held = [other for other in SPLITS if any(path.startswith(f"{other}/") for path in images)]
    if not held:
        return FileNotFoundError(
            f"{root}: no {name} images found in a <split>/<class>/ layout (no image files "
            f"under {' or '.join(f'{other}/' for other in SPLITS)})"
        )
    return FileNotFoundError(
        f"{root.name} holds only the {held[0]} split of {name} (no image files under "
        f"{split}/ in {root}); for a train/test split of these images use the folder source "
        f"(source 'folder' with this root)"
    )


def _array_pixels(draw: Draw, root: Path) -> np.ndarray:
    """The chosen images of a data set read whole into memory, uint8 ``[n, h, w(, 3)]``."""
    if draw.name == "mnist":
        data = _mnist_data(root, draw.split, draw.download)
    else:
        directory, missing = _missing_torchvision_files(draw.name, root)
        if missing and not draw.download:
            alternative = "root a folder or .zip of images as <split>/<class>/*.jpg"
            raise _missing_files_error(draw.name, directory, missing, alternative)
        data = _torchvision_data(draw.name, root, draw.split, draw.download)
    return data[shuffled_passes(source_rng(draw.seed, draw.name, draw.split), len(data), draw.n)]


@register_source(
    "mnist",
    "MNIST (28x28 grey digits): IDX files directly in root (gzipped or not) or torchvision's "
    "layout under root; download=True fetches it",
)
@register_source(
    "cifar10",
    "CIFAR-10 (32x32 colour, 10 classes): torchvision's batches under root, or a folder/zip "
    "of <split>/<class>/*.jpg as root; download=True fetches it",
)
@register_source(
    "cifar100",
    "CIFAR-100 (32x32 colour, 100 classes): torchvision's batches under root, or a "
    "folder/zip of <split>/<class>/*.jpg as root; download=True fetches it",
)
def torchvision_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a draw: the chosen images' pixels, or the chosen files of an image tree."""
    if draw.root is None:
        raise ValueError(
            f"source {draw.name!r} needs parameter 'root', the directory holding (or to "
            "receive) the data set; found None"
        )
    root = Path(draw.root)
    if draw.name in _CIFAR_CLASSES and not draw.download and _is_image_tree(draw.name, root):
        files = cifar_image_files(draw.name, root, draw.split)
        rng = source_rng(draw.seed, draw.name, draw.split)
        chosen = [files[index] for index in shuffled_passes(rng, len(files), draw.n)]
        yield from row_blocks(chosen, draw, partial(read_images, str(root)))
        return
    yield from row_blocks(_array_pixels(draw, root), draw, render_pixels)
