"""Tests for the fMRI reader: "69 digits" (digit69_28x28.mat) and Miyawaki layouts."""

import h5py
import numpy as np
import pytest
import scipy.io

from neuralsight.data.dataset import DatasetError
from neuralsight.data.readers import READERS
from neuralsight.data.readers.fmri69 import read


def matlab_flatten(images):
    """Each 28 x 28 image as a row in MATLAB's column-major order (row.reshape(28, 28).T)."""
    return np.stack([image.T.ravel() for image in images])


def digit69_variables(rng, n_train=6, n_test=2, n_voxels=20):
    images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
    labels = rng.integers(1, 3, size=(n_train + n_test, 1), dtype=np.uint8)
    return images, {
        "fmriTrn": rng.normal(scale=0.2, size=(n_train, n_voxels)),
        "fmriTest": rng.normal(scale=0.2, size=(n_test, n_voxels)),
        "stimTrn": matlab_flatten(images[:n_train]),
        "stimTest": matlab_flatten(images[n_train:]),
        "labelTrn": labels[:n_train],
        "labelTest": labels[n_train:],
    }


def test_digit69_round_trip(tmp_path):
    images, variables = digit69_variables(np.random.default_rng(0))
    path = tmp_path / "digit69_28x28.mat"
    scipy.io.savemat(path, variables)
    ds = read([path])
    np.testing.assert_array_equal(
        ds.responses[:, :, 0],
        np.concatenate([variables["fmriTrn"], variables["fmriTest"]]).astype(np.float32),
    )
    np.testing.assert_array_equal(ds.stimuli[ds.stimulus_id, 0], images / np.float32(255))
    assert ds.stimulus_id.tolist() == list(range(8))
    assert ds.split.tolist() == ["train"] * 6 + ["test"] * 2
    assert ds.units["area"].tolist() == ["voxel"] * 20
    labels = np.concatenate([variables["labelTrn"], variables["labelTest"]]).ravel()
    assert ds.meta["labels"] == labels.tolist()
    assert ds.meta["labels_meaning"] == "digit class: 1 = six, 2 = nine"
    assert "BOLD" in ds.meta["response_units"]
    assert ds.meta["roi"] == "V1-V3"


def test_digit69_v73_reads_like_v5(tmp_path):
    _, variables = digit69_variables(np.random.default_rng(1))
    scipy.io.savemat(tmp_path / "digit69_v5.mat", variables)
    with h5py.File(tmp_path / "digit69_v73.mat", "w") as f:
        for name, value in variables.items():
            f.create_dataset(name, data=value.T)
    v5 = READERS.get("fmri69")([str(tmp_path / "digit69_v5.mat")])
    v73 = READERS.get("fmri69")([str(tmp_path / "digit69_v73.mat")])
    np.testing.assert_array_equal(v5.responses, v73.responses)
    np.testing.assert_array_equal(v5.stimuli, v73.stimuli)
    assert v5.meta["labels"] == v73.meta["labels"]


def test_miyawaki_repeats_share_stimuli_and_metadata(tmp_path):
    rng = np.random.default_rng(2)
    patterns = (rng.random((3, 28, 28)) > 0.5).astype(np.float64)
    shown = np.array([0, 1, 2, 0, 1, 2, 0])
    n_train = 5
    fmri = rng.normal(size=(7, 9))
    path = tmp_path / "miyawaki_structured_28x28.mat"
    scipy.io.savemat(
        path,
        {
            "fmriTrn": fmri[:n_train],
            "stimTrn": matlab_flatten(patterns[shown[:n_train]]),
            "fmriTest": fmri[n_train:],
            "stimTest": matlab_flatten(patterns[shown[n_train:]]),
            "labelTrn": np.array([[21], [22], [21], [23], [24]], np.uint16),
            "labelTest": np.array([[22], [23]], np.uint16),
            "train_indices": np.array([[4, 0, 2, 6, 1]], np.int64),
            "test_indices": np.array([[3, 5]], np.int64),
            "metadata": {"description": "toy figures", "unique_stimuli": np.array([[3]])},
        },
    )
    ds = read([path])
    np.testing.assert_array_equal(ds.responses[:, :, 0], fmri.astype(np.float32))
    assert ds.n_stimuli == 3
    assert ds.stimulus_id.tolist() == shown.tolist()
    np.testing.assert_array_equal(ds.stimuli[:, 0], patterns.astype(np.float32))
    assert ds.split.tolist() == ["train"] * 5 + ["test"] * 2
    assert ds.meta["labels"] == [21, 22, 21, 23, 24, 22, 23]
    assert ds.meta["labels_meaning"] == "recording session number"
    assert ds.meta["trial_source_index"] == [4, 0, 2, 6, 1, 3, 5]
    assert ds.meta["file_metadata"] == {"description": "toy figures", "unique_stimuli": 3}
    assert read([path], deduplicate=False).n_stimuli == 7


def test_an_empty_metadata_struct_is_read_as_no_fields(tmp_path):
    _, variables = digit69_variables(np.random.default_rng(3))
    variables["metadata"] = np.zeros((0,), dtype=[("description", "O")])
    scipy.io.savemat(tmp_path / "digit69_28x28.mat", variables)
    assert read([tmp_path / "digit69_28x28.mat"]).meta["file_metadata"] == {}


def test_bad_inputs(tmp_path):
    _, variables = digit69_variables(np.random.default_rng(3))
    path = tmp_path / "digit69.mat"
    scipy.io.savemat(path, {k: v for k, v in variables.items() if k != "fmriTest"})
    with pytest.raises(DatasetError, match=r"digit69.mat: field 'fmriTest' is missing"):
        read([path])
    scipy.io.savemat(path, variables | {"fmriTest": np.zeros((2, 21))})
    with pytest.raises(DatasetError, match=r"field 'fmriTest' must have 20 units .*\(2, 21\)"):
        read([path])
    scipy.io.savemat(path, variables | {"stimTest": np.zeros((2, 780), np.uint8)})
    with pytest.raises(DatasetError, match=r"field 'stimTest' must hold square .*780 pixels"):
        read([path])
    scipy.io.savemat(path, variables | {"labelTest": np.ones((3, 1), np.uint8)})
    with pytest.raises(
        DatasetError, match=r"field 'labelTrn/labelTest' must hold one value per trial \(8\)"
    ):
        read([path])
    scipy.io.savemat(path, variables | {"fmriTrn": np.full((6, 20), np.nan)})
    with pytest.raises(DatasetError, match=r"field 'fmriTrn' must hold finite values"):
        read([path])
