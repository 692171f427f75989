"""Bad inputs, as a hostile but fair user brings them: one row per case, through the program.

Each row builds a small bad file in a fresh folder, runs ``neuralsight`` on it and checks
the one-line error: exit status 1, the file and the field named, what was expected, and
that no output or temporary file is left beside the inputs.
"""

import h5py
import numpy as np
import pytest

from neuralsight.cli import console
from neuralsight.data import NeuralDataset
from neuralsight.metrics import save_reconstructions

N_TEST = 6


def dataset(seed: int = 0, size: int = 8) -> NeuralDataset:
    """12 stimuli (the last ``N_TEST`` test), one trial each, responses random."""
    rng = np.random.default_rng(seed)
    split = ["train"] * (12 - N_TEST) + ["test"] * N_TEST
    stimuli = rng.random((12, 1, size, size), dtype=np.float32)
    return NeuralDataset.from_arrays(rng.random((12, 4), dtype=np.float32), stimuli, split=split)


def test_ids() -> np.ndarray:
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
    ids = np.concatenate([test_ids(), [6]])
    return evaluate(folder, recon(folder, ds.stimuli[ids], ids))


def resized_targets(folder):
    saved(folder)
    return evaluate(folder, recon(folder, np.full((N_TEST, 1, 4, 4), 0.5), test_ids()))


def another_dataset(folder):
    ds = saved(folder)
    meta = {"dataset_fingerprint": dataset(seed=1).fingerprint()}
    return evaluate(folder, recon(folder, ds.stimuli[test_ids()], test_ids(), meta))


def nan_reconstructions(folder):
    """A file another tool wrote: neuralsight's own writer refuses NaN images."""
    ds = saved(folder)
    path = recon(folder, ds.stimuli[test_ids()], test_ids())
    fields = dict(np.load(path))
    fields["images"][0, 0, 0, 0] = np.nan
    np.savez(path, **fields)
    return evaluate(folder, path)


def stimuli_edited_on_disk(value):
    def case(folder):
        ds = saved(folder)
        with h5py.File(folder / "data.h5", "r+") as f:
            f["stimuli"][8, 0, 0, 0] = value
        return evaluate(folder, recon(folder, ds.stimuli[test_ids()], test_ids()))

    return case


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
        console(evaluate(tmp_path, recon(tmp_path, ds.stimuli[test_ids()], test_ids(), meta))) == 0
    )
    assert (tmp_path / "metrics.json").is_file()
