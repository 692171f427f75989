"""Tests for the TVSD reader on toy files in the real layout (MATLAB v7.3, 1024 electrodes)."""

import itertools

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from neuralsight.data.dataset import DatasetError
from neuralsight.data.readers import READERS
from neuralsight.data.readers.tvsd import read

N_ELECTRODES = 1024
TRAIN_PATHS = [f"cat{i % 2}\\cat{i % 2}_{i:02d}b.png" for i in range(5)]
TEST_PATHS = ["dog\\dog_01s.png", "dog\\dog_02s.png"]
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_v73(path, arrays, structs=None, matlab_header=False):
    """Write a MATLAB v7.3 file: arrays with axes reversed, cell strings behind references."""
    with h5py.File(path, "w", userblock_size=512 if matlab_header else 0) as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=np.asarray(value).T)
        refs = f.create_group("#refs#")
        for struct, fields in (structs or {}).items():
            group = f.create_group(struct)
            for field, texts in fields.items():
                cell = group.create_dataset(field, shape=(len(texts), 1), dtype=h5py.ref_dtype)
                for index, text in enumerate(texts):
                    codes = np.array([[ord(c)] for c in text], dtype=np.uint16)
                    chars = refs.create_dataset(f"{struct}_{field}_{index}", data=codes)
                    chars.attrs["MATLAB_class"] = np.bytes_("char")
                    cell[index, 0] = chars.ref
    if matlab_header:
        with open(path, "r+b") as handle:
            handle.write(MATLAB_HEADER.ljust(128))


def normmua_arrays(rng, n_train=5, n_test=2, n_reps=3):
    """THINGS_normMUA.mat variables in MATLAB's orientation."""
    return {
        "train_MUA": rng.normal(size=(N_ELECTRODES, n_train)).astype(np.float32),
        "test_MUA": rng.normal(size=(N_ELECTRODES, n_test)).astype(np.float32),
        "test_MUA_reps": rng.normal(size=(N_ELECTRODES, n_test, n_reps)).astype(np.float32),
        "reliab": rng.uniform(-0.2, 0.8, size=(N_ELECTRODES, 3)),
        "SNR": rng.uniform(0, 6, size=(N_ELECTRODES, 2)),
        "SNR_max": rng.uniform(0, 9, size=(1, N_ELECTRODES)),
        "oracle": rng.uniform(0, 1, size=(1, N_ELECTRODES)),
        "lats": rng.uniform(30, 90, size=(N_ELECTRODES, 2)),
        "tb": np.arange(-100.0, 200.0)[None],
    }


@pytest.fixture
def tvsd(tmp_path):
    """A toy monkey folder (normMUA + _logs/things_imgs.mat) and a THINGS image folder."""
    rng = np.random.default_rng(0)
    monkey = tmp_path / "monkeyN"
    (monkey / "_logs").mkdir(parents=True)
    arrays = normmua_arrays(rng)
    write_v73(monkey / "THINGS_normMUA.mat", arrays, matlab_header=True)
    write_v73(
        monkey / "_logs" / "things_imgs.mat",
        {},
        {"train_imgs": {"things_path": TRAIN_PATHS}, "test_imgs": {"things_path": TEST_PATHS}},
    )
    root = tmp_path / "THINGS" / "object_images"
    images = {}
    for name in TRAIN_PATHS + TEST_PATHS:
        relative = name.replace("\\", "/")
        image = rng.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / relative)
        images[relative] = image
    return {
        "normmua": monkey / "THINGS_normMUA.mat",
        "arrays": arrays,
        "images": images,
        "things": tmp_path / "THINGS",
        "monkey": monkey,
    }


def expected_stimuli(images, names):
    """Centre 6 x 6 crop of each 6 x 10 image (image_size=6 needs no resampling)."""
    crops = [images[n.replace("\\", "/")][:, 2:8] for n in names]
    return np.stack(crops).transpose(0, 3, 1, 2) / np.float32(255)


def test_normalised_responses_units_and_stimuli(tvsd):
    arrays = tvsd["arrays"]
    ds = read(
        [tvsd["normmua"]], monkey="N", things_root=tvsd["things"], image_size=6, show_progress=False
    )
    reps = arrays["test_MUA_reps"]
    expected = np.concatenate(
        [arrays["train_MUA"].T, reps.transpose(1, 2, 0).reshape(-1, N_ELECTRODES)]
    )
    np.testing.assert_array_equal(ds.responses[:, :, 0], expected)
    assert ds.stimulus_id.tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6]
    assert ds.split.tolist() == ["train"] * 5 + ["test"] * 6
    assert ds.bin_edges_ms.tolist() == [25.0, 175.0]
    np.testing.assert_array_equal(
        ds.stimuli, expected_stimuli(tvsd["images"], TRAIN_PATHS + TEST_PATHS)
    )
    units = ds.units
    assert units["unit_id"].tolist() == list(range(N_ELECTRODES))
    assert units["area"].value_counts().to_dict() == {"V1": 512, "V4": 256, "IT": 256}
    assert units["area"][[0, 511, 512, 767, 768, 1023]].tolist() == [
        "V1",
        "V1",
        "V4",
        "V4",
        "IT",
        "IT",
    ]
    assert units["array"].tolist() == [e // 64 for e in range(N_ELECTRODES)]
    np.testing.assert_allclose(units["reliability"], arrays["reliab"].mean(axis=1))
    np.testing.assert_allclose(units["snr"], arrays["SNR"].mean(axis=1))
    np.testing.assert_allclose(units["snr_max"], arrays["SNR_max"].ravel())
    np.testing.assert_allclose(units["oracle"], arrays["oracle"].ravel())
    np.testing.assert_allclose(units["latency_ms"], arrays["lats"].mean(axis=1))
    assert ds.meta["animal"] == "monkeyN"
    assert ds.meta["windows_ms"]["IT"] == (75, 175)


def test_monkey_f_areas_average_test_and_max_images(tvsd):
    arrays = tvsd["arrays"]
    ds = READERS.get("tvsd")(
        [str(tvsd["normmua"])],
        monkey="monkeyF",
        things_root=str(tvsd["things"] / "object_images"),
        image_size=6,
        average_test=True,
        max_images=2,
        show_progress=False,
    )
    expected = np.concatenate([arrays["train_MUA"][:, :2].T, arrays["test_MUA"].T])
    np.testing.assert_array_equal(ds.responses[:, :, 0], expected)
    assert ds.stimulus_id.tolist() == [0, 1, 2, 3]
    assert ds.split.tolist() == ["train", "train", "test", "test"]
    np.testing.assert_array_equal(
        ds.stimuli, expected_stimuli(tvsd["images"], TRAIN_PATHS[:2] + TEST_PATHS)
    )
    areas = ds.units["area"]
    assert areas.value_counts().to_dict() == {"V1": 512, "IT": 320, "V4": 192}
    assert areas[[511, 512, 831, 832]].tolist() == ["V1", "IT", "IT", "V4"]


def test_electrode_filters_and_receptive_fields(tvsd, tmp_path):
    arrays = tvsd["arrays"]
    rf = np.random.default_rng(1).normal(size=(N_ELECTRODES, 3))
    np.save(tmp_path / "rf.npy", rf)
    ds = read(
        [tvsd["normmua"]],
        monkey="N",
        things_root=tvsd["things"],
        image_size=6,
        min_reliability=0.3,
        min_snr=2.0,
        rf_path=tmp_path / "rf.npy",
        show_progress=False,
    )
    keep = np.flatnonzero(
        (arrays["reliab"].mean(axis=1) >= 0.3) & (arrays["SNR"].mean(axis=1) >= 2)
    )
    assert 0 < len(keep) < N_ELECTRODES
    assert ds.units["unit_id"].tolist() == keep.tolist()
    np.testing.assert_array_equal(ds.responses[:5, :, 0], arrays["train_MUA"][keep].T)
    np.testing.assert_array_equal(ds.units["rf_x"], rf[keep, 0])
    np.testing.assert_array_equal(ds.units["rf_y"], rf[keep, 1])
    np.testing.assert_array_equal(ds.units["rf_sigma"], rf[keep, 2])
    assert ds.meta["rf_units"] == "degrees"


def test_receptive_fields_from_mat_file(tvsd, tmp_path):
    x, y = np.linspace(-5, 5, N_ELECTRODES), np.linspace(0, 3, N_ELECTRODES)
    scipy.io.savemat(tmp_path / "rf.mat", {"x": x[None], "y": y[None]})
    ds = read(
        [tvsd["normmua"]],
        monkey="N",
        things_root=tvsd["things"],
        image_size=6,
        rf_path=tmp_path / "rf.mat",
        show_progress=False,
    )
    np.testing.assert_array_equal(ds.units["rf_x"], x)
    np.testing.assert_array_equal(ds.units["rf_y"], y)
    assert "rf_sigma" not in ds.units


def test_missing_test_repeats_are_dropped(tvsd):
    arrays = dict(tvsd["arrays"])
    arrays["test_MUA_reps"] = arrays["test_MUA_reps"].copy()
    arrays["test_MUA_reps"][:, 1, 2] = np.nan
    write_v73(tvsd["normmua"], arrays)
    ds = read(
        [tvsd["normmua"]], monkey="N", things_root=tvsd["things"], image_size=6, show_progress=False
    )
    assert ds.stimulus_id.tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 6, 6]
    assert ds.meta["dropped_trials"] == 1


def trials_file(path, rng, n_time=30):
    """THINGS_MUA_trials.mat: ALLMUA [1024 x trials x time], tb, ALLMAT [trials x 7]."""
    # columns: trial_idx train_idx test_idx rep count correct day
    allmat = np.array(
        [
            [1, 3, 0, 1, 1, 1, 1],
            [2, 0, 1, 1, 2, 1, 1],
            [3, 1, 0, 1, 3, 0, 1],  # incorrect: dropped
            [4, 5, 0, 1, 4, 1, 1],
            [5, 0, 2, 1, 1, 1, 2],
            [6, 2, 0, 1, 2, 1, 2],
            [7, 0, 1, 2, 3, 1, 2],
            [8, 4, 0, 1, 4, 1, 2],
        ],
        dtype=np.float64,
    )
    allmua = rng.normal(size=(N_ELECTRODES, len(allmat), n_time)).astype(np.float32)
    tb = np.arange(-10.0, n_time - 10.0)[None]
    write_v73(path, {"ALLMUA": allmua, "ALLMAT": allmat, "tb": tb})
    return allmua, allmat, tb.ravel()


def binned(allmua, tb, edges):
    bins = [(tb >= lo) & (tb < hi) for lo, hi in itertools.pairwise(edges)]
    return np.stack([allmua[:, :, b].mean(axis=2) for b in bins], axis=2)  # [elec, trial, bin]


def test_time_resolved_trials_binned_in_chunks(tvsd, tmp_path):
    allmua, _, tb = trials_file(tmp_path / "THINGS_MUA_trials.mat", np.random.default_rng(2))
    ds = read(
        [tvsd["normmua"]],
        monkey="N",
        things_root=tvsd["things"],
        image_size=6,
        trials_path=tmp_path / "THINGS_MUA_trials.mat",
        window_ms=(0, 20),
        bin_ms=5,
        chunk_trials=3,
        show_progress=False,
    )
    rows = [0, 1, 3, 4, 5, 6, 7]
    expected = binned(allmua, tb, [0, 5, 10, 15, 20])[:, rows].transpose(1, 0, 2)
    np.testing.assert_allclose(ds.responses, expected, rtol=1e-5, atol=1e-6)
    assert ds.bin_edges_ms.tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert ds.stimulus_id.tolist() == [2, 5, 4, 6, 1, 5, 3]
    assert ds.split.tolist() == ["train", "test", "train", "test", "train", "test", "train"]
    assert ds.meta["trial_day"] == [1, 1, 1, 2, 2, 2, 2]
    np.testing.assert_array_equal(
        ds.stimuli, expected_stimuli(tvsd["images"], TRAIN_PATHS + TEST_PATHS)
    )


def test_time_resolved_zscore_per_day_and_all_trials(tvsd, tmp_path):
    allmua, allmat, tb = trials_file(tmp_path / "trials.mat", np.random.default_rng(3))
    ds = read(
        [tvsd["normmua"]],
        monkey="N",
        things_root=tvsd["things"],
        image_size=6,
        trials_path=tmp_path / "trials.mat",
        window_ms=(-10, 20),
        bin_ms=10,
        zscore_per_day=True,
        only_correct=False,
        show_progress=False,
    )
    raw = binned(allmua, tb, [-10, 0, 10, 20]).astype(np.float64)
    expected = np.empty_like(raw)
    for day in (1, 2):
        trials = allmat[:, 6] == day
        block = raw[:, trials]
        mean = block.mean(axis=(1, 2), keepdims=True)
        std = block.std(axis=(1, 2), keepdims=True)
        expected[:, trials] = (block - mean) / std
    np.testing.assert_allclose(ds.responses, expected.transpose(1, 0, 2), rtol=1e-4, atol=1e-5)
    assert ds.stimulus_id.tolist() == [2, 5, 0, 4, 6, 1, 5, 3]


def test_things_image_not_found(tvsd):
    missing = tvsd["things"] / "object_images" / "dog" / "dog_02s.png"
    missing.unlink()
    with pytest.raises(
        DatasetError,
        match=r"things_imgs.mat: field 'test_imgs.things_path' entry 1 "
        r"names THINGS image 'dog/dog_02s.png', which is not in",
    ):
        read([tvsd["normmua"]], monkey="N", things_root=tvsd["things"], show_progress=False)


def test_image_list_must_match_responses(tvsd):
    write_v73(
        tvsd["monkey"] / "_logs" / "things_imgs.mat",
        {},
        {"train_imgs": {"things_path": TRAIN_PATHS[:4]}, "test_imgs": {"things_path": TEST_PATHS}},
    )
    with pytest.raises(
        DatasetError,
        match=r"field 'train_MUA' must be \[1024 x train images\] = "
        r"\[1024, 4\], found \[1024, 5\]",
    ):
        read([tvsd["normmua"]], monkey="N", things_root=tvsd["things"], show_progress=False)


def test_bad_inputs(tvsd, tmp_path):
    arrays = {k: v for k, v in tvsd["arrays"].items() if k != "train_MUA"}
    write_v73(tmp_path / "no_train.mat", arrays)
    common = {
        "monkey": "N",
        "things_root": tvsd["things"],
        "show_progress": False,
        "imgs_path": tvsd["monkey"] / "_logs" / "things_imgs.mat",
    }
    with pytest.raises(DatasetError, match=r"no_train.mat: field 'train_MUA' is missing"):
        read([tmp_path / "no_train.mat"], **common)
    with pytest.raises(ValueError, match=r"pass things_root="):
        read([tvsd["normmua"]], monkey="N")
    with pytest.raises(ValueError, match=r"monkey must be 'N' or 'F'"):
        read([tvsd["normmua"]], monkey="X", things_root=tvsd["things"])
    with pytest.raises(DatasetError, match=r"no electrode passes min_reliability=2"):
        read([tvsd["normmua"]], min_reliability=2, **common)
    write_v73(
        tmp_path / "trials.mat",
        {
            "ALLMUA": np.zeros((N_ELECTRODES, 2, 30)),
            "ALLMAT": np.zeros((2, 6)),
            "tb": np.arange(30.0)[None],
        },
    )
    with pytest.raises(DatasetError, match=r"trials.mat: field 'ALLMAT' must be \[trials x 7\]"):
        read([tvsd["normmua"]], trials_path=tmp_path / "trials.mat", **common)
    trials_file(tmp_path / "trials.mat", np.random.default_rng(4))
    with pytest.raises(DatasetError, match=r"field 'tb' must have samples in every bin"):
        read(
            [tvsd["normmua"]],
            trials_path=tmp_path / "trials.mat",
            window_ms=(0, 40),
            bin_ms=10,
            **common,
        )


def test_image_list_from_v5_file(tvsd, tmp_path):
    cell = np.array(TRAIN_PATHS, dtype=object).reshape(-1, 1)
    scipy.io.savemat(
        tmp_path / "things_imgs.mat",
        {
            "train_imgs": {"things_path": cell},
            "test_imgs": {"things_path": np.array(TEST_PATHS, dtype=object).reshape(-1, 1)},
        },
    )
    ds = read(
        [tvsd["normmua"]],
        monkey="N",
        things_root=tvsd["things"],
        imgs_path=tmp_path / "things_imgs.mat",
        image_size=6,
        show_progress=False,
    )
    np.testing.assert_array_equal(
        ds.stimuli, expected_stimuli(tvsd["images"], TRAIN_PATHS + TEST_PATHS)
    )
