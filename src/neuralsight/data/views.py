"""PyTorch views of a `NeuralDataset`: (responses, image) pairs for training and evaluation.

`PairDataset` yields ``(responses [n_units, n_bins], image [C, H, W])`` for a subset of trials,
optionally averaging the repeated trials of one stimulus, optionally pairing responses with
the wrong stimuli (the shuffle control). A dataset opened lazily from HDF5 is re-opened in
each worker process, so ``DataLoader(num_workers > 0)`` works and nothing larger than a batch
is held in memory.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.utils.data import Dataset

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.store import unreadable


class PairDataset(Dataset):
    """Pairs of (responses, stimulus image) for the trials in ``trial_index``.

    Parameters
    ----------
    dataset
        The `NeuralDataset` (in memory or lazily opened).
    trial_index
        Trials to expose, in order.
    average_repeats
        Average the responses of trials that share a stimulus; one item per stimulus.
    stimulus_permutation
        Optional permutation applied to the items' stimuli (the shuffle control): item *i*
        is paired with the stimulus of item ``stimulus_permutation[i]``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((3, 2), np.float32), np.zeros((3, 1, 4, 4), np.float32))
    >>> r, x = PairDataset(ds, np.arange(3))[0]
    >>> tuple(r.shape), tuple(x.shape)
    ((2, 1), (1, 4, 4))
    """

    def __init__(
        self,
        dataset: NeuralDataset,
        trial_index: np.ndarray,
        average_repeats: bool = False,
        stimulus_permutation: np.ndarray | None = None,
    ) -> None:
        trial_index = np.asarray(trial_index, dtype=np.int64)
        stimulus_id = dataset.stimulus_id[trial_index]
        if average_repeats:
            stimuli, inverse = np.unique(stimulus_id, return_inverse=True)
            self.groups = [trial_index[inverse == g] for g in range(len(stimuli))]
            self.stimulus_index = stimuli
        else:
            self.groups = [trial_index[i : i + 1] for i in range(len(trial_index))]
            self.stimulus_index = stimulus_id
        if stimulus_permutation is not None:
            self.stimulus_index = self.stimulus_index[np.asarray(stimulus_permutation)]
        self._dataset = dataset
        self._path = dataset.source if dataset.is_lazy else None

    def __len__(self) -> int:
        return len(self.groups)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._path is not None:
            state["_dataset"] = None
        return state

    @property
    def dataset(self) -> NeuralDataset:
        """The underlying dataset, reopened lazily in a worker process after pickling."""
        if self._dataset is None:
            self._dataset = NeuralDataset.open(self._path, lazy=True)
        return self._dataset

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Read a whole batch at once: one sorted read from disk per field."""
        index = np.asarray(items, dtype=np.int64)
        responses = self._read_responses(index)
        images = _read_rows(self.dataset.stimuli, self.stimulus_index[index])
        r = torch.from_numpy(responses)
        x = torch.from_numpy(images)
        return list(zip(r, x, strict=True))

    def _read_responses(self, items: np.ndarray) -> np.ndarray:
        groups = [self.groups[i] for i in items]
        if all(len(g) == 1 for g in groups):
            return _read_rows(self.dataset.responses, np.concatenate(groups))
        flat = np.concatenate(groups)
        rows = _read_rows(self.dataset.responses, flat)
        bounds = np.cumsum([0] + [len(g) for g in groups])
        return np.stack([rows[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])

    def responses_block(self, items: np.ndarray) -> np.ndarray:
        """Responses of ``items`` flattened to ``[len(items), n_units * n_bins]`` (float32)."""
        return self._read_responses(np.asarray(items)).reshape(len(items), -1)


def _read_rows(array, rows: np.ndarray) -> np.ndarray:
    """Read ``array[rows]`` in the given order.

    From an HDF5 dataset the distinct rows are read chunk by chunk, one slice per chunk
    (h5py's fancy indexing with a list of rows is ten times slower, measured).
    """
    if isinstance(array, np.ndarray) or len(rows) == 0:
        return np.ascontiguousarray(array[rows], dtype=np.float32)
    unique, inverse = np.unique(rows, return_inverse=True)
    per_chunk = array.chunks[0] if array.chunks else 1
    runs = np.split(unique, np.flatnonzero(np.diff(unique // per_chunk)) + 1)
    try:
        parts = [array[run[0] : run[-1] + 1][run - run[0]] for run in runs]
    except OSError as err:
        raise unreadable(array, err) from err
    return np.ascontiguousarray(np.concatenate(parts)[inverse], dtype=np.float32)
