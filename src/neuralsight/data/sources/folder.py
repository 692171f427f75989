"""The ``folder`` source: the image files of a folder tree or a zip archive, sorted by path.

``root`` is a folder, searched recursively, or a ``.zip`` archive, read member by member
without extracting it; hidden files and ``__MACOSX`` folders are skipped. Every file is named
by its POSIX path relative to ``root`` (its member name in a zip), and files are sorted by
that path. Each image is centre-cropped to a square and resized.

The split comes from split lists when there are any, else from file order:

* **Split lists.** ``train.txt`` and ``test.txt`` (`FOLDER_SPLIT_LISTS`) are looked for in
  ``root`` (as top-level members of a zip) and, when ``root`` holds neither, in the folder
  that holds ``root``. Each line ending in an image extension (`IMAGE_EXTENSIONS`) names one
  image; other lines (blank ones, or the ``BACKGROUND_Google/tmp`` entry of Caltech-101's
  list, a non-image file) are skipped. Lines are paths relative to ``root`` or, when the
  first image line of ``train.txt`` is not found there, relative to the first direct
  sub-folder of ``root`` (in name order) where it is found. So for Caltech-101 (the lists
  beside ``101_ObjectCategories/``, lines such as ``accordion/image_0002.jpg``) both
  ``root=caltech101`` and ``root=caltech101/101_ObjectCategories`` work. Each split is
  exactly the files of its list; files in neither list are in neither split. A line naming
  a missing file, a file listed twice, or one file in both lists is an error.
* **No lists.** Among the image files (extensions `IMAGE_EXTENSIONS`, any case), in path
  order, every `FOLDER_TEST_EVERY`-th file (the 10th, 20th, ...) is test, the rest train.

A draw takes a seeded subset of its split, kept in path order.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
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
FOLDER_SPLIT_LISTS: dict[str, str] = {"train": "train.txt", "test": "test.txt"}
"""The split list file of each split."""


def tree_files(root: str | Path) -> list[str]:
    """Every file under ``root``, a folder (searched recursively) or a zip archive.

    Parameters
    ----------
    root
        A folder or a ``.zip`` file.

    Returns
    -------
    list of str
        POSIX paths relative to ``root`` (member names in a zip), sorted; hidden files and
        folders (``.*``) and ``__MACOSX`` are left out.

    Raises
    ------
    FileNotFoundError
        When ``root`` does not exist.
    ValueError
        When ``root`` is a file but not a zip archive.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "b").mkdir()
    >>> for name in ("b/2.png", "a.png", ".hidden.png"):
    ...     _ = (root / name).write_bytes(b"")
    >>> tree_files(root)
    ['a.png', 'b/2.png']
    """
    location = Path(root)
    if location.is_dir():
        found = _folder_files(location)
    elif zipfile.is_zipfile(location):
        with zipfile.ZipFile(location) as archive:
            found = [name for name in archive.namelist() if not name.endswith("/")]
    elif location.exists():
        raise ValueError(
            f"{location}: expected a folder or a .zip archive of images (parameter 'root'), "
            "found a file that is neither"
        )
    else:
        raise FileNotFoundError(
            f"{location}: image folder (parameter 'root') does not exist; expected a folder "
            "or a .zip archive of images"
        )
    return sorted(name for name in found if not _is_hidden(name))


def _folder_files(folder: Path) -> list[str]:
    found: list[str] = []
    for directory, _, names in os.walk(folder):
        relative = Path(os.path.relpath(directory, folder)).as_posix()
        prefix = "" if relative == "." else relative + "/"
        found.extend(prefix + name for name in names)
    return found


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def image_files(names: Sequence[str]) -> list[str]:
    """The names among ``names`` that end in one of `IMAGE_EXTENSIONS` (any case), in order.

    Examples
    --------
    >>> image_files(["a.PNG", "notes.txt", "b/c.jpg"])
    ['a.PNG', 'b/c.jpg']
    """
    return [name for name in names if name.lower().endswith(IMAGE_EXTENSIONS)]


def folder_files(root: str | Path, split: Literal["train", "test"] = "train") -> list[str]:
    """The image files of one split of a folder or zip archive, sorted by path.

    The split comes from ``train.txt`` / ``test.txt`` where there are such lists, else every
    `FOLDER_TEST_EVERY`-th image file is test (see the module docstring for the rule).

    Parameters
    ----------
    root
        A folder (searched recursively) or a ``.zip`` archive of images.
    split
        ``"train"`` or ``"test"``.

    Returns
    -------
    list of str
        POSIX paths relative to ``root``, sorted.

    Raises
    ------
    FileNotFoundError
        When ``root`` holds no image files, when only one of the two split lists exists, or
        when a list names a missing file (the message names the list, the line and the path).
    ValueError
        When a split list names a file twice or both lists name one file.

    Examples
    --------
    >>> import tempfile, imageio.v3 as iio
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(12):
    ...     iio.imwrite(folder / f"{i:02d}.png", np.zeros((4, 4), np.uint8))
    >>> folder_files(folder, "test")
    ['09.png']
    >>> for split, names in (("train", "00.png\\n01.png"), ("test", "11.png")):
    ...     _ = (folder / f"{split}.txt").write_text(names)
    >>> folder_files(folder, "train"), folder_files(folder, "test")
    (['00.png', '01.png'], ['11.png'])
    """
    if split not in SPLITS:
        raise ValueError(f"parameter 'split' must be one of {SPLITS}, found {split!r}")
    return folder_split(root)[0][split]


def folder_split(root: str | Path) -> tuple[dict[str, list[str]], str]:
    """Both splits of a folder or zip archive, and the rule that made them.

    Returns
    -------
    splits : dict
        ``{"train": [...], "test": [...]}``: POSIX paths relative to ``root``, sorted.
    rule : str
        How the split was made, for messages: which split lists, or every n-th file.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(10):
    ...     _ = (folder / f"{i}.png").write_bytes(b"")
    >>> splits, rule = folder_split(folder)
    >>> len(splits["train"]), splits["test"], rule
    (9, ['9.png'], 'every 10th image file is test')
    """
    location = Path(root)
    files = tree_files(location)
    lists = _split_lists(location, set(files))
    if lists is not None:
        rule = f"split by {lists['train'].path} and {lists['test'].path}"
        return _listed_split(location, set(files), lists), rule
    images = image_files(files)
    if not images:
        raise FileNotFoundError(
            f"{location}: no image files found; expected files ending in {IMAGE_EXTENSIONS}"
        )
    is_test = (np.arange(len(images)) + 1) % FOLDER_TEST_EVERY == 0
    splits = {
        split: [name for name, test in zip(images, is_test, strict=True) if test == wanted]
        for split, wanted in (("train", False), ("test", True))
    }
    return splits, f"every {FOLDER_TEST_EVERY}th image file is test"


@dataclass(frozen=True)
class _SplitList:
    """A split list: where it was read, and its image lines as (line number, text)."""

    path: str
    lines: list[tuple[int, str]]


def _split_lists(root: Path, files: set[str]) -> dict[str, _SplitList] | None:
    """The split lists of ``root``: in ``root`` itself, else in its parent; None if neither."""
    for inside in (True, False):
        found = {
            split: _read_list(root, file_name, files if inside else None)
            for split, file_name in FOLDER_SPLIT_LISTS.items()
        }
        present = {split: found_list for split, found_list in found.items() if found_list}
        if len(present) == len(found):
            return present
        if present:
            raise _lone_list_error(found)
    return None


def _lone_list_error(found: dict[str, _SplitList | None]) -> FileNotFoundError:
    (found_list,) = (listed for listed in found.values() if listed is not None)
    (missing,) = (FOLDER_SPLIT_LISTS[split] for split, listed in found.items() if listed is None)
    return FileNotFoundError(
        f"{found_list.path}: split list found, but not {missing} beside it; a split by lists "
        f"needs both {' and '.join(FOLDER_SPLIT_LISTS.values())}"
    )


def _read_list(root: Path, file_name: str, files: set[str] | None) -> _SplitList | None:
    """The list ``file_name`` inside ``root`` (``files`` given) or beside it, if it exists."""
    if files is None:
        path = root.parent / file_name
        text = path.read_text() if path.is_file() else None
    elif file_name not in files:
        text = None
    elif root.is_dir():
        path = root / file_name
        text = path.read_text()
    else:
        path = root / file_name
        with zipfile.ZipFile(root) as archive:
            text = archive.read(file_name).decode()
    if text is None:
        return None
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    return _SplitList(str(path), [(number, line) for number, line in lines if image_files([line])])


def _listed_split(
    root: Path, files: set[str], lists: dict[str, _SplitList]
) -> dict[str, list[str]]:
    """The files each split list names, checked to exist, to be listed once and disjoint."""
    prefix = _list_prefix(root, files, lists)
    named = {split: _named_files(root, files, prefix, listed) for split, listed in lists.items()}
    both = sorted(named["train"].keys() & named["test"].keys())
    if both:
        name = both[0]
        raise ValueError(
            f"{lists['train'].path} line {named['train'][name]} and {lists['test'].path} line "
            f"{named['test'][name]} both name {root / name}; a file must be in one split only"
        )
    return {split: sorted(names) for split, names in named.items()}


def _list_prefix(root: Path, files: set[str], lists: dict[str, _SplitList]) -> str:
    """What the lines are relative to: ``""`` (root) or ``"<sub-folder>/"``, from the first
    image line of the train list (or of the test list when the train list has none)."""
    listed = lists["train"] if lists["train"].lines else lists["test"]
    if not listed.lines:
        return ""
    number, line = listed.lines[0]
    sub_folders = sorted({name.split("/", 1)[0] + "/" for name in files if "/" in name})
    for prefix in ("", *sub_folders):
        if prefix + line in files:
            return prefix
    raise _missing_listed_file(listed.path, number, line, root / line)


def _named_files(root: Path, files: set[str], prefix: str, listed: _SplitList) -> dict[str, int]:
    """The files a list names, each with the number of the line that names it."""
    named: dict[str, int] = {}
    for number, line in listed.lines:
        name = prefix + line
        if name not in files:
            raise _missing_listed_file(listed.path, number, line, root / name)
        if name in named:
            raise ValueError(
                f"{listed.path} line {number}: {line!r} names {root / name}, already named "
                f"on line {named[name]}; list each file once"
            )
        named[name] = number
    return named


def _missing_listed_file(list_path: str, number: int, line: str, path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{list_path} line {number}: {line!r} names {path}, which does not exist; lines are "
        "paths relative to root or to one of its direct sub-folders"
    )


def read_images(root: str | Path, names: Sequence[str], size: int, channels: int) -> np.ndarray:
    """Read, centre-crop and resize files of a folder or zip archive.

    Parameters
    ----------
    root
        The folder or ``.zip`` archive.
    names
        POSIX paths relative to ``root`` (member names in a zip), as `tree_files` gives.
    size, channels
        As in `neuralsight.data.sources.make_stimuli`.

    Returns
    -------
    numpy.ndarray
        float32 ``[len(names), channels, size, size]`` in [0, 1].

    Raises
    ------
    ValueError
        When a file cannot be decoded as an image; the message names it.

    Examples
    --------
    >>> import tempfile, imageio.v3 as iio
    >>> folder = Path(tempfile.mkdtemp())
    >>> iio.imwrite(folder / "grey.png", np.full((6, 9), 51, np.uint8))
    >>> images = read_images(folder, ["grey.png"], 4, 3)
    >>> images.shape, round(float(images.max()), 3)
    ((1, 3, 4, 4), 0.2)
    """
    location = Path(root)
    images = np.empty((len(names), channels, size, size), dtype=np.float32)
    with _image_reader(location) as read:
        for row, name in enumerate(names):
            square = center_square(read(name))
            images[row] = to_channels(resize_images(square[None], size), channels)[0]
    return images


@contextmanager
def _image_reader(root: Path) -> Iterator[Callable[[str], np.ndarray]]:
    """A reader of ``root``'s files as float32 ``[c, h, w]``; a zip is opened once."""
    if root.is_dir():
        yield lambda name: _decode(root / name, root / name)
        return
    with zipfile.ZipFile(root) as archive:
        yield lambda name: _decode(archive.read(name), root / name)


def _decode(source: Path | bytes, path: Path) -> np.ndarray:
    extension = path.suffix.lower()
    try:
        if extension:
            pixels = iio.imread(source, index=0, extension=extension)
        else:
            pixels = iio.imread(source, index=0)
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as an image ({error})") from error
    return as_unit_float(np.asarray(pixels), path)


def _folder_choice(
    root: str | None, n: int, seed: int, split: Literal["train", "test"]
) -> list[str]:
    """``n`` files of the split, a seeded subset kept in path order; all of them when ``n``
    equals the split size."""
    if root is None:
        raise ValueError(
            "source 'folder' needs parameter 'root', the folder or zip of images; found None"
        )
    splits, rule = folder_split(root)
    files = splits[split]
    if len(files) < n:
        raise ValueError(
            f"{root}: the {split} split holds {len(files)} image files ({rule}), fewer than "
            f"the n={n} requested"
        )
    chosen = np.sort(source_rng(seed, "folder", split).choice(len(files), size=n, replace=False))
    return [files[index] for index in chosen]


@register_source(
    "folder",
    "image files of the folder (recursive) or zip given as root, sorted by path; "
    "split by its train.txt/test.txt where present, else every 10th file is test",
)
def folder_blocks(draw: Draw) -> Iterator[StimulusBlock]:
    """The blocks of a ``folder`` draw: the chosen file names, read as they are rendered."""
    files = _folder_choice(draw.root, draw.n, draw.seed, draw.split)
    yield from row_blocks(files, draw, partial(read_images, str(draw.root)))
