"""Lightning `DataModule` over a `NeuralDataset` file: train / val / test loaders.

The validation set is carved deterministically from the training stimuli (whole stimuli,
so repeats of one image never straddle train and val). ``control="shuffle"`` pairs the
training and validation responses with the wrong stimuli (a seeded permutation): a model
trained that way measures the chance level of a pipeline. Test pairs are never shuffled.

Training items are drawn in random order (``shuffle="random"``), or with
``shuffle="chunks"`` chunk by chunk (`ChunkShuffleSampler`): from a lazily opened file each
HDF5 chunk is then read once per epoch instead of once per batch that touches it. Either
order is a function of the DataModule's ``seed`` and the epoch alone (a random order is
`ChunkShuffleSampler` with every item its own chunk), so a run resumed from a checkpoint
sees the batches an uninterrupted run would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Sampler

from neuralsight.data.dataset import DatasetError, NeuralDataset
from neuralsight.data.views import PairDataset

Control = Literal["none", "shuffle"]
Shuffle = Literal["random", "chunks"]
IN_MEMORY_LIMIT_BYTES = 2 * 2**30


def carve_validation(
    stimulus_id: np.ndarray, train_trials: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training trials into (train, val) by whole stimuli, deterministically.

    Examples
    --------
    >>> import numpy as np
    >>> tr, va = carve_validation(np.arange(10), np.arange(10), 0.2, seed=0)
    >>> len(tr), len(va), set(tr) & set(va)
    (8, 2, set())
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), found {fraction}")
    stimuli = np.unique(stimulus_id[train_trials])
    n_val = round(fraction * len(stimuli)) if len(stimuli) > 1 else 0
    val_stimuli = np.random.default_rng(seed).permutation(stimuli)[:n_val]
    is_val = np.isin(stimulus_id[train_trials], val_stimuli)
    return train_trials[~is_val], train_trials[is_val]


class ChunkShuffleSampler(Sampler[int]):
    """A shuffled order of items that visits the HDF5 chunks holding them one window at a time.

    Each epoch the chunks are put in random order and taken ``window`` at a time; the items
    of the chunks in one window are shuffled together. A batch thus mixes items of up to
    ``window`` chunks, and while a window's chunks fit the file's chunk cache each chunk is
    read and decompressed once per epoch (a plain random order reads a chunk once for every
    batch that touches it). The order differs from epoch to epoch (`set_epoch`, which
    Lightning calls, or one step per iteration) and is seeded.

    Parameters
    ----------
    chunk_of_item
        The chunk (any integer label) holding each item.
    window
        Chunks whose items are shuffled together.
    seed
        Seed of the order.

    Examples
    --------
    >>> import numpy as np
    >>> order = list(ChunkShuffleSampler(np.arange(12) // 4, window=1))
    >>> sorted(order) == list(range(12)), [len({i // 4 for i in order[k:k + 4]}) for k in (0, 4, 8)]
    (True, [1, 1, 1])
    """

    def __init__(self, chunk_of_item: np.ndarray, window: int = 4, seed: int = 0) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 chunk, found {window}")
        labels, self._chunk = np.unique(np.asarray(chunk_of_item), return_inverse=True)
        self._n_chunks = len(labels)
        self.window = window
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` next."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._chunk)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        rank = np.empty(self._n_chunks, np.int64)
        rank[rng.permutation(self._n_chunks)] = np.arange(self._n_chunks)
        window_of_item = rank[self._chunk] // self.window
        order = np.lexsort((rng.random(len(self._chunk)), window_of_item))
        return iter(order.tolist())


class NeuralDataModule(L.LightningDataModule):
    """Train / val / test loaders of (responses, image) pairs from one dataset file.

    Parameters
    ----------
    path
        A dataset file written by `NeuralDataset.save` (or pass ``dataset``).
    batch_size
        Items per batch.
    val_fraction
        Fraction of training stimuli held out for validation.
    average_repeats
        Average repeated trials of one stimulus into one item (train, val and test).
    control
        ``"none"`` or ``"shuffle"`` (responses paired with the wrong stimuli in train/val).
    num_workers
        DataLoader worker processes (a lazily opened file is re-opened in each).
    in_memory
        Read the file into memory first; ``None`` decides by size (under 2 GiB).
    seed
        Seed of the validation carve, of the shuffle control and of the training order.
    dataset
        An in-memory `NeuralDataset` instead of ``path`` (API use).
    shuffle
        Order of training items: ``"random"``, or ``"chunks"`` (`ChunkShuffleSampler` over
        the chunks of ``responses`` holding each item's first trial; faster from a lazily
        opened file whose trials are stored in stimulus order, as readers and simulators
        write them). In memory both give a random order.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((20, 3), np.float32), np.zeros((20, 1, 4, 4), np.float32))
    >>> dm = NeuralDataModule(dataset=ds, batch_size=4)
    >>> dm.setup("fit"); len(dm.train_set), len(dm.val_set), dm.n_inputs
    (18, 2, 3)
    """

    def __init__(
        self,
        path: str | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        average_repeats: bool = False,
        control: Control = "none",
        num_workers: int = 0,
        in_memory: bool | None = None,
        seed: int = 0,
        dataset: NeuralDataset | None = None,
        shuffle: Shuffle = "random",
    ) -> None:
        super().__init__()
        if (path is None) == (dataset is None):
            raise ValueError("give exactly one of 'path' (a dataset file) or 'dataset'")
        if control not in ("none", "shuffle"):
            raise ValueError(f"control must be 'none' or 'shuffle', found {control!r}")
        if shuffle not in ("random", "chunks"):
            raise ValueError(f"shuffle must be 'random' or 'chunks', found {shuffle!r}")
        self.save_hyperparameters(ignore=["dataset"])
        if dataset is None:
            assert path is not None  # exactly one of the two, checked above
            dataset = self._open(Path(path), in_memory)
        self.dataset = dataset
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.average_repeats = average_repeats
        self.control = control
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle = shuffle
        self._sets: dict[str, PairDataset] = {}

    @staticmethod
    def _open(path: Path, in_memory: bool | None) -> NeuralDataset:
        ds = NeuralDataset.open(path, lazy=True)
        if in_memory is None:
            nbytes = 4 * (np.prod(ds.responses.shape) + np.prod(ds.stimuli.shape))
            in_memory = bool(nbytes < IN_MEMORY_LIMIT_BYTES)
        return ds.to_memory() if in_memory else ds

    @property
    def n_inputs(self) -> int:
        """Length of one flattened response vector (``n_units * n_bins``)."""
        return self.dataset.n_units * self.dataset.n_bins

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the stimuli."""
        return self.dataset.image_shape

    def setup(self, stage: str | None = None) -> None:
        """Split the trials into train, validation and test pairs (once); fitting without
        training pairs is an error before the trainer writes anything."""
        if self._sets:
            return
        ds = self.dataset
        train, val = carve_validation(
            ds.stimulus_id, ds.trials("train"), self.val_fraction, self.seed
        )
        self._sets = {
            "train": self._pairs(train, shuffle=self.control == "shuffle", offset=1),
            "val": self._pairs(val, shuffle=self.control == "shuffle", offset=2),
            "test": self._pairs(ds.trials("test"), shuffle=False, offset=0),
        }
        if stage == "fit":
            self._require_training_pairs()

    def _pairs(self, trials: np.ndarray, shuffle: bool, offset: int) -> PairDataset:
        pairs = PairDataset(self.dataset, trials, average_repeats=self.average_repeats)
        if shuffle and len(pairs) > 1:
            rng = np.random.default_rng([self.seed, offset])
            pairs.stimulus_index = pairs.stimulus_index[rng.permutation(len(pairs))]
        return pairs

    @property
    def train_set(self) -> PairDataset:
        """The training pairs (train trials less the validation stimuli)."""
        self.setup()
        return self._sets["train"]

    @property
    def val_set(self) -> PairDataset:
        """The validation pairs, carved from the train split by stimulus."""
        self.setup()
        return self._sets["val"]

    @property
    def test_set(self) -> PairDataset:
        """The test split's pairs."""
        self.setup()
        return self._sets["test"]

    def _loader(self, pairs: PairDataset, shuffle: bool) -> DataLoader:
        sampler = None
        if shuffle:
            sampler = (
                self._chunk_sampler(pairs)
                if self.shuffle == "chunks"
                else ChunkShuffleSampler(np.arange(len(pairs)), window=1, seed=self.seed)
            )
        return DataLoader(
            pairs,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=None,
        )

    def _chunk_sampler(self, pairs: PairDataset) -> ChunkShuffleSampler:
        responses = self.dataset.responses
        rows = getattr(responses, "chunks", None)
        first_trials = np.array([group[0] for group in pairs.groups], dtype=np.int64)
        return ChunkShuffleSampler(first_trials // (rows[0] if rows else 1), seed=self.seed)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of the training pairs; a data set without any is an error."""
        self._require_training_pairs()
        return self._loader(self.train_set, shuffle=True)

    def _require_training_pairs(self) -> None:
        if len(self.train_set):
            return
        ds = self.dataset
        raise DatasetError(
            f"{ds.source or 'dataset'}: field 'split' must mark trials 'train' to train "
            f"on, found none left ({len(ds.trials('train'))} 'train' trials, "
            f"{len(self.val_set)} of them held out for validation by "
            f"val_fraction={self.val_fraction}; {len(ds.trials('test'))} 'test')"
        )

    def val_dataloader(self) -> DataLoader:
        """Batches of the validation pairs, in order."""
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of the test pairs, in order."""
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Batches of the test pairs, in order (what `Trainer.predict` decodes)."""
        return self._loader(self.test_set, shuffle=False)

    def response_stats(self, block: int = 4096) -> dict[str, np.ndarray]:
        """Per-feature ``mean``, ``std``, ``min`` and ``max`` of flattened training responses.

        Read in blocks of ``block`` items, so a file larger than memory is fine. A feature
        that never varies gets ``std`` 1 (and ``max`` = ``min`` + 1) so scaling by it is safe.
        """
        pairs = self.train_set
        total = np.zeros(self.n_inputs)
        total_sq = np.zeros(self.n_inputs)
        low = np.full(self.n_inputs, np.inf)
        high = np.full(self.n_inputs, -np.inf)
        for start in range(0, len(pairs), block):
            rows = pairs.responses_block(np.arange(start, min(start + block, len(pairs))))
            total += rows.sum(axis=0, dtype=np.float64)
            total_sq += np.square(rows, dtype=np.float64).sum(axis=0)
            low = np.minimum(low, rows.min(axis=0))
            high = np.maximum(high, rows.max(axis=0))
        n = max(len(pairs), 1)
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        constant = high - low <= 1e-8
        return {
            "mean": mean.astype(np.float32),
            "std": np.where(std > 1e-8, std, 1.0).astype(np.float32),
            "min": low.astype(np.float32),
            "max": np.where(constant, low + 1.0, high).astype(np.float32),
        }
