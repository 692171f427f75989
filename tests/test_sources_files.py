"""Tests for the file layouts the ``mnist``, ``cifar*`` and ``folder`` sources read.

Every layout is written tiny into tmp_path: IDX files (gzipped, unpacked, torchvision's
``MNIST/raw``), ``<split>/<class>/`` image trees as folders and zips, nested folders and
split lists, so the real image sets are never needed.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from neuralsight.data.sources import (
    FOLDER_TEST_EVERY,
    cifar_image_files,
    folder_files,
    make_stimuli,
    read_idx_images,
    stimulus_blocks,
    tree_files,
)

RNG = np.random.default_rng(0)
MNIST_TRAIN = RNG.integers(0, 256, (7, 28, 28), dtype=np.uint8)
MNIST_TEST = RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    header = struct.pack(">I", 0x0800 + array.ndim if magic is None else magic)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder: Path, gzipped: bool) -> None:
    """The four MNIST files in ``folder``, with the pixels of MNIST_TRAIN / MNIST_TEST."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, images in (("train", MNIST_TRAIN), ("t10k", MNIST_TEST)):
        labels = np.arange(len(images), dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if gzipped:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


MNIST_LAYOUTS = {
    "gzipped IDX files in root": lambda root: write_mnist(root, gzipped=True),
    "unpacked IDX files in root": lambda root: write_mnist(root, gzipped=False),
    "torchvision's MNIST/raw": lambda root: write_mnist(root / "MNIST" / "raw", gzipped=False),
}


def rows(images: np.ndarray) -> list[bytes]:
    """Each image's grey pixels as uint8 bytes, sorted: the draw as a multiset."""
    return sorted(np.rint(image[0] * 255).astype(np.uint8).tobytes() for image in images)


# ---------------------------------------------------------------------------------------
# mnist


@pytest.mark.parametrize("layout", MNIST_LAYOUTS)
@pytest.mark.parametrize(("split", "written"), [("train", MNIST_TRAIN), ("test", MNIST_TEST)])
def test_mnist_reads_each_layout_pixel_for_pixel(tmp_path, layout, split, written):
    MNIST_LAYOUTS[layout](tmp_path)
    images = make_stimuli("mnist", len(written), size=28, split=split, root=str(tmp_path))
    assert rows(images) == sorted(image.tobytes() for image in written)


def test_mnist_layouts_give_the_same_seeded_draw(tmp_path):
    draws = []
    for index, layout in enumerate(MNIST_LAYOUTS.values()):
        layout(tmp_path / str(index))
        draws.append(make_stimuli("mnist", 10, size=14, seed=3, root=str(tmp_path / str(index))))
    for draw in draws[1:]:
        np.testing.assert_array_equal(draw, draws[0])
    first_pass = rows(draws[0][:7])
    assert first_pass == rows(make_stimuli("mnist", 7, size=14, root=str(tmp_path / "0")))


def test_read_idx_images_reads_gzipped_and_plain_files_alike(tmp_path):
    write_mnist(tmp_path / "gz", gzipped=True)
    write_mnist(tmp_path / "plain", gzipped=False)
    name = "t10k-images-idx3-ubyte"
    np.testing.assert_array_equal(read_idx_images(tmp_path / "gz" / f"{name}.gz"), MNIST_TEST)
    np.testing.assert_array_equal(read_idx_images(tmp_path / "plain" / name), MNIST_TEST)


@pytest.mark.parametrize(
    ("file_name", "data", "message"),
    [
        (
            "labels-idx1-ubyte",
            idx_bytes(np.arange(5, dtype=np.uint8)),
            r"labels-idx1-ubyte: expected IDX magic number 0x00000803 .*found 0x00000801",
        ),
        (
            "short-idx3-ubyte",
            idx_bytes(np.zeros((2, 3, 4), np.uint8))[:-1],
            r"short-idx3-ubyte: header gives 2 x 3 x 4 = 24 pixel bytes, found 23",
        ),
        (
            "cut-idx3-ubyte",
            struct.pack(">2I", 0x0803, 9),
            r"cut-idx3-ubyte: expected an IDX header of 16 bytes, found a file of 8 bytes",
        ),
        (
            "plain-idx3-ubyte.gz",
            idx_bytes(np.zeros((1, 2, 2), np.uint8)),
            r"plain-idx3-ubyte\.gz: expected a gzip file, cannot decompress it",
        ),
    ],
    ids=["labels file", "truncated pixels", "truncated header", "not gzip"],
)
def test_bad_idx_files_are_rejected_naming_the_file(tmp_path, file_name, data, message):
    (tmp_path / file_name).write_bytes(data)
    with pytest.raises(ValueError, match=message):
        read_idx_images(tmp_path / file_name)


def test_mnist_rejects_idx_images_that_are_not_28_pixels_square(tmp_path):
    small = idx_bytes(np.zeros((3, 8, 8), np.uint8))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(small))
    with pytest.raises(
        ValueError, match=r"idx3-ubyte\.gz: expected MNIST images of 28 x 28 pixels"
    ):
        make_stimuli("mnist", 1, root=str(tmp_path))


def test_mnist_missing_split_file_names_both_layouts(tmp_path):
    write_mnist(tmp_path, gzipped=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    make_stimuli("mnist", 2, root=str(tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        make_stimuli("mnist", 2, split="test", root=str(tmp_path))
    message = str(caught.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert str(tmp_path / "t10k-images-idx3-ubyte") in message and "ubyte.gz" in message
    assert "download=True" in message


# ---------------------------------------------------------------------------------------
# image trees: folders and zips


def encoded(array: np.ndarray, name: str) -> bytes:
    return iio.imwrite("<bytes>", array, extension=Path(name).suffix)


def write_tree(root: Path, images: dict[str, np.ndarray], as_zip: bool) -> Path:
    """``images`` (relative path -> pixels) as files under the folder ``root`` or as members
    of the zip ``root.zip``; returns the folder or the zip."""
    if as_zip:
        location = root.with_suffix(".zip")
        location.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(location, "w") as archive:
            for name, pixels in images.items():
                archive.writestr(name, encoded(pixels, name))
        return location
    for name, pixels in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(encoded(pixels, name))
    return root


def colour(index: int) -> np.ndarray:
    """A distinct, non-constant 4x4 RGB image for each index."""
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 0] = index
    pixels[..., 1] = 255 - index
    pixels[0, 0, 2] = 200
    return pixels


def cifar_tree(classes: int, split: str = "test", per_class: int = 2) -> dict[str, np.ndarray]:
    return {
        f"{split}/class{label:03d}/{item}.png": colour(label * per_class + item)
        for label in range(classes)
        for item in range(per_class)
    }


def colour_rows(images: np.ndarray) -> list[bytes]:
    return sorted(
        np.rint(image * 255).astype(np.uint8).transpose(1, 2, 0).tobytes() for image in images
    )


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_cifar10_reads_a_split_class_tree_pixel_for_pixel(tmp_path, as_zip):
    tree = cifar_tree(10)
    root = str(write_tree(tmp_path / "cifar", tree, as_zip))
    images = make_stimuli("cifar10", 20, size=4, channels=3, split="test", root=root)
    assert colour_rows(images) == sorted(pixels.tobytes() for pixels in tree.values())
    again = make_stimuli("cifar10", 20, size=4, channels=3, split="test", root=root)
    np.testing.assert_array_equal(images, again)
    other_seed = make_stimuli("cifar10", 20, size=4, channels=3, split="test", root=root, seed=1)
    assert not np.array_equal(images, other_seed)
    twice = make_stimuli("cifar10", 40, size=4, channels=3, split="test", root=root)
    assert colour_rows(twice[20:]) == colour_rows(twice[:20])


def test_cifar_tree_files_are_sorted_by_path_and_jpeg_reads_back(tmp_path):
    tree = {
        f"test/c{label}/0.jpg": np.full((32, 32, 3), 20 * label, np.uint8) for label in range(10)
    }
    root = write_tree(tmp_path / "jpg", tree, as_zip=True)
    assert cifar_image_files("cifar10", root, "test") == sorted(tree)
    images = make_stimuli("cifar10", 10, size=32, channels=3, split="test", root=str(root))
    levels = sorted(round(float(image.mean()) * 255) for image in images)
    assert np.abs(np.array(levels) - 20 * np.arange(10)).max() <= 2


def test_cifar100_needs_a_hundred_class_folders(tmp_path):
    root = str(write_tree(tmp_path / "hundred", cifar_tree(100, per_class=1), as_zip=True))
    images = make_stimuli("cifar100", 100, size=4, channels=3, split="test", root=root)
    assert len(set(colour_rows(images))) == 100
    with pytest.raises(
        ValueError, match=r"expected 10 class folders of cifar10 images under test/, found 100"
    ):
        make_stimuli("cifar10", 1, split="test", root=root)


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_cifar_tree_without_the_split_says_which_it_holds(tmp_path, as_zip):
    root = write_tree(tmp_path / "cifar10_test_jpg", cifar_tree(10), as_zip)
    with pytest.raises(
        FileNotFoundError,
        match=rf"{root.name} holds only the test split of cifar10 .*use the folder source",
    ):
        make_stimuli("cifar10", 1, split="train", root=str(root))


def test_cifar_zip_without_split_folders_is_rejected(tmp_path):
    root = write_tree(tmp_path / "flat", {"a.png": colour(1)}, as_zip=True)
    with pytest.raises(
        FileNotFoundError, match=r"no cifar10 images found in a <split>/<class>/ layout"
    ):
        make_stimuli("cifar10", 1, split="test", root=str(root))


# ---------------------------------------------------------------------------------------
# folder: nested folders and zips, every 10th file


NESTED = {
    f"{group}/{index:02d}.png": np.full((6, 10), 10 * number, np.uint8)
    for number, (group, index) in enumerate((g, i) for g in ("b", "a/deep", "c") for i in range(7))
}


def level_rows(images: np.ndarray) -> list[int]:
    return [round(float(image.mean()) * 255 / 10) for image in images]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_folder_reads_nested_files_sorted_by_relative_path(tmp_path, as_zip):
    root = write_tree(tmp_path / "nested", NESTED, as_zip)
    order = sorted(NESTED)
    assert tree_files(root) == order
    test = folder_files(root, "test")
    assert test == order[FOLDER_TEST_EVERY - 1 :: FOLDER_TEST_EVERY]
    assert folder_files(root, "train") == [name for name in order if name not in test]
    images = make_stimuli("folder", 2, size=4, split="test", root=str(root))
    assert level_rows(images) == [int(NESTED[name][0, 0]) // 10 for name in test]


def test_folder_zip_is_read_without_extracting_and_matches_the_folder(tmp_path):
    folder = write_tree(tmp_path / "tree" / "nested", NESTED, as_zip=False)
    archive = write_tree(tmp_path / "zipped" / "nested", NESTED, as_zip=True)
    from_folder = make_stimuli("folder", 6, size=4, seed=5, root=str(folder))
    from_zip = make_stimuli("folder", 6, size=4, seed=5, root=str(archive))
    np.testing.assert_array_equal(from_zip, from_folder)
    assert os.listdir(archive.parent) == [archive.name]


def test_folder_colour_pixels_come_back_exactly(tmp_path):
    tree = {"x.png": colour(7), "y.png": colour(90)}
    for as_zip in (False, True):
        root = write_tree(tmp_path / f"colour{as_zip}", tree, as_zip)
        images = make_stimuli("folder", 2, size=4, channels=3, root=str(root))
        assert colour_rows(images) == sorted(pixels.tobytes() for pixels in tree.values())


def test_folder_zip_skips_hidden_files_and_folders(tmp_path):
    tree = {"a.png": colour(1), "__MACOSX/._a.png": colour(2), "b/.hidden.png": colour(3)}
    root = write_tree(tmp_path / "mac", tree, as_zip=True)
    assert tree_files(root) == ["a.png"]


def test_folder_zip_blocks_pickle_and_make_the_whole_draw(tmp_path):
    root = str(write_tree(tmp_path / "nested", NESTED, as_zip=True))
    whole = make_stimuli("folder", 9, size=4, channels=3, root=root)
    blocks = [
        pickle.loads(pickle.dumps(block))
        for block in stimulus_blocks("folder", 9, 4, size=4, channels=3, root=root)
    ]
    assert [block.count for block in blocks] == [4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([block.render() for block in blocks]), whole)


def test_folder_root_that_is_neither_folder_nor_zip_is_rejected(tmp_path):
    (tmp_path / "images.tar").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"images\.tar: expected a folder or a \.zip archive"):
        make_stimuli("folder", 1, root=str(tmp_path / "images.tar"))


# ---------------------------------------------------------------------------------------
# folder: split lists


PHOTOS = {
    f"{kind}/image_{index:04d}.png": np.full((5, 8), 10 * (3 * k + index), np.uint8)
    for k, kind in enumerate(("cat", "dog"))
    for index in range(1, 4)
}
TRAIN_LINES = [
    "cat/image_0001.png",
    "cat/image_0002.png",
    "dog/image_0001.png",
    "dog/image_0003.png",
]
TEST_LINES = ["cat/image_0003.png", "dog/image_0002.png"]


def write_lists(folder: Path, train: list[str], test: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")


def lists_in_root(tmp_path: Path) -> tuple[Path, str]:
    root = write_tree(tmp_path / "photos", PHOTOS, as_zip=False)
    write_lists(root, TRAIN_LINES, TEST_LINES)
    return root, ""


def caltech_layout_from_the_top(tmp_path: Path) -> tuple[Path, str]:
    write_tree(tmp_path / "caltech" / "101_ObjectCategories", PHOTOS, as_zip=False)
    write_lists(tmp_path / "caltech", TRAIN_LINES, TEST_LINES)
    return tmp_path / "caltech", "101_ObjectCategories/"


def caltech_layout_from_the_images(tmp_path: Path) -> tuple[Path, str]:
    caltech_layout_from_the_top(tmp_path)
    return tmp_path / "caltech" / "101_ObjectCategories", ""


def zip_with_lists_inside(tmp_path: Path) -> tuple[Path, str]:
    root = write_tree(tmp_path / "photos", PHOTOS, as_zip=True)
    with zipfile.ZipFile(root, "a") as archive:
        archive.writestr("train.txt", "\n".join(TRAIN_LINES))
        archive.writestr("test.txt", "\n".join(TEST_LINES))
    return root, ""


def zip_with_lists_beside(tmp_path: Path) -> tuple[Path, str]:
    root = write_tree(tmp_path / "photos", PHOTOS, as_zip=True)
    write_lists(tmp_path, TRAIN_LINES, TEST_LINES)
    return root, ""


LIST_LAYOUTS = [
    lists_in_root,
    caltech_layout_from_the_top,
    caltech_layout_from_the_images,
    zip_with_lists_inside,
    zip_with_lists_beside,
]


@pytest.mark.parametrize("layout", LIST_LAYOUTS)
def test_split_lists_give_the_split_in_every_layout(tmp_path, layout):
    root, prefix = layout(tmp_path)
    assert folder_files(root, "train") == [prefix + line for line in TRAIN_LINES]
    assert folder_files(root, "test") == [prefix + line for line in TEST_LINES]
    for split, lines in (("train", TRAIN_LINES), ("test", TEST_LINES)):
        images = make_stimuli("folder", len(lines), size=4, split=split, root=str(root))
        assert level_rows(images) == [int(PHOTOS[line][0, 0]) // 10 for line in lines]


def test_split_lists_keep_train_and_test_disjoint_and_skip_non_image_lines(tmp_path):
    root = write_tree(tmp_path / "photos", PHOTOS, as_zip=False)
    write_lists(root, ["", "BACKGROUND_Google/tmp", *TRAIN_LINES, "  "], TEST_LINES)
    train, test = folder_files(root, "train"), folder_files(root, "test")
    assert train == TRAIN_LINES and test == TEST_LINES
    assert not set(train) & set(test)
    train_levels = set(level_rows(make_stimuli("folder", 4, size=4, root=str(root))))
    test_levels = set(level_rows(make_stimuli("folder", 2, size=4, split="test", root=str(root))))
    assert not train_levels & test_levels
    with pytest.raises(
        ValueError,
        match=r"test split holds 2 image files \(split by .*train\.txt and .*test\.txt\), fewer than the n=3",
    ):
        make_stimuli("folder", 3, split="test", root=str(root))


@pytest.mark.parametrize(
    ("train", "test", "error", "message"),
    [
        (
            [*TRAIN_LINES[:1], "cat/image_0009.png"],
            TEST_LINES,
            FileNotFoundError,
            r"train\.txt line 2: 'cat/image_0009\.png' names .*photos/cat/image_0009\.png, which does not exist",
        ),
        (
            ["fish/image_0001.png"],
            TEST_LINES,
            FileNotFoundError,
            r"train\.txt line 1: 'fish/image_0001\.png' names .*photos/fish/image_0001\.png, which does not exist",
        ),
        (
            TRAIN_LINES,
            [TEST_LINES[0], "cat/image_0001.png"],
            ValueError,
            r"train\.txt line 1 and .*test\.txt line 2 both name .*cat/image_0001\.png; a file must be in one split only",
        ),
        (
            [*TRAIN_LINES, TRAIN_LINES[1]],
            TEST_LINES,
            ValueError,
            r"train\.txt line 5: 'cat/image_0002\.png' names .*, already named on line 2",
        ),
    ],
    ids=["missing file", "missing first file", "in both lists", "listed twice"],
)
def test_bad_split_lists_are_rejected_naming_list_line_and_path(
    tmp_path, train, test, error, message
):
    root = write_tree(tmp_path / "photos", PHOTOS, as_zip=False)
    write_lists(root, train, test)
    with pytest.raises(error, match=message):
        make_stimuli("folder", 1, root=str(root))


def test_a_lone_split_list_is_rejected(tmp_path):
    root = write_tree(tmp_path / "photos", PHOTOS, as_zip=False)
    (root / "train.txt").write_text("\n".join(TRAIN_LINES))
    with pytest.raises(
        FileNotFoundError, match=r"train\.txt: split list found, but not test\.txt beside it"
    ):
        folder_files(root, "train")
