"""Tests for the NumPy readers: ``.npz`` files and ``.npy`` responses paired with images."""

import zipfile

import numpy as np
import pytest
from PIL import Image

from neuralsight.data.dataset import DatasetError
from neuralsight.data.readers import READERS
from neuralsight.data.readers.npz import read, read_npy_images


def test_npz_round_trip_channels_last_uint8(tmp_path):
    rng = np.random.default_rng(0)
    responses = rng.normal(size=(5, 3, 2))
    stimuli = rng.integers(0, 256, size=(4, 6, 5, 3), dtype=np.uint8)
    units = np.array(
        [(10, "V1"), (11, "V4"), (12, "IT")], dtype=[("unit_id", "i8"), ("area", "U4")]
    )
    path = tmp_path / "data.npz"
    np.savez(
        path,
        responses=responses,
        stimuli=stimuli,
        units=units,
        stimulus_id=np.array([0, 1, 2, 3, 0]),
        split=np.array(["train", "train", "train", "test", "test"]),
        bin_edges_ms=np.array([0.0, 50.0, 100.0]),
    )
    ds = read([path])
    np.testing.assert_array_equal(ds.responses, responses.astype(np.float32))
    np.testing.assert_array_equal(ds.stimuli, stimuli.transpose(0, 3, 1, 2) / np.float32(255))
    assert ds.stimulus_id.tolist() == [0, 1, 2, 3, 0]
    assert ds.split.tolist() == ["train", "train", "train", "test", "test"]
    assert ds.bin_edges_ms.tolist() == [0.0, 50.0, 100.0]
    assert ds.units["unit_id"].tolist() == [10, 11, 12]
    assert ds.units["area"].tolist() == ["V1", "V4", "IT"]
    assert ds.meta["source_file"] == str(path)


def test_npz_channels_first_float_with_top_level_unit_fields(tmp_path):
    rng = np.random.default_rng(1)
    responses = rng.normal(size=(3, 2)).astype(np.float32)
    stimuli = rng.random((3, 1, 4, 4))
    path = tmp_path / "data.npz"
    np.savez(path, responses=responses, stimuli=stimuli, area=np.array(["V1", "V2"]))
    ds = READERS.get("npz")([str(path)])
    np.testing.assert_array_equal(ds.responses[:, :, 0], responses)
    np.testing.assert_array_equal(ds.stimuli, stimuli.astype(np.float32))
    assert ds.units["unit_id"].tolist() == [0, 1]
    assert ds.units["area"].tolist() == ["V1", "V2"]
    assert ds.split.tolist() == ["train"] * 3
    assert ds.stimulus_id.tolist() == [0, 1, 2]


def test_npz_grey_images_float_0_255_and_default_area(tmp_path):
    stimuli = np.array([[[0.0, 127.5], [255.0, 51.0]]])
    path = tmp_path / "grey.npz"
    np.savez(path, responses=np.ones((1, 4)), stimuli=stimuli)
    ds = read([path], area="RGC")
    np.testing.assert_allclose(ds.stimuli[0, 0], stimuli[0] / 255, rtol=1e-6)
    assert ds.units["area"].tolist() == ["RGC"] * 4


def test_npz_pickled_units_dict_needs_allow_pickle(tmp_path):
    path = tmp_path / "pickled.npz"
    units = np.array({"unit_id": [5, 6], "area": ["IT", "IT"], "rf_x": [0.5, -0.5]}, dtype=object)
    np.savez(path, responses=np.zeros((2, 2)), stimuli=np.zeros((2, 3, 3)), units=units)
    with pytest.raises(DatasetError, match=r"pickled.npz: field 'units' must be a plain array"):
        read([path])
    ds = read([path], allow_pickle=True)
    assert ds.units["unit_id"].tolist() == [5, 6]
    assert ds.units["rf_x"].tolist() == [0.5, -0.5]


def test_npz_missing_responses(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, stimuli=np.zeros((2, 3, 3)))
    with pytest.raises(DatasetError, match=r"bad.npz: field 'responses' is missing"):
        read([path])


def test_npz_wrong_shapes(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, responses=np.zeros(4), stimuli=np.zeros((4, 3, 3)))
    with pytest.raises(DatasetError, match=r"field 'responses' must be \[n, units\].*shape \(4,\)"):
        read([path])
    np.savez(path, responses=np.zeros((2, 3)), stimuli=np.zeros((2, 2, 5, 5)))
    with pytest.raises(DatasetError, match=r"field 'stimuli' must have 1 or 3 channels"):
        read([path])
    np.savez(path, responses=np.zeros((2, 3)), stimuli=np.zeros((3, 5, 5)))
    with pytest.raises(DatasetError, match=r"one image per trial \(2\).*found 3 images"):
        read([path])
    np.savez(path, responses=np.zeros((2, 3)), stimuli=np.zeros((2, 5, 5)), unit_id=[1, 2])
    with pytest.raises(DatasetError, match=r"field 'units.unit_id' must have one entry per unit"):
        read([path])


def test_npz_bad_values_name_the_file(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, responses=np.zeros((2, 3)), stimuli=np.full((2, 5, 5), 300, np.int16))
    with pytest.raises(DatasetError, match=r"field 'stimuli' must hold integer pixels in 0-255"):
        read([path])
    np.savez(path, responses=np.zeros((2, 3)), stimuli=np.zeros((2, 5, 5)), split=["train", "dev"])
    with pytest.raises(
        DatasetError, match=r"bad.npz: .*'split' holds unknown value\(s\) \['dev'\]"
    ):
        read([path])


def write_images(folder, names, images):
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(folder / name)


def test_npy_images_repeats_become_trials(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 4, 4, 3), dtype=np.uint8)
    write_images(tmp_path / "images", ["img2.png", "img10.png", "img1.png"], images)
    # natural order of the files: img1, img2, img10 -> images[2], images[0], images[1]
    responses = rng.integers(0, 9, size=(2, 3, 3)).astype(np.float64)
    responses[:, 0, 2] = np.nan
    responses[:, 2, 1:] = np.nan
    np.save(tmp_path / "responses.npy", responses)
    ds = read_npy_images(
        [tmp_path / "responses.npy", tmp_path / "images"],
        test_images=[1],
        area="V4",
        window_ms=(50, 150),
        show_progress=False,
    )
    expected_pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0)]
    np.testing.assert_array_equal(
        ds.responses[:, :, 0], np.array([responses[:, i, r] for i, r in expected_pairs])
    )
    assert ds.stimulus_id.tolist() == [i for i, _ in expected_pairs]
    assert ds.split.tolist() == ["train", "train", "test", "test", "test", "train"]
    np.testing.assert_array_equal(
        ds.stimuli, images[[2, 0, 1]].transpose(0, 3, 1, 2) / np.float32(255)
    )
    assert ds.units["area"].tolist() == ["V4", "V4"]
    assert ds.bin_edges_ms.tolist() == [50.0, 150.0]
    assert ds.meta["image_files"] == ["img1.png", "img2.png", "img10.png"]


def test_npy_images_zip_with_inner_folder_average_and_crop(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(2, 4, 6), dtype=np.uint8)
    write_images(tmp_path / "src", ["image0001.png", "image0002.png"], images)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images_1/", "")
        for name in ("image0002.png", "image0001.png"):
            zf.write(tmp_path / "src" / name, f"images_1/{name}")
    responses = np.array([[[1.0, 3.0, np.nan], [2.0, np.nan, np.nan]]])
    np.save(tmp_path / "r.npy", responses)
    ds = READERS.get("npy_images")(
        [str(tmp_path / "r.npy"), str(archive)],
        image_size=4,
        average_repeats=True,
        test_fraction=0.0,
        show_progress=False,
    )
    np.testing.assert_array_equal(ds.responses[:, 0, 0], [2.0, 2.0])
    assert ds.stimulus_id.tolist() == [0, 1]
    assert ds.split.tolist() == ["train", "train"]
    np.testing.assert_array_equal(ds.stimuli[:, 0], images[:, :, 1:5] / np.float32(255))


def test_npy_images_default_split_is_deterministic(tmp_path):
    images = np.zeros((10, 2, 2), np.uint8)
    write_images(tmp_path / "images", [f"{i:02d}.png" for i in range(10)], images)
    np.save(tmp_path / "r.npy", np.ones((3, 10)))
    paths = [tmp_path / "r.npy", tmp_path / "images"]
    first = read_npy_images(paths, test_fraction=0.3, seed=5, show_progress=False)
    second = read_npy_images(paths, test_fraction=0.3, seed=5, show_progress=False)
    expected = np.sort(np.random.default_rng(5).permutation(10)[:3])
    assert first.meta["test_images"] == expected.tolist()
    assert first.split.tolist() == second.split.tolist()
    assert np.flatnonzero(first.split == "test").tolist() == expected.tolist()


def test_npy_images_count_mismatch(tmp_path):
    write_images(tmp_path / "images", ["a.png", "b.png"], np.zeros((2, 2, 2), np.uint8))
    np.save(tmp_path / "r.npy", np.ones((3, 5)))
    with pytest.raises(DatasetError, match=r"r.npy: field 'responses' holds 5 images .* 2 image"):
        read_npy_images([tmp_path / "r.npy", tmp_path / "images"], show_progress=False)


def test_npy_images_partial_nan_repeat(tmp_path):
    write_images(tmp_path / "images", ["a.png"], np.zeros((1, 2, 2), np.uint8))
    np.save(tmp_path / "r.npy", np.array([[[1.0, np.nan]], [[2.0, 3.0]]]))
    with pytest.raises(DatasetError, match=r"NaN for some units only at image 0, repeat 1"):
        read_npy_images([tmp_path / "r.npy", tmp_path / "images"], show_progress=False)


def test_npy_images_sizes_must_agree_without_image_size(tmp_path):
    write_images(tmp_path / "images", ["a.png"], [np.zeros((2, 2), np.uint8)])
    write_images(tmp_path / "images", ["b.png"], [np.zeros((3, 3), np.uint8)])
    np.save(tmp_path / "r.npy", np.ones((1, 2)))
    with pytest.raises(DatasetError, match=r"b.png: image of 3 x 3 pixels differs .*image_size="):
        read_npy_images([tmp_path / "r.npy", tmp_path / "images"], show_progress=False)


def test_npy_images_bad_arguments(tmp_path):
    write_images(tmp_path / "images", ["a.png"], [np.zeros((2, 2), np.uint8)])
    np.save(tmp_path / "r.npy", np.ones((1, 1)))
    paths = [tmp_path / "r.npy", tmp_path / "images"]
    with pytest.raises(ValueError, match=r"test_images must index the 1 images"):
        read_npy_images(paths, test_images=[3], show_progress=False)
    with pytest.raises(ValueError, match=r"reads 2 path\(s\)"):
        read_npy_images(paths[:1], show_progress=False)
