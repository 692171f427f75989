"""Bad inputs, as a hostile but fair user brings them: one row per case, through the program.

Each row builds a small bad file in a fresh folder, runs ``neuralsight`` on it and checks
the one-line error: exit status 1, the file and the field named, what was expected, and
that no output or temporary file is left beside the inputs.
"""

import h5py
import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image

from neuralsight.cli import console
from neuralsight.data import NeuralDataset
from neuralsight.metrics import save_reconstructions
from test_dataset import flip_a_byte
from test_reader_sid_mat import toy_sid
from test_reader_sid_mat import write_v73 as write_sid_v73
from test_reader_tvsd import TEST_PATHS, TRAIN_PATHS, normmua_arrays, write_v73

N_TEST = 6


def dataset(seed: int = 0, size: int = 8) -> NeuralDataset:
    """12 stimuli (the last ``N_TEST`` test), one trial each, responses random."""
    rng = np.random.default_rng(seed)
    split = ["train"] * (12 - N_TEST) + ["test"] * N_TEST
    stimuli = rng.random((12, 1, size, size), dtype=np.float32)
    return NeuralDataset.from_arrays(rng.random((12, 4), dtype=np.float32), stimuli, split=split)


def held_out_ids() -> np.ndarray:
    return np.arange(12 - N_TEST, 12)


def evaluate(folder, reconstructions) -> list[str]:
    return [
        "evaluate",
        "--reconstructions",
        str(reconstructions),
        "--dataset",
        str(folder / "data.h5"),
        "--out",
        str(folder / "metrics.json"),
    ]


def saved(folder, ds: NeuralDataset | None = None) -> NeuralDataset:
    ds = ds or dataset()
    ds.save(folder / "data.h5")
    return ds


def recon(folder, images, ids, meta=None):
    return save_reconstructions(folder / "recon.npz", images, ids, meta)


def one_reconstruction_for_every_stimulus(folder):
    ds = saved(folder)
    return evaluate(folder, recon(folder, ds.stimuli[[6]], [6]))


def copies_of_one_stimulus(folder):
    ds = saved(folder)
    return evaluate(folder, recon(folder, np.repeat(ds.stimuli[[6]], N_TEST, 0), [6] * N_TEST))


def training_split_as_test(folder):
    ds = saved(folder)
    return evaluate(folder, recon(folder, ds.stimuli[:N_TEST], np.arange(N_TEST)))


def duplicated_stimulus(folder):
    ds = saved(folder)
    ids = np.concatenate([held_out_ids(), [6]])
    return evaluate(folder, recon(folder, ds.stimuli[ids], ids))


def resized_targets(folder):
    saved(folder)
    return evaluate(folder, recon(folder, np.full((N_TEST, 1, 4, 4), 0.5), held_out_ids()))


def another_dataset(folder):
    ds = saved(folder)
    meta = {"dataset_fingerprint": dataset(seed=1).fingerprint()}
    return evaluate(folder, recon(folder, ds.stimuli[held_out_ids()], held_out_ids(), meta))


def nan_reconstructions(folder):
    """A file another tool wrote: neuralsight's own writer refuses NaN images."""
    ds = saved(folder)
    path = recon(folder, ds.stimuli[held_out_ids()], held_out_ids())
    fields = dict(np.load(path))
    fields["images"][0, 0, 0, 0] = np.nan
    np.savez(path, **fields)
    return evaluate(folder, path)


def stimuli_edited_on_disk(value):
    def case(folder):
        ds = saved(folder)
        with h5py.File(folder / "data.h5", "r+") as f:
            f["stimuli"][8, 0, 0, 0] = value
        return evaluate(folder, recon(folder, ds.stimuli[held_out_ids()], held_out_ids()))

    return case


def corrupt_stimulus_chunk(folder):
    ds = dataset()
    ds.save(folder / "data.h5", compression=None)
    flip_a_byte(folder / "data.h5", "stimuli")
    return evaluate(folder, recon(folder, ds.stimuli[held_out_ids()], held_out_ids()))


def convert(fmt, *names):
    return lambda folder: [
        "convert",
        fmt,
        *(str(folder / n) for n in names),
        "--out",
        str(folder / "out.h5"),
    ]


def convert_tvsd(folder):
    options = ["-o", "monkey=N", "-o", f"things_root={folder}"]
    return [*convert("tvsd", "monkeyN/THINGS_normMUA.mat")(folder), *options]


def truncated(name, write):
    """A file cut to half its length, as an interrupted copy leaves it."""

    def build(folder):
        write(folder / name)
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
        return convert(READER_OF[name], name)(folder)

    return build


READER_OF = {"v5.mat": "sid_mat", "v73.mat": "sid_mat", "data.npz": "npz"}


def sid_v5(path):
    scipy.io.savemat(path, sid_variables())


def sid_v73(path):
    write_sid_v73(path, sid_variables())


def sid_variables():
    toy = toy_sid(np.random.default_rng(0), n_train=40, n_test=8, n_cells=30, side=16)
    return {
        "spkTrn": toy["spkTrn"],
        "spkTest": toy["spkTest"],
        "stimTrn": toy["images_trn"].reshape(40, -1),
        "stimTest": toy["images_test"].reshape(8, -1),
    }


def npz_archive(path):
    rng = np.random.default_rng(0)
    np.savez(path, responses=rng.random((40, 30)), stimuli=rng.random((40, 1, 16, 16)))


def empty_file(name, fmt):
    def build(folder):
        (folder / name).write_bytes(b"")
        return convert(fmt, name)(folder)

    return build


def mat_given_to_npz(folder):
    sid_v5(folder / "data.mat")
    return convert("npz", "data.mat")(folder)


def tvsd_main_file_missing(folder):
    (folder / "monkeyN" / "_logs").mkdir(parents=True)
    return convert_tvsd(folder)


def all_nan_responses(folder):
    rng = np.random.default_rng(0)
    np.savez(
        folder / "data.npz", responses=np.full((12, 4), np.nan), stimuli=rng.random((12, 1, 8, 8))
    )
    return convert("npz", "data.npz")(folder)


def zero_units(folder):
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", responses=np.zeros((12, 0)), stimuli=rng.random((12, 1, 8, 8)))
    return convert("npz", "data.npz")(folder)


def tvsd_file(edit):
    """A TVSD monkey folder whose THINGS_normMUA.mat arrays went through ``edit``."""

    def build(folder):
        arrays = edit(normmua_arrays(np.random.default_rng(0)))
        (folder / "monkeyN" / "_logs").mkdir(parents=True)
        write_v73(folder / "monkeyN" / "THINGS_normMUA.mat", arrays)
        image_lists = {
            "train_imgs": {"things_path": TRAIN_PATHS},
            "test_imgs": {"things_path": TEST_PATHS},
        }
        write_v73(folder / "monkeyN" / "_logs" / "things_imgs.mat", {}, image_lists)
        for name in TRAIN_PATHS + TEST_PATHS:
            image = folder / "object_images" / name.replace("\\", "/")
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(image)
        return convert_tvsd(folder)

    return build


def no_electrodes(arrays):
    return {k: v[:0] if v.shape[0] == 1024 else v for k, v in arrays.items()}


def nan_responses(arrays):
    return arrays | {
        k: np.full_like(arrays[k], np.nan) for k in ("train_MUA", "test_MUA", "test_MUA_reps")
    }


def fit_without_training_trials(folder):
    ds = dataset()
    ds.split[:] = "test"
    ds.save(folder / "data.h5")
    config = {
        "model": {"class_path": "neuralsight.models.decoders.RidgeDecoder"},
        "data": {"path": str(folder / "data.h5"), "batch_size": 4},
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(folder / "run"),
        },
    }
    (folder / "fit.yaml").write_text(yaml.safe_dump(config))
    return ["fit", "--config", str(folder / "fit.yaml")]


CASES = {
    "one reconstruction scored as the whole split": (
        one_reconstruction_for_every_stimulus,
        "recon.npz: field 'stimulus_id' covers 1 of the 6 stimuli of split 'test'",
    ),
    "copies of one stimulus": (copies_of_one_stimulus, "recon.npz: field 'stimulus_id' covers 1"),
    "training ids given as test": (
        training_split_as_test,
        "recon.npz: field 'stimulus_id' names 6 stimuli that are not in split 'test'",
    ),
    "one stimulus twice": (
        duplicated_stimulus,
        "recon.npz: field 'stimulus_id' repeats stimulus 6 2 times; expected once",
    ),
    "another size than the stimuli": (
        resized_targets,
        "recon.npz: field 'images' is 4x4 but the stimuli of {tmp}/data.h5 are 8x8",
    ),
    "made from another dataset": (
        another_dataset,
        "recon.npz: made from another data set: its meta 'dataset_fingerprint'",
    ),
    "NaN reconstructions": (
        nan_reconstructions,
        "recon.npz: field 'images' holds NaN or infinite values",
    ),
    "NaN stimulus in a lazily read file": (
        stimuli_edited_on_disk(np.nan),
        "{tmp}/data.h5: field 'stimuli' must hold finite values in [0, 1], found stimulus 8",
    ),
    "stimulus above 1 in a lazily read file": (
        stimuli_edited_on_disk(3.0),
        "{tmp}/data.h5: field 'stimuli' must hold finite values in [0, 1], found stimulus 8",
    ),
    "a corrupt chunk read lazily": (
        corrupt_stimulus_chunk,
        "{tmp}/data.h5: field 'stimuli' cannot be read: the file is corrupt or truncated",
    ),
    "truncated MATLAB v5": (
        truncated("v5.mat", sid_v5),
        "{tmp}/v5.mat: expected a whole MATLAB .mat file (v5 or v7.3/HDF5), found a truncated",
    ),
    "truncated MATLAB v7.3": (
        truncated("v73.mat", sid_v73),
        "{tmp}/v73.mat: ",
    ),
    "truncated .npz": (
        truncated("data.npz", npz_archive),
        "{tmp}/data.npz: expected a NumPy .npz archive (numpy.savez), found something else",
    ),
    "empty .npz": (
        empty_file("data.npz", "npz"),
        "{tmp}/data.npz: expected a NumPy .npz archive (numpy.savez), found an empty file",
    ),
    "empty .mat": (empty_file("data.mat", "sid_mat"), "{tmp}/data.mat: expected a MATLAB .mat"),
    "a .mat given to the npz reader": (
        mat_given_to_npz,
        "{tmp}/data.mat: expected a NumPy .npz archive (numpy.savez), found something else",
    ),
    "NaN responses": (all_nan_responses, "field 'responses' holds NaN or infinite values"),
    "zero units": (zero_units, "field 'responses' must hold at least one trial, unit and time bin"),
    "TVSD main file missing": (
        tvsd_main_file_missing,
        "{tmp}/monkeyN/THINGS_normMUA.mat",
    ),
    "TVSD with zero electrodes": (
        tvsd_file(no_electrodes),
        "{tmp}/monkeyN/THINGS_normMUA.mat: field 'reliab' must have 1024 electrodes along one "
        "axis, found (0, 3)",
    ),
    "TVSD all NaN": (
        tvsd_file(nan_responses),
        "{tmp}/monkeyN/THINGS_normMUA.mat: field 'train_MUA / test_MUA' must hold finite",
    ),
    "fit without training trials": (
        fit_without_training_trials,
        "{tmp}/data.h5: field 'split' must mark trials 'train' to train on, found none",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_one_clear_error_and_leaves_nothing(tmp_path, capsys, case):
    build, message = CASES[case]
    argv = build(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert console(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuralsight: error: ") and "Traceback" not in err
    assert message.format(tmp=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_file_covering_its_split_is_scored(tmp_path, capsys):
    ds = saved(tmp_path)
    meta = {"dataset_fingerprint": ds.fingerprint()}
    assert (
        console(
            evaluate(tmp_path, recon(tmp_path, ds.stimuli[held_out_ids()], held_out_ids(), meta))
        )
        == 0
    )
    assert (tmp_path / "metrics.json").is_file()
