"""Tests for the stimulus sources in `neuralsight.data.sources`."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import socket
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torchvision.datasets as tvd
from sklearn.datasets import load_digits

from neuralsight.cli import build_parser
from neuralsight.data.sources import (
    NATURAL_COLOUR_PHOTOS,
    NATURAL_PHOTO_FILES,
    NATURAL_TEST_PHOTOS,
    NATURAL_TRAIN_PHOTOS,
    SOURCES,
    dead_leaves,
    describe_source,
    folder_files,
    make_stimuli,
    natural,
    natural_crops,
    stimulus_blocks,
)

OFFLINE = ("digits", "natural", "deadleaves")


def power_spectrum_slope(image: np.ndarray) -> float:
    """Log-log slope of the radially averaged power spectrum between 2 and side/4 cycles."""
    side = image.shape[-1]
    power = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    y, x = np.indices(power.shape) - side // 2
    ring = np.hypot(x, y).astype(int).ravel()
    profile = np.bincount(ring, power.ravel()) / np.bincount(ring)
    frequencies = np.arange(2, side // 4)
    return float(np.polyfit(np.log(frequencies), np.log(profile[frequencies]), 1)[0])


# ---------------------------------------------------------------------------------------
# common contract


@pytest.mark.parametrize("name", OFFLINE)
@pytest.mark.parametrize("channels", [1, 3])
def test_offline_sources_give_float32_images_in_unit_range(name, channels):
    images = make_stimuli(name, 3, size=20, channels=channels, seed=1)
    assert images.shape == (3, channels, 20, 20)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.std() > 0.05


@pytest.mark.parametrize("name", OFFLINE)
def test_same_seed_same_images_other_seed_other_images(name):
    first = make_stimuli(name, 4, size=16, seed=7)
    np.testing.assert_array_equal(first, make_stimuli(name, 4, size=16, seed=7))
    assert not np.array_equal(first, make_stimuli(name, 4, size=16, seed=8))


@pytest.mark.parametrize("name", OFFLINE)
def test_train_and_test_splits_differ(name):
    train = make_stimuli(name, 4, size=16, seed=0, split="train")
    test = make_stimuli(name, 4, size=16, seed=0, split="test")
    assert not np.array_equal(train, test)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "imagenet"}, r"'name' must be one of .*'digits'.*found 'imagenet'"),
        ({"channels": 2}, r"'channels' must be one of \(1, 3\), found 2"),
        ({"split": "val"}, r"'split' must be one of \('train', 'test'\), found 'val'"),
        ({"n": 0}, r"'n' must be a positive integer, found 0"),
        ({"size": 1}, r"'size' must be an integer >= 2, found 1"),
        ({"seed": -1}, r"'seed' must be a non-negative integer, found -1"),
        ({"n": 2.5}, r"'n' must be a positive integer, found 2\.5"),
        ({"channels": 3.0}, r"'channels' must be one of \(1, 3\), found 3\.0"),
    ],
)
def test_bad_parameters_are_rejected_with_their_name(kwargs, message):
    arguments = {"name": "digits", "n": 2, "size": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        make_stimuli(**arguments)


def test_every_source_has_a_one_line_description():
    for name in SOURCES:
        text = describe_source(name)
        assert text and "\n" not in text
    with pytest.raises(ValueError, match="'name' must be one of"):
        describe_source("noise")


# ---------------------------------------------------------------------------------------
# digits


def test_digits_test_split_is_every_fifth_sample_and_train_the_rest():
    reference = load_digits().images.astype(np.float32) / 16.0
    test = make_stimuli("digits", 360, size=8, split="test")
    train = make_stimuli("digits", 1437, size=8, split="train")
    test_rows = {row.tobytes() for row in test[:, 0]}
    assert test_rows == {row.tobytes() for row in reference[::5]}
    train_rows = {row.tobytes() for row in train[:, 0]}
    assert train_rows == {row.tobytes() for i, row in enumerate(reference) if i % 5}


def test_digits_beyond_the_pool_repeat_every_image_equally():
    images = make_stimuli("digits", 720, size=8, split="test", seed=3)
    _, counts = np.unique(images.reshape(720, -1), axis=0, return_counts=True)
    assert counts.sum() == 720 and counts.min() >= 2
    first_pass = {row.tobytes() for row in images[:360, 0]}
    assert len(first_pass) == len({row.tobytes() for row in images[360:, 0]}) == counts.size


def test_digits_upsampling_is_smooth():
    images = make_stimuli("digits", 5, size=64, seed=0)[:, 0]
    neighbour_step = np.abs(np.diff(images, axis=-1)).max()
    assert neighbour_step < 0.35


# ---------------------------------------------------------------------------------------
# natural photographs


def test_natural_photo_lists_are_disjoint_and_cover_the_bundle():
    assert set(NATURAL_TRAIN_PHOTOS).isdisjoint(NATURAL_TEST_PHOTOS)
    assert set(NATURAL_TRAIN_PHOTOS) | set(NATURAL_TEST_PHOTOS) == set(NATURAL_PHOTO_FILES)
    assert set(NATURAL_COLOUR_PHOTOS) & set(NATURAL_TEST_PHOTOS)
    assert set(NATURAL_COLOUR_PHOTOS) & set(NATURAL_TRAIN_PHOTOS)


@pytest.mark.parametrize("channels", [1, 3])
def test_natural_crops_come_from_their_split_photos(channels):
    _, test_photos = natural_crops(40, size=16, channels=channels, seed=2, split="test")
    _, train_photos = natural_crops(40, size=16, channels=channels, seed=2, split="train")
    assert set(test_photos) <= set(NATURAL_TEST_PHOTOS)
    assert set(train_photos) <= set(NATURAL_TRAIN_PHOTOS)
    if channels == 3:
        assert set(test_photos + train_photos) <= set(NATURAL_COLOUR_PHOTOS)
    assert len(set(train_photos)) > 2


def test_natural_test_pixels_come_only_from_held_out_photos(monkeypatch):
    names = sorted(NATURAL_PHOTO_FILES)
    level = {name: (i + 1) / (len(names) + 1) for i, name in enumerate(names)}
    monkeypatch.setattr(
        natural, "load_photo", lambda name: np.full((1, 300, 400), level[name], np.float32)
    )
    images = make_stimuli("natural", 30, size=16, split="test", seed=4)
    found = {round(float(value), 5) for value in np.unique(images)}
    assert found <= {round(level[name], 5) for name in NATURAL_TEST_PHOTOS}


def test_natural_crop_sides_span_one_to_four_times_the_output(monkeypatch):
    ramp = np.broadcast_to(np.linspace(0, 1, 512, dtype=np.float32), (1, 512, 512))
    monkeypatch.setattr(natural, "load_photo", lambda name: ramp)
    images, _ = natural_crops(60, size=16, seed=5, split="train")
    side = np.abs(images[:, 0, 8, -1] - images[:, 0, 8, 0]) * 512 * 16 / 15
    assert side.min() > 0.8 * 16 and side.max() < 1.1 * 64
    assert side.max() > 2.5 * side.min()
    assert (images[:, 0, 8, -1] < images[:, 0, 8, 0]).any(), "some crops are flipped"


def test_natural_loads_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the natural source tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    natural.load_photo.cache_clear()
    for channels in (1, 3):
        for split in ("train", "test"):
            images, photos = natural_crops(40, size=8, channels=channels, split=split)
            assert images.shape == (40, channels, 8, 8)
    assert set(photos) == {name for name in NATURAL_TEST_PHOTOS if name in NATURAL_COLOUR_PHOTOS}


def test_natural_rejects_a_scale_below_one():
    with pytest.raises(ValueError, match=r"'max_scale' must be >= 1, found 0\.5"):
        natural_crops(2, size=8, max_scale=0.5)


# ---------------------------------------------------------------------------------------
# dead leaves


def test_deadleaves_spectrum_slope_is_natural_like():
    images = make_stimuli("deadleaves", 8, size=64, seed=0)[:, 0]
    slope = np.mean([power_spectrum_slope(image) for image in images])
    assert -3.5 < slope < -1.5


def test_deadleaves_have_flat_regions_and_sharp_edges():
    images = make_stimuli("deadleaves", 4, size=64, seed=1)[:, 0]
    steps = np.abs(np.diff(images, axis=-1))
    assert (steps < 1e-6).mean() > 0.4
    assert (steps > 0.2).mean() > 0.01


def test_deadleaves_longer_draw_extends_a_shorter_one():
    np.testing.assert_array_equal(
        dead_leaves(2, size=16, seed=9), dead_leaves(5, size=16, seed=9)[:2]
    )


def test_deadleaves_colour_channels_are_independent():
    images = dead_leaves(2, size=32, channels=3, seed=0)
    assert not np.allclose(images[:, 0], images[:, 1])


def test_deadleaves_rejects_bad_radii():
    with pytest.raises(ValueError, match=r"0 < r_min < r_max, found r_min=0\.5, r_max=0\.1"):
        dead_leaves(1, size=16, r_min=0.5, r_max=0.1)


# ---------------------------------------------------------------------------------------
# folders


def write_folder(folder: Path, count: int) -> Path:
    """``count`` grey PNGs named 00.png, 01.png, ... of constant level ``i / 100``."""
    folder.mkdir(exist_ok=True)
    for i in range(count):
        iio.imwrite(folder / f"{i:02d}.png", np.full((12, 20), round(i * 2.55), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def levels(images: np.ndarray) -> list[int]:
    return [round(float(image.mean()) * 100) for image in images]


def test_folder_split_sends_every_tenth_file_to_test(tmp_path):
    folder = write_folder(tmp_path / "images", 25)
    assert folder_files(folder, "test") == ["09.png", "19.png"]
    assert len(folder_files(folder, "train")) == 23
    assert levels(make_stimuli("folder", 2, size=8, split="test", root=str(folder))) == [9, 19]


def test_folder_subset_is_seeded_and_kept_in_name_order(tmp_path):
    folder = str(write_folder(tmp_path / "images", 25))
    first = levels(make_stimuli("folder", 5, size=8, seed=1, root=folder))
    assert first == sorted(first) and not {9, 19} & set(first)
    assert first == levels(make_stimuli("folder", 5, size=8, seed=1, root=folder))
    assert first != levels(make_stimuli("folder", 5, size=8, seed=2, root=folder))


def test_folder_centre_crops_resizes_and_converts_colour(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    image = np.zeros((10, 30, 4), np.uint8)
    image[:, 10:20, 0] = 255
    image[..., 3] = 255
    iio.imwrite(folder / "wide.png", image)
    colour = make_stimuli("folder", 1, size=5, channels=3, root=str(folder))
    np.testing.assert_allclose(colour[0, :, 2, 2], [1.0, 0.0, 0.0], atol=1e-6)
    assert colour[0, 0].min() > 0.99
    grey = make_stimuli("folder", 1, size=5, channels=1, root=str(folder))
    np.testing.assert_allclose(grey, 0.2125, atol=1e-4)


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"missing: image folder \(parameter 'root'\) does not exist"
    ):
        make_stimuli("folder", 1, root=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no image files found.*\.png"):
        make_stimuli("folder", 1, root=str(tmp_path / "empty"))
    folder = write_folder(tmp_path / "few", 3)
    with pytest.raises(ValueError, match=r"train split holds 3 image files.*fewer than the n=4"):
        make_stimuli("folder", 4, root=str(folder))
    with pytest.raises(ValueError, match="needs parameter 'root'"):
        make_stimuli("folder", 1)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png: cannot be read as an image"):
        make_stimuli("folder", 4, root=str(folder))


# ---------------------------------------------------------------------------------------
# torchvision data sets, from toy files in their on-disk layout


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = struct.pack(">I", 0x0800 + array.ndim)
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(magic + dims + array.astype(np.uint8).tobytes())


def write_toy_mnist(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count, base in (("train", 6, 0), ("t10k", 3, 100)):
        images = np.stack([np.full((28, 28), base + 10 * i, np.uint8) for i in range(count)])
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count))


def write_toy_cifar(root: Path, monkeypatch, dataset_class) -> None:
    """Pickled batches of pure-red (train) and pure-green (test) 32x32 images."""
    folder = root / dataset_class.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if dataset_class is tvd.CIFAR10 else "fine_labels"
    planes = {"train": (255, 0, 0), "test": (0, 255, 0)}

    def write(name: str, payload: dict) -> list[str]:
        data = pickle.dumps(payload)
        (folder / name).write_bytes(data)
        return [name, hashlib.md5(data).hexdigest()]

    def batch(colour: tuple[int, int, int], count: int) -> dict:
        image = np.concatenate([np.full(1024, value, np.uint8) for value in colour])
        return {"data": np.tile(image, (count, 1)), label_key: [0] * count}

    train_names = [name for name, _ in dataset_class.train_list]
    train = [write(name, batch(planes["train"], 2)) for name in train_names]
    test = [write(name, batch(planes["test"], 2)) for name, _ in dataset_class.test_list]
    meta_key = dataset_class.meta["key"]
    meta_name, meta_md5 = write(dataset_class.meta["filename"], {meta_key: ["toy"]})
    monkeypatch.setattr(dataset_class, "train_list", train)
    monkeypatch.setattr(dataset_class, "test_list", test)
    monkeypatch.setattr(
        dataset_class, "meta", {"filename": meta_name, "key": meta_key, "md5": meta_md5}
    )


@pytest.mark.parametrize(
    ("name", "folder", "file_name"),
    [
        ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py", "data_batch_1"),
        ("cifar100", "cifar-100-python", "meta"),
    ],
)
def test_missing_torchvision_files_raise_and_say_how_to_fetch(tmp_path, name, folder, file_name):
    with pytest.raises(FileNotFoundError) as caught:
        make_stimuli(name, 2, root=str(tmp_path))
    message = str(caught.value)
    assert str(tmp_path / folder) in message
    assert file_name in message
    assert "download=True" in message and "--download" in message


def test_torchvision_sources_need_a_root():
    with pytest.raises(ValueError, match="source 'mnist' needs parameter 'root'"):
        make_stimuli("mnist", 2)


def test_mnist_loads_from_toy_idx_files(tmp_path):
    write_toy_mnist(tmp_path)
    train = make_stimuli("mnist", 6, size=28, root=str(tmp_path), seed=0)
    assert train.shape == (6, 1, 28, 28)
    assert sorted(levels(train)) == [round(10 * i / 2.55) for i in range(6)]
    test = make_stimuli("mnist", 3, size=14, channels=3, split="test", root=str(tmp_path))
    assert test.shape == (3, 3, 14, 14)
    assert sorted(levels(test)) == [round((100 + 10 * i) / 2.55) for i in range(3)]
    np.testing.assert_array_equal(test[:, 0], test[:, 2])
    assert not np.array_equal(make_stimuli("mnist", 6, size=28, root=str(tmp_path), seed=1), train)


def test_mnist_with_gzip_only_files_still_asks_for_the_raw_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(FileNotFoundError, match="missing: train-images-idx3-ubyte, "):
        make_stimuli("mnist", 1, root=str(tmp_path))


@pytest.mark.parametrize("dataset_class", [tvd.CIFAR10, tvd.CIFAR100])
def test_cifar_loads_from_toy_pickle_batches(tmp_path, monkeypatch, dataset_class):
    write_toy_cifar(tmp_path, monkeypatch, dataset_class)
    name = dataset_class.__name__.lower()
    train = make_stimuli(name, 3, size=16, channels=3, root=str(tmp_path))
    assert train.shape == (3, 3, 16, 16)
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), [1.0, 0.0, 0.0], atol=1e-6)
    test = make_stimuli(name, 2, size=16, channels=1, split="test", root=str(tmp_path))
    np.testing.assert_allclose(test, 0.7154, atol=1e-4)


# ---------------------------------------------------------------------------------------
# every registered source: offered by the CLI, and the same contract


ROOT_LAYOUTS = {
    "folder": lambda root, monkeypatch: write_folder(root, 25),
    "mnist": lambda root, monkeypatch: write_toy_mnist(root),
    "cifar10": lambda root, monkeypatch: write_toy_cifar(root, monkeypatch, tvd.CIFAR10),
    "cifar100": lambda root, monkeypatch: write_toy_cifar(root, monkeypatch, tvd.CIFAR100),
}


@pytest.mark.parametrize("name", SOURCES.names())
def test_every_registered_source_is_a_choice_of_neuralsight_simulate(name, capsys):
    parser = build_parser()
    assert parser.parse_args(["simulate", "--source", name, "--out", "x.h5"]).source == name
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--help"])
    assert name in capsys.readouterr().out
    assert SOURCES.get(name).description == describe_source(name)


def test_neuralsight_simulate_refuses_an_unregistered_source(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--source", "imagenet", "--out", "x.h5"])
    error = capsys.readouterr().err
    assert "argument --source: invalid choice: 'imagenet'" in error
    assert all(name in error for name in SOURCES.names())


@pytest.mark.parametrize("name", SOURCES.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_registered_source_draws_seeded_images_in_unit_range(
    name, channels, tmp_path, monkeypatch
):
    assert name in OFFLINE or name in ROOT_LAYOUTS, f"give source {name!r} a tiny file layout"
    root = None
    if name in ROOT_LAYOUTS:
        root = tmp_path / name
        ROOT_LAYOUTS[name](root, monkeypatch)
        root = str(root)
    images = make_stimuli(name, 3, size=8, channels=channels, seed=2, root=root)
    assert images.shape == (3, channels, 8, 8) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(
        images, make_stimuli(name, 3, size=8, channels=channels, seed=2, root=root)
    )
    blocks = stimulus_blocks(name, 3, 2, size=8, channels=channels, seed=2, root=root)
    np.testing.assert_array_equal(np.concatenate([block.render() for block in blocks]), images)
