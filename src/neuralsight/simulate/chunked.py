"""Simulations larger than memory: stimuli and responses made chunk by chunk, straight to a file.

`simulate_to_file` draws stimuli from a named source (`neuralsight.data.sources`), passes
them through the retina or the cortex simulator and writes the dataset with
`NeuralDataset.create`, one chunk of stimuli at a time, so only a few chunks are ever in
memory however large the file. Chunks are made by a pool of worker processes (``workers``;
forked where the platform can, as PyTorch's DataLoader does, else spawned, which needs the
usual ``if __name__ == "__main__":`` guard in a calling script) and written in order by the
calling process, with a progress bar on stderr.

Determinism
    The noiseless part of a response (retina rates, cortical drive) is computed per
    *block* of `BLOCK` consecutive stimuli of one split, aligned (block ``k`` holds stimuli
    ``BLOCK * k`` to ``BLOCK * (k + 1) - 1`` of its split), with one BLAS and one torch
    thread, wherever it runs; a chunk that starts or ends inside a block computes the whole
    block and keeps its own rows. Everything random is drawn in one order: natural-image
    crops as the blocks are cut, retina spikes by the writing process in stimulus order
    from one generator per split (the streams `simulate_retina` uses), cortical noise per
    stimulus from its index. So with one seed the file holds bitwise the same arrays for
    every ``chunk`` and ``workers``. Its stimuli are bitwise those of `make_stimuli`; its
    responses are those of `simulate_retina` / `simulate_cortex` on the same images up to
    float rounding of the rates or the drive, which those compute in other batch shapes
    and thread counts (about 1e-5 Hz), so a rare spike count can differ.

Memory
    At most ``2 * workers`` chunks are in flight. The default chunk, per split, is
    `CHUNK_STIMULI` stimuli, fewer where their stimuli and trials would pass `CHUNK_BYTES`
    (a cortical time course is 1.2 MB per trial): a multiple of `BLOCK` where one fits,
    else as many stimuli as fit, at least one. A file of 1.5 GB was written under a
    memory cap of 300 MB above the imports (tests/test_simulate_chunked.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from threadpoolctl import threadpool_limits

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.sources import StimulusBlock, stimulus_blocks
from neuralsight.simulate.cortex import CortexSimulator
from neuralsight.simulate.retina import (
    PRESETS,
    RetinaSimulator,
    retina_meta,
    split_spike_seeds,
)

BLOCK = 32
"""Stimuli per block, the unit of the noiseless computation (see the module docstring)."""

CHUNK_STIMULI = 256
CHUNK_BYTES = 16 * 2**20
SIMULATORS = ("retina", "cortex")
SPLITS = ("train", "test")

SimulatorName = Literal["retina", "cortex"]
Simulator = RetinaSimulator | CortexSimulator


@dataclass(frozen=True)
class SimulatorRecipe:
    """How to build a simulator and what it computes for a chunk.

    Parameters
    ----------
    name
        ``"retina"`` or ``"cortex"``.
    size
        Image side in pixels.
    seed
        Simulator seed (mosaic or layout, filters, and the noise of every trial).
    repeats
        Trials per stimulus of each split, ``{"train": r, "test": r}``.
    preset, n_cells
        Retina only: a key of `neuralsight.simulate.retina.PRESETS`, number of cells.
    """

    name: SimulatorName
    size: int
    seed: int
    repeats: dict[str, int]
    preset: str = "realistic"
    n_cells: int = 300

    def build(self) -> Simulator:
        """The simulator (the same recipe always builds the same simulator)."""
        if self.name == "retina":
            return RetinaSimulator(
                self.size, n_cells=self.n_cells, seed=self.seed, **PRESETS[self.preset]
            )
        return CortexSimulator(image_size=self.size, seed=self.seed)

    def noiseless(self, simulator: Simulator, images: np.ndarray) -> np.ndarray:
        """Rates (retina) or drive (cortex) of one block, ``[k, n_units]``."""
        if isinstance(simulator, RetinaSimulator):
            return simulator.rates(images)
        return simulator.drive(images)

    def in_worker(
        self, simulator: Simulator, noiseless: np.ndarray, split: str, first: int
    ) -> np.ndarray:
        """What a worker sends back: the retina's rates as they are (spikes are drawn in
        order by the writer), the cortex's trials, noise seeded by the global stimulus
        index ``first + i``."""
        if isinstance(simulator, RetinaSimulator):
            return noiseless
        return simulator.trials(noiseless, first, self.repeats[split], seed=self.seed)


@dataclass(frozen=True)
class _Task:
    """One chunk: stimuli ``start`` to ``stop - 1`` of ``split``, whose first stimulus is
    row ``offset`` of the file; ``blocks`` are the aligned blocks covering them."""

    split: str
    offset: int
    start: int
    stop: int
    blocks: tuple[StimulusBlock, ...]


_WORKER: dict[str, Any] = {}


def _start_worker(recipe: SimulatorRecipe, simulator: Simulator) -> None:
    """Pool initialiser: one BLAS and one torch thread per worker process."""
    _WORKER["limits"] = threadpool_limits(1)
    torch.set_num_threads(1)
    _WORKER["recipe"], _WORKER["simulator"], _WORKER["cache"] = recipe, simulator, {}


def _run_in_worker(task: _Task) -> tuple[np.ndarray, np.ndarray]:
    return _simulate_chunk(_WORKER["recipe"], _WORKER["simulator"], task, _WORKER["cache"])


def _simulate_chunk(
    recipe: SimulatorRecipe, simulator: Simulator, task: _Task, cache: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The stimuli of one chunk and the worker's part of their responses.

    ``cache`` keeps the last two blocks' images and noiseless values, for the next chunk
    when chunks are smaller than blocks.
    """
    stimuli, noiseless = [], []
    for block in task.blocks:
        key = (task.split, block.start)
        if key not in cache:
            images = block.render()
            cache[key] = (images, recipe.noiseless(simulator, images))
            while len(cache) > 2:
                del cache[next(iter(cache))]
        stimuli.append(cache[key][0])
        noiseless.append(cache[key][1])
    rows = slice(task.start - task.blocks[0].start, task.stop - task.blocks[0].start)
    kept = np.concatenate(noiseless)[rows]
    first = task.offset + task.start
    return np.concatenate(stimuli)[rows], recipe.in_worker(simulator, kept, task.split, first)


@contextmanager
def _one_thread() -> Iterator[None]:
    """One BLAS and one torch thread inside the block, as in the worker processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def chunk_size(chunk: int | None, bytes_per_stimulus: int) -> int:
    """Stimuli per chunk: ``chunk`` itself, or the default for this many bytes per stimulus.

    The default is `CHUNK_STIMULI`, fewer where that many would pass `CHUNK_BYTES`: a
    multiple of `BLOCK` where at least one block fits, else as many stimuli as fit (at
    least one).

    Examples
    --------
    >>> chunk_size(100, 1000), chunk_size(None, 17_000), chunk_size(None, 400_000)
    (100, 256, 32)
    >>> chunk_size(None, 1_200_000), chunk_size(None, 35_000_000)
    (13, 1)
    """
    if chunk is None:
        fitting = min(CHUNK_STIMULI, CHUNK_BYTES // max(bytes_per_stimulus, 1))
        return fitting // BLOCK * BLOCK if fitting >= BLOCK else max(1, fitting)
    if not (isinstance(chunk, int | np.integer) and chunk >= 1):
        raise ValueError(f"parameter 'chunk' must be a positive integer, found {chunk!r}")
    return int(chunk)


def _tasks(
    source: dict[str, Any], counts: dict[str, int], chunks: dict[str, int]
) -> Iterator[_Task]:
    """The chunks of both splits in file order, cut lazily (natural crops drawn in order)."""
    offset = 0
    for split in SPLITS:
        blocks = stimulus_blocks(n=counts[split], block=BLOCK, split=split, **source)
        held: list[StimulusBlock] = []
        for start in range(0, counts[split], chunks[split]):
            stop = min(start + chunks[split], counts[split])
            held = [block for block in held if block.start + block.count > start]
            while not held or held[-1].start + held[-1].count < stop:
                held.append(next(blocks))
            yield _Task(split, offset, start, stop, tuple(held))
        offset += counts[split]


def _trial_layout(counts: dict[str, int], repeats: dict[str, int]) -> dict[str, np.ndarray]:
    """``stimulus_id`` and ``split`` of every trial: train then test, stimulus-major."""
    stimulus_id = np.concatenate(
        [
            np.repeat(np.arange(counts["train"]), repeats["train"]),
            counts["train"] + np.repeat(np.arange(counts["test"]), repeats["test"]),
        ]
    )
    split = np.repeat(list(SPLITS), [counts[s] * repeats[s] for s in SPLITS])
    return {"stimulus_id": stimulus_id, "split": split}


def _file_fields(recipe: SimulatorRecipe, simulator: Simulator) -> dict[str, Any]:
    """Units, bin edges, provenance and trials per HDF5 chunk of the file."""
    repeats = recipe.repeats
    if isinstance(simulator, RetinaSimulator):
        meta = retina_meta(simulator, recipe.preset, recipe.seed, repeats["train"], repeats["test"])
        return {
            "units": simulator.units,
            "bin_edges_ms": simulator.bin_edges_ms,
            "meta": meta,
            "chunk_trials": 256,
        }
    meta = simulator.meta() | {
        "noise_seed": recipe.seed,
        "repeats_train": repeats["train"],
        "repeats_test": repeats["test"],
    }
    bytes_per_trial = simulator.n_units * simulator.n_bins * 4
    return {
        "units": simulator.units,
        "bin_edges_ms": simulator.bin_edges_ms(),
        "meta": meta,
        "chunk_trials": max(1, min(4096, 2**21 // bytes_per_trial)),
    }


def _check_counts(counts: dict[str, int], repeats: dict[str, int]) -> None:
    for split in SPLITS:
        for name, value in ((f"n_{split}", counts[split]), (f"repeats_{split}", repeats[split])):
            if not (isinstance(value, int | np.integer) and value >= 1):
                raise ValueError(f"parameter '{name}' must be an integer >= 1, found {value!r}")


def simulate_to_file(
    path: str | os.PathLike,
    simulator: SimulatorName = "retina",
    source: str = "natural",
    n_train: int = 2000,
    n_test: int = 200,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    repeats_train: int = 1,
    repeats_test: int = 1,
    preset: str = "realistic",
    n_cells: int = 300,
    root: str | None = None,
    download: bool = False,
    chunk: int | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Simulate a recording of stimuli from a named source, written chunk by chunk.

    Parameters
    ----------
    path
        The dataset file to write (``.h5``); it appears only once complete.
    simulator
        ``"retina"`` (`RetinaSimulator`) or ``"cortex"`` (`CortexSimulator`, TVSD layout).
    source, n_train, n_test, size, channels, seed, root, download
        The stimuli, as in `neuralsight.data.sources.make_stimuli`; ``seed`` also seeds
        the simulator and its spikes or noise.
    repeats_train, repeats_test
        Trials per train and test stimulus.
    preset, n_cells
        Retina only: a key of `neuralsight.simulate.retina.PRESETS`, number of cells.
    chunk
        Stimuli per chunk; ``None``: see the module docstring (chosen per split, as the
        splits' repeats differ). It changes memory and speed, never the file.
    workers
        Worker processes making chunks; 0 or 1 (or a single chunk) works in this process.
        It changes speed, never the file.
    progress
        Show a progress bar (rich, on stderr).

    Returns
    -------
    Path
        The file, laid out as `simulate_retina` / `simulate_cortex` lay out theirs (train
        then test trials, stimulus-major, repeats adjacent), ``meta["source"]`` added.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "retina.h5"
    >>> ds = NeuralDataset.open(simulate_to_file(out, source="digits", n_train=40, n_test=8,
    ...                                          size=16, n_cells=12, progress=False))
    >>> ds.n_trials, ds.n_units, ds.image_shape, int((ds.split == "test").sum())
    (48, 12, (1, 16, 16), 8)
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"parameter 'simulator' must be one of {SIMULATORS}, found {simulator!r}")
    if preset not in PRESETS:
        raise ValueError(f"parameter 'preset' must be one of {sorted(PRESETS)}, found {preset!r}")
    counts = {"train": n_train, "test": n_test}
    repeats = {"train": repeats_train, "test": repeats_test}
    _check_counts(counts, repeats)
    recipe = SimulatorRecipe(simulator, int(size), int(seed), repeats, preset, int(n_cells))
    built = recipe.build()
    fields = _file_fields(recipe, built)
    fields["meta"]["source"] = source
    n_units, n_bins = len(fields["units"]), len(fields["bin_edges_ms"]) - 1
    chunks = {
        s: chunk_size(chunk, 4 * (channels * size * size + n_units * n_bins * repeats[s]))
        for s in SPLITS
    }
    stimuli = {"name": source, "size": size, "channels": channels, "seed": seed}
    tasks = _tasks({**stimuli, "root": root, "download": download}, counts, chunks)
    n_chunks = sum(-(-counts[s] // chunks[s]) for s in SPLITS)
    spikes = dict(zip(SPLITS, map(np.random.default_rng, split_spike_seeds(seed)), strict=True))
    first_trial = {"train": 0, "test": counts["train"] * repeats["train"]}
    results = track(
        _results(recipe, built, tasks, min(workers, n_chunks)),
        description=f"simulating {simulator}",
        total=n_chunks,
        disable=not progress,
        transient=True,
        console=Console(stderr=True),
    )
    with NeuralDataset.create(
        path,
        sum(counts[s] * repeats[s] for s in SPLITS),
        n_units,
        n_bins,
        sum(counts.values()),
        (channels, size, size),
        **_trial_layout(counts, repeats),
        **fields,
    ) as writer:
        for task, (images, values) in results:
            if isinstance(built, RetinaSimulator):
                values = built.sample_counts(values, repeats[task.split], spikes[task.split])
            writer.write_stimuli(task.offset + task.start, images)
            writer.write_responses(
                first_trial[task.split] + task.start * repeats[task.split], values
            )
    return Path(path)


def _results(
    recipe: SimulatorRecipe, simulator: Simulator, tasks: Iterator[_Task], workers: int
) -> Iterator[tuple[_Task, tuple[np.ndarray, np.ndarray]]]:
    """Each task with its stimuli and values, in task order; ``2 * workers`` in flight."""
    if workers <= 1:
        cache: dict = {}
        for task in tasks:
            with _one_thread():
                result = _simulate_chunk(recipe, simulator, task, cache)
            yield task, result
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(
        workers, context, initializer=_start_worker, initargs=(recipe, simulator)
    )
    pending: deque[tuple[_Task, Future]] = deque()
    try:
        for task in tasks:
            pending.append((task, pool.submit(_run_in_worker, task)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
