"""Data larger than memory: block-by-block writing, chunk-wise shuffling, capped training."""

import sys

import h5py
import numpy as np
import pytest

from conftest import make_toy_dataset, run_under_memory_cap
from neuralsight.data import DatasetError, NeuralDataModule, NeuralDataset
from neuralsight.data.datamodule import ChunkShuffleSampler

CAPPED_IMPORTS = """
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.models.decoders import RidgeDecoder
from neuralsight.train import fit
"""

CAPPED_RUN = r"""
side, n_units, block = 64, 8, 1024
n = int(1.1 * cap / (side * side * 4)) + 1
rng = np.random.default_rng(0)
with NeuralDataset.create(path, n, n_units, 1, n, (1, side, side)) as writer:
    for start in range(0, n, block):
        k = min(block, n - start)
        writer.write_stimuli(start, rng.random((k, 1, side, side), dtype=np.float32))
        writer.write_responses(start, rng.standard_normal((k, n_units), dtype=np.float32))

dm = NeuralDataModule(
    path=path, in_memory=False, batch_size=256, val_fraction=0.01, shuffle="chunks"
)
model = fit(
    RidgeDecoder(dm.n_inputs, dm.image_shape, alphas=[1.0, 100.0]),
    dm,
    max_epochs=1,
    progress=False,
    accelerator="cpu",
)
print(json.dumps({
    "cap": cap,
    "cap_holds": cap_holds,
    "file_bytes": os.path.getsize(path),
    "train_items": len(dm.train_set),
    "steps": model.trainer.global_step,
    "alpha": float(model.alpha),
}))
"""


def _write_toy(path, ds, order=(1, 0), rows=2):
    with NeuralDataset.create(
        path,
        ds.n_trials,
        ds.n_units,
        ds.n_bins,
        ds.n_stimuli,
        ds.image_shape,
        stimulus_id=ds.stimulus_id,
        units=ds.units,
        bin_edges_ms=ds.bin_edges_ms,
        split=ds.split,
        meta=ds.meta,
        chunk_trials=4,
        chunk_stimuli=3,
    ) as writer:
        halves = [(0, rows), (rows, None)]
        for part in order:
            a, b = halves[part]
            writer.write_responses(a, ds.responses[a:b])
            writer.write_stimuli(a, ds.stimuli[a:b])


def test_writer_fills_a_file_block_by_block_like_save(tmp_path):
    ds = make_toy_dataset(n_stimuli=12, repeats=2)
    _write_toy(tmp_path / "blocks.h5", ds, rows=10)
    back = NeuralDataset.open(tmp_path / "blocks.h5", lazy=False)
    saved = NeuralDataset.open(ds.save(tmp_path / "saved.h5"), lazy=False)
    for name in ("responses", "stimuli", "stimulus_id", "split", "bin_edges_ms"):
        np.testing.assert_array_equal(getattr(back, name), getattr(saved, name))
    assert back.units.equals(saved.units) and back.meta == saved.meta
    with h5py.File(tmp_path / "blocks.h5") as f:
        assert f["responses"].chunks[0] == 4 and f["stimuli"].chunks[0] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_writer_leaves_no_file_when_rows_are_missing_or_wrong(tmp_path):
    ds = make_toy_dataset(n_stimuli=12)
    path = tmp_path / "partial.h5"
    with pytest.raises(DatasetError, match=r"field 'stimuli' is incomplete: 2 of 12 rows"):
        with NeuralDataset.create(path, 12, ds.n_units, ds.n_bins, 12, ds.image_shape) as writer:
            writer.write_responses(0, ds.responses)
            writer.write_stimuli(0, ds.stimuli[:10])
    with pytest.raises(DatasetError, match=r"block of field 'responses' must have shape"):
        with NeuralDataset.create(path, 12, ds.n_units, ds.n_bins, 12, ds.image_shape) as writer:
            writer.write_responses(8, ds.responses[:6])
    with pytest.raises(DatasetError, match=r"'stimuli' must lie in \[0, 1\]"):
        with NeuralDataset.create(path, 12, ds.n_units, ds.n_bins, 12, ds.image_shape) as writer:
            writer.write_stimuli(0, ds.stimuli + 1)
    with pytest.raises(DatasetError, match=r"field 'split' holds unknown value"):
        NeuralDataset.create(path, 2, 3, 1, 2, (1, 4, 4), split=["train", "val"])
    assert list(tmp_path.iterdir()) == []


def test_chunk_sampler_shuffles_chunks_and_items_within_windows():
    chunk = np.repeat(np.arange(10), 8)
    sampler = ChunkShuffleSampler(chunk, window=2, seed=1)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(80)) and first != second
    windows = np.asarray(first).reshape(5, 16)
    assert all(len(np.unique(chunk[w])) == 2 for w in windows)
    assert not np.array_equal(np.sort(windows, axis=1), windows)
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_datamodule_reads_a_lazy_file_chunk_by_chunk(tmp_path):
    path = make_toy_dataset(n_stimuli=200).save(tmp_path / "toy.h5", chunk_trials=16)
    dm = NeuralDataModule(
        path=str(path), in_memory=False, batch_size=16, val_fraction=0.0, shuffle="chunks"
    )
    rows = np.concatenate([r.numpy() for r, _ in dm.train_dataloader()])
    trials = np.concatenate(dm.train_set.groups)
    expected = NeuralDataset.open(path, lazy=False).responses[trials]
    assert len(rows) == len(trials)
    assert sorted(map(bytes, rows)) == sorted(map(bytes, expected))
    with pytest.raises(ValueError, match="shuffle must be 'random' or 'chunks'"):
        NeuralDataModule(path=str(path), shuffle="blocks")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA needs Linux")
def test_trains_one_epoch_on_a_file_larger_than_the_memory_cap(tmp_path):
    path = tmp_path / "larger_than_memory.h5"
    result = run_under_memory_cap(CAPPED_IMPORTS, CAPPED_RUN, path)
    assert result["steps"] == -(-result["train_items"] // 256)
    assert result["alpha"] in (1.0, 100.0)
