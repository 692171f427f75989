"""Tests for the SID ``.mat`` reader (jiankliu/Spike-Image-Decoder layout), v5 and v7.3."""

import h5py
import numpy as np
import pytest
import scipy.io

from neuralsight.data.dataset import DatasetError
from neuralsight.data.readers import READERS
from neuralsight.data.readers.sid_mat import read


def matlab_flatten(images):
    """Each image as MATLAB's img(:)' (column-major), one row per image."""
    return np.stack([image.T.ravel() for image in images])


def write_v73(path, variables):
    """A MATLAB v7.3 file: HDF5 with every array's axes reversed, as MATLAB stores them."""
    with h5py.File(path, "w") as f:
        for name, value in variables.items():
            f.create_dataset(name, data=np.asarray(value).T)


def toy_sid(rng, n_train=4, n_test=2, n_cells=5, side=4):
    return {
        "spkTrn": rng.poisson(3, size=(n_train, n_cells)).astype(np.float64),
        "spkTest": rng.poisson(3, size=(n_test, n_cells)).astype(np.float64),
        "images_trn": rng.integers(0, 256, size=(n_train, side, side), dtype=np.uint8),
        "images_test": rng.integers(0, 256, size=(n_test, side, side), dtype=np.uint8),
    }


def test_v5_flattened_uint8_column_major(tmp_path):
    toy = toy_sid(np.random.default_rng(0))
    path = tmp_path / "data.mat"
    scipy.io.savemat(
        path,
        {
            "spkTrn": toy["spkTrn"],
            "spkTest": toy["spkTest"],
            "stimTrn": matlab_flatten(toy["images_trn"]),
            "stimTest": matlab_flatten(toy["images_test"]),
        },
    )
    ds = read([path])
    np.testing.assert_array_equal(
        ds.responses[:, :, 0], np.concatenate([toy["spkTrn"], toy["spkTest"]])
    )
    images = np.concatenate([toy["images_trn"], toy["images_test"]])
    np.testing.assert_array_equal(ds.stimuli[ds.stimulus_id, 0], images / np.float32(255))
    assert ds.split.tolist() == ["train"] * 4 + ["test"] * 2
    assert ds.units["area"].tolist() == ["RGC"] * 5
    assert ds.units["unit_id"].tolist() == list(range(5))
    assert ds.meta["mat_version"] == "5"


def test_v73_three_dimensional_float_images_non_square(tmp_path):
    rng = np.random.default_rng(1)
    spk_trn, spk_test = rng.random((3, 6)), rng.random((2, 6))
    stim_trn, stim_test = rng.random((3, 4, 7)), rng.random((2, 4, 7))
    path = tmp_path / "data73.mat"
    write_v73(
        path, {"spkTrn": spk_trn, "spkTest": spk_test, "stimTrn": stim_trn, "stimTest": stim_test}
    )
    ds = READERS.get("sid_mat")([str(path)], area="RGC-ON")
    np.testing.assert_array_equal(
        ds.responses[:, :, 0], np.concatenate([spk_trn, spk_test]).astype(np.float32)
    )
    np.testing.assert_array_equal(
        ds.stimuli[:, 0], np.concatenate([stim_trn, stim_test]).astype(np.float32)
    )
    assert ds.units["area"].tolist() == ["RGC-ON"] * 6
    assert ds.meta["mat_version"] == "7.3"


def test_v73_flattened_matches_v5(tmp_path):
    toy = toy_sid(np.random.default_rng(2))
    variables = {
        "spkTrn": toy["spkTrn"],
        "spkTest": toy["spkTest"],
        "stimTrn": matlab_flatten(toy["images_trn"]),
        "stimTest": matlab_flatten(toy["images_test"]),
    }
    scipy.io.savemat(tmp_path / "v5.mat", variables)
    write_v73(tmp_path / "v73.mat", variables)
    v5, v73 = read([tmp_path / "v5.mat"]), read([tmp_path / "v73.mat"])
    np.testing.assert_array_equal(v5.responses, v73.responses)
    np.testing.assert_array_equal(v5.stimuli, v73.stimuli)


def test_repeated_images_share_a_stimulus(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(1, 3, 3), dtype=np.uint8)
    other = rng.integers(0, 256, size=(1, 3, 3), dtype=np.uint8)
    stim_trn = matlab_flatten(np.concatenate([image, other, image]))
    path = tmp_path / "repeats.mat"
    scipy.io.savemat(
        path,
        {
            "spkTrn": np.ones((3, 2)),
            "spkTest": np.ones((1, 2)),
            "stimTrn": stim_trn,
            "stimTest": matlab_flatten(other),
        },
    )
    ds = read([path])
    assert ds.stimulus_id.tolist() == [0, 1, 0, 1]
    assert ds.n_stimuli == 2
    np.testing.assert_array_equal(ds.stimuli[0, 0], image[0] / np.float32(255))
    assert read([path], deduplicate=False).stimulus_id.tolist() == [0, 1, 2, 3]


def test_image_shape_and_pixel_order_options(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.random((2, 2, 3))
    path = tmp_path / "rect.mat"
    scipy.io.savemat(
        path,
        {
            "spkTrn": np.ones((1, 2)),
            "spkTest": np.ones((1, 2)),
            "stimTrn": images[:1].reshape(1, -1),
            "stimTest": images[1:].reshape(1, -1),
        },
    )
    with pytest.raises(
        DatasetError, match=r"rect.mat: field 'stimTrn' must hold square .*6 pixels"
    ):
        read([path])
    ds = read([path], image_shape=(2, 3), pixel_order="C")
    np.testing.assert_array_equal(ds.stimuli[:, 0], images.astype(np.float32))


def test_bad_inputs(tmp_path):
    path = tmp_path / "bad.mat"
    good = {
        "spkTrn": np.ones((2, 3)),
        "spkTest": np.ones((1, 3)),
        "stimTrn": np.zeros((2, 16), np.uint8),
        "stimTest": np.zeros((1, 16), np.uint8),
    }
    scipy.io.savemat(path, {k: v for k, v in good.items() if k != "spkTest"})
    with pytest.raises(DatasetError, match=r"bad.mat: field 'spkTest' is missing; found fields"):
        read([path])
    scipy.io.savemat(path, good | {"spkTest": np.ones((1, 4))})
    with pytest.raises(DatasetError, match=r"field 'spkTest' must have 3 units .*shape \(1, 4\)"):
        read([path])
    scipy.io.savemat(path, good | {"stimTrn": np.zeros((3, 16), np.uint8)})
    with pytest.raises(DatasetError, match=r"field 'stimTrn' must have one image per row .*\(2\)"):
        read([path])
    scipy.io.savemat(path, good | {"stimTest": np.full((1, 16), -0.5)})
    with pytest.raises(DatasetError, match=r"field 'stimTest' must hold float pixels in \[0, 1\]"):
        read([path])
    (tmp_path / "text.mat").write_text("not a mat file")
    with pytest.raises(DatasetError, match=r"text.mat: expected a MATLAB .mat file"):
        read([tmp_path / "text.mat"])
