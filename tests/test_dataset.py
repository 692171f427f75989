"""NeuralDataset: validation, HDF5 round trip, lazy opening, atomic writes."""

import os
import stat

import h5py
import numpy as np
import pytest

from conftest import make_toy_dataset
from neuralsight.data import SCHEMA_VERSION, DatasetError, NeuralDataset


def test_hdf5_round_trip_keeps_every_field(tmp_path, toy_dataset):
    path = toy_dataset.save(tmp_path / "toy.h5")
    back = NeuralDataset.open(path, lazy=False)
    np.testing.assert_array_equal(back.responses, toy_dataset.responses)
    np.testing.assert_array_equal(back.stimuli, toy_dataset.stimuli)
    np.testing.assert_array_equal(back.stimulus_id, toy_dataset.stimulus_id)
    np.testing.assert_array_equal(back.split, toy_dataset.split)
    np.testing.assert_array_equal(back.bin_edges_ms, toy_dataset.bin_edges_ms)
    assert back.units.columns.tolist() == ["unit_id", "area", "rf_x"]
    np.testing.assert_array_equal(back.units["unit_id"], toy_dataset.units["unit_id"])
    assert back.units["area"].tolist() == toy_dataset.units["area"].tolist()
    np.testing.assert_allclose(back.units["rf_x"], toy_dataset.units["rf_x"])
    assert back.meta == toy_dataset.meta


def test_file_is_chunked_compressed_and_versioned(tmp_path, toy_dataset):
    path = toy_dataset.save(tmp_path / "toy.h5", compression="gzip")
    with h5py.File(path) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["responses"].chunks is not None
        assert f["responses"].compression == "gzip"
        assert f["stimuli"].compression == "gzip"


def test_open_is_lazy_and_reads_on_index(tmp_path, toy_dataset):
    path = toy_dataset.save(tmp_path / "toy.h5")
    lazy = NeuralDataset.open(path)
    assert lazy.is_lazy
    assert isinstance(lazy.responses, h5py.Dataset)
    np.testing.assert_array_equal(lazy.responses[3:5], toy_dataset.responses[3:5])
    np.testing.assert_array_equal(lazy.to_memory().stimuli, toy_dataset.stimuli)


def test_failed_save_leaves_no_file(tmp_path, toy_dataset):
    toy_dataset.meta["bad"] = object()
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        toy_dataset.save(tmp_path / "bad.h5")
    assert list(tmp_path.iterdir()) == []


def test_saved_and_streamed_files_get_the_permissions_open_gives(tmp_path, toy_dataset):
    previous = os.umask(0o022)
    try:
        saved = toy_dataset.save(tmp_path / "saved.h5")
        writer = NeuralDataset.create(
            tmp_path / "streamed.h5", 1, 1, 1, 1, (1, 2, 2), split=["train"], stimulus_id=[0]
        )
        writer.write_responses(0, np.zeros((1, 1), np.float32))
        writer.write_stimuli(0, np.zeros((1, 1, 2, 2), np.float32))
        streamed = writer.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o644
    assert stat.S_IMODE(streamed.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.h5", "streamed.h5"]


def test_from_arrays_fills_defaults():
    ds = NeuralDataset.from_arrays(np.ones((5, 3), np.float32), np.zeros((5, 8, 8), np.float32))
    assert (ds.n_trials, ds.n_units, ds.n_bins, ds.image_shape) == (5, 3, 1, (1, 8, 8))
    assert set(ds.split) == {"train"}
    assert ds.trials("test").size == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.__setattr__("responses", d.responses[:, :, 0]), "'responses' must have shape"),
        (
            lambda d: d.__setattr__("stimulus_id", d.stimulus_id[:-1]),
            "'stimulus_id' must have shape",
        ),
        (lambda d: d.__setattr__("split", d.split[:-1]), "'split' must have shape"),
        (lambda d: d.__setattr__("units", d.units.iloc[:-1]), "one row per unit"),
        (
            lambda d: d.__setattr__("units", d.units.drop(columns="area")),
            r"lacks column\(s\) \['area'\]",
        ),
        (
            lambda d: d.__setattr__("bin_edges_ms", d.bin_edges_ms[:-1]),
            "'bin_edges_ms' must have shape",
        ),
        (lambda d: d.split.__setitem__(0, "valid"), r"unknown value\(s\) \['valid'\]"),
        (lambda d: d.stimulus_id.__setitem__(0, 999), "must index stimuli"),
        (
            lambda d: d.responses.__setitem__((1, 0, 0), np.nan),
            "NaN or infinite values \\(first at row 1\\)",
        ),
        (lambda d: d.stimuli.__setitem__((0, 0, 0, 0), 1.5), r"must lie in \[0, 1\]"),
        (
            lambda d: d.__setattr__("stimuli", d.stimuli[:, :, :, :, None][..., 0].repeat(2, 1)),
            "1 or 3 channels",
        ),
        (lambda d: d.__setattr__("responses", d.responses.astype(np.float64)), "must be float32"),
    ],
)
def test_validation_names_the_field(change, message):
    ds = make_toy_dataset()
    change(ds)
    with pytest.raises(DatasetError, match=message):
        ds.validate()


def test_open_rejects_foreign_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        NeuralDataset.open(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        NeuralDataset.open(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DatasetError, match="not a neuralsight dataset"):
        NeuralDataset.open(tmp_path / "other.h5")


def test_open_names_a_missing_field(tmp_path, toy_dataset):
    path = toy_dataset.save(tmp_path / "toy.h5")
    with h5py.File(path, "a") as f:
        del f["split"]
    with pytest.raises(DatasetError, match="field 'split' is missing"):
        NeuralDataset.open(path)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (SCHEMA_VERSION + 1, "newer than this neuralsight"),
        (None, "attribute 'schema_version' is missing; expected an integer from 1"),
        (0, "attribute 'schema_version' is 0; expected an integer from 1"),
        (-1, "attribute 'schema_version' is -1"),
        ("1", "must be an integer.*found '1' \\(str\\)"),
        (1.5, "must be an integer.*found 1.5"),
    ],
)
def test_open_rejects_a_missing_bad_or_newer_schema_version(
    tmp_path, toy_dataset, version, message
):
    path = toy_dataset.save(tmp_path / "toy.h5")
    with h5py.File(path, "a") as f:
        if version is None:
            del f.attrs["schema_version"]
        else:
            f.attrs["schema_version"] = version
    with pytest.raises(DatasetError, match=f"{path}: .*{message}"):
        NeuralDataset.open(path)


def flip_a_byte(path, field: str) -> None:
    """Change one stored byte of the first chunk of ``field``, as a bad disk would."""
    with h5py.File(path, "r") as f:
        info = f[field].id.get_chunk_info(0)
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset + info.size // 2)
        byte = raw.read(1)
        raw.seek(-1, 1)
        raw.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("field", ["responses", "stimuli"])
def test_a_flipped_bit_is_a_checksum_error_not_silent_data(tmp_path, toy_dataset, field):
    path = toy_dataset.save(tmp_path / "toy.h5", compression=None)
    with h5py.File(path, "r") as f:
        assert all(f[name].fletcher32 for name in ("responses", "stimuli", "stimulus_id"))
    flip_a_byte(path, field)
    with pytest.raises(DatasetError, match=rf"{path}: field '{field}' cannot be read: .*corrupt"):
        NeuralDataset.open(path, lazy=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.attrs.__delitem__("meta"), "attribute 'meta' is missing"),
        (lambda f: f.attrs.__setitem__("meta", "{not json"), "attribute 'meta' must be JSON"),
        (
            lambda f: f["units"].attrs.__delitem__("columns"),
            "attribute 'units/columns' is missing",
        ),
        (
            lambda f: f["units"].attrs.__setitem__("columns", '{"a": 1}'),
            "attribute 'units/columns' must be a JSON list",
        ),
        (
            lambda f: f["units"].attrs.__setitem__("columns", '["unit_id", "depth"]'),
            "field 'units/depth' is missing",
        ),
    ],
)
def test_missing_or_malformed_attributes_are_named(tmp_path, toy_dataset, edit, message):
    path = toy_dataset.save(tmp_path / "toy.h5")
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(DatasetError, match=f"{path}: {message}"):
        NeuralDataset.open(path)


def test_select_trials_keeps_order(toy_dataset):
    sub = toy_dataset.select_trials(np.array([5, 1, 3]))
    np.testing.assert_array_equal(sub.responses, toy_dataset.responses[[5, 1, 3]])
    np.testing.assert_array_equal(sub.stimulus_id, toy_dataset.stimulus_id[[5, 1, 3]])
