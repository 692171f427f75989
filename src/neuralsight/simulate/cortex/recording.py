"""`simulate_cortex`: a TVSD-like V1/V4/IT recording, in memory or streamed to a file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.simulate.base import trial_layout
from neuralsight.simulate.cortex.parameters import as_image_array, check_positive_int
from neuralsight.simulate.cortex.simulator import CortexSimulator

if TYPE_CHECKING:
    from rich.progress import Progress


def simulate_cortex(
    train_images: np.ndarray,
    test_images: np.ndarray | None = None,
    repeats_train: int = 1,
    repeats_test: int = 1,
    seed: int = 0,
    noise_seed: int | None = None,
    path: str | os.PathLike | None = None,
    chunk_trials: int | None = None,
    progress: bool = True,
    **simulator_kwargs: Any,
) -> NeuralDataset:
    """Simulate a TVSD-like V1/V4/IT recording of train and test images as a `NeuralDataset`.

    Parameters
    ----------
    train_images, test_images
        ``[N, 1 or 3, H, W]`` in [0, 1]; test images may be ``None``.
    repeats_train, repeats_test
        Independent trials per image (TVSD: 1 per train image, 30 per test image).
    seed
        Simulator seed (layout, receptive fields, filters).
    noise_seed
        Seed of the trial noise; ``None`` uses ``seed``.
    path
        Where to write the dataset (HDF5). Given, trials are simulated chunk by chunk while
        the file is written, so the responses never need to fit in memory, and the returned
        dataset is opened lazily from the file. ``None``: simulate in memory.
    chunk_trials
        Trials per HDF5 chunk when writing (``None``: chunks of about 2 MB, one trial at
        1 ms resolution, for fast random access); trials are simulated 16 chunks at a time.
    progress
        Show a progress bar while writing to ``path``.
    **simulator_kwargs
        Passed to `CortexSimulator` (``image_size`` defaults to the images' size).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train, test = rng.random((4, 3, 32, 32)), rng.random((2, 3, 32, 32))
    >>> ds = simulate_cortex(train, test, repeats_test=3, arrays={"V1": 1}, electrodes_per_array=4)
    >>> ds.n_trials, ds.n_units, ds.n_bins, ds.split.tolist().count("test")
    (10, 4, 301, 6)
    """
    train = as_image_array("train_images", train_images)
    test = as_image_array("test_images", test_images, like=train)
    simulator_kwargs.setdefault("image_size", train.shape[-1])
    simulator = CortexSimulator(seed=seed, **simulator_kwargs)
    stimuli = simulator.check_images(np.concatenate([train, test]))
    counts = {"train": len(train), "test": len(test)}
    repeats = {
        "train": check_positive_int("repeats_train", repeats_train),
        "test": check_positive_int("repeats_test", repeats_test),
    }
    meta = simulator.meta(repeats)
    meta["noise_seed"] = seed if noise_seed is None else int(noise_seed)
    per_stimulus = np.repeat([repeats["train"], repeats["test"]], [counts["train"], counts["test"]])
    trials = _SimulatedTrials(simulator, stimuli, per_stimulus, meta["noise_seed"])
    stimulus_id, split = trial_layout(counts, repeats)
    dataset = NeuralDataset(
        responses=trials if path is not None else trials[:],
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        split=split,
        units=simulator.units,
        bin_edges_ms=simulator.bin_edges_ms,
        meta=meta,
    )
    if path is None:
        return dataset
    if chunk_trials is None:
        chunk_trials = simulator.chunk_trials
    if progress:
        trials.show_progress()
    try:
        written = dataset.save(path, chunk_trials=check_positive_int("chunk_trials", chunk_trials))
    finally:
        trials.close_progress()
    return NeuralDataset.open(written)


class _SimulatedTrials:
    """Array-like ``[n_trials, n_units, n_bins]`` whose trial slices are simulated on access.

    Lets `NeuralDataset.save` stream a simulation to disk block by block; trial ``t`` is the
    same whichever block it falls in, because the noise is seeded per stimulus.
    """

    def __init__(
        self, simulator: CortexSimulator, stimuli: np.ndarray, repeats: np.ndarray, seed: int
    ) -> None:
        self.simulator, self.stimuli, self.repeats, self.seed = simulator, stimuli, repeats, seed
        self.first_trial = np.concatenate([[0], np.cumsum(repeats)])
        self.shape = (int(self.first_trial[-1]), simulator.n_units, simulator.n_bins)
        self.dtype = np.dtype(np.float32)
        self._progress: Progress | None = None
        self._last: tuple[int, np.ndarray] | None = None

    def show_progress(self) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._progress.start()
        self._task = self._progress.add_task("simulating cortex", total=self.shape[0])

    def close_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"simulated trials are read by contiguous slices, found {key!r}")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        out = np.empty((stop - start, *self.shape[1:]), np.float32)
        if stop == start:
            return out
        first = int(np.searchsorted(self.first_trial, start, side="right") - 1)
        last = int(np.searchsorted(self.first_trial, stop, side="left"))
        drive = self.simulator.rates(self.stimuli[first:last])
        filled = 0
        for offset, stimulus in enumerate(range(first, last)):
            block = self._stimulus_trials(stimulus, drive[offset : offset + 1])
            lo = max(start, self.first_trial[stimulus]) - self.first_trial[stimulus]
            hi = min(stop, self.first_trial[stimulus + 1]) - self.first_trial[stimulus]
            out[filled : filled + hi - lo] = block[lo:hi]
            filled += hi - lo
        if self._progress is not None:
            self._progress.advance(self._task, stop - start)
        return out

    def _stimulus_trials(self, stimulus: int, drive: np.ndarray) -> np.ndarray:
        """All trials of one stimulus; the last one is kept, as blocks may split its trials."""
        if self._last is None or self._last[0] != stimulus:
            trials = self.simulator.trials(drive, stimulus, int(self.repeats[stimulus]), self.seed)
            self._last = (stimulus, trials)
        return self._last[1]
