"""The torch view and the DataModule: splits, repeat averaging, shuffle control, workers."""

import numpy as np
import pytest
import torch

from conftest import make_toy_dataset
from neuralsight.data import NeuralDataModule, PairDataset, carve_validation


def test_validation_is_carved_by_whole_stimuli_and_deterministic():
    ds = make_toy_dataset(n_stimuli=60, repeats=3)
    train = ds.trials("train")
    a_train, a_val = carve_validation(ds.stimulus_id, train, 0.2, seed=1)
    _, b_val = carve_validation(ds.stimulus_id, train, 0.2, seed=1)
    np.testing.assert_array_equal(a_val, b_val)
    assert not set(ds.stimulus_id[a_train]) & set(ds.stimulus_id[a_val])
    assert len(np.unique(ds.stimulus_id[a_val])) == 10


def test_average_repeats_gives_one_item_per_stimulus():
    ds = make_toy_dataset(n_stimuli=12, repeats=4)
    pairs = PairDataset(ds, np.arange(ds.n_trials), average_repeats=True)
    assert len(pairs) == 12
    r, x = pairs[2]
    np.testing.assert_allclose(r.numpy(), ds.responses[8:12].mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(x.numpy(), ds.stimuli[2])


def test_shuffle_control_breaks_train_pairs_only():
    ds = make_toy_dataset(n_stimuli=60)
    real = NeuralDataModule(dataset=ds, batch_size=8)
    shuffled = NeuralDataModule(dataset=ds, batch_size=8, control="shuffle")
    assert (real.train_set.stimulus_index != shuffled.train_set.stimulus_index).mean() > 0.8
    np.testing.assert_array_equal(real.test_set.stimulus_index, shuffled.test_set.stimulus_index)
    assert sorted(real.train_set.stimulus_index) == sorted(shuffled.train_set.stimulus_index)


def test_datamodule_streams_a_lazy_file_through_workers(tmp_path):
    path = make_toy_dataset().save(tmp_path / "toy.h5")
    dm = NeuralDataModule(path=str(path), batch_size=10, in_memory=False, num_workers=2)
    assert dm.dataset.is_lazy
    batches = list(dm.train_dataloader())
    assert sum(len(b[0]) for b in batches) == len(dm.train_set)
    assert batches[0][0].dtype == torch.float32
    assert batches[0][1].shape[1:] == (1, 8, 8)


def test_response_stats_match_numpy():
    ds = make_toy_dataset()
    dm = NeuralDataModule(dataset=ds, val_fraction=0.0)
    stats = dm.response_stats(block=7)
    flat = ds.responses[ds.trials("train")].reshape(-1, dm.n_inputs)
    np.testing.assert_allclose(stats["mean"], flat.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["std"], flat.std(0), rtol=1e-4)
    np.testing.assert_allclose(stats["max"], flat.max(0))


def test_datamodule_rejects_bad_arguments(toy_dataset):
    with pytest.raises(ValueError, match="exactly one of 'path'"):
        NeuralDataModule()
    with pytest.raises(ValueError, match="control must be"):
        NeuralDataModule(dataset=toy_dataset, control="permute")
    with pytest.raises(ValueError, match="val_fraction must lie"):
        NeuralDataModule(dataset=toy_dataset, val_fraction=1.5).setup()
