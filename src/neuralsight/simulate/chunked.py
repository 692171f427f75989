"""Simulations larger than memory: stimuli and responses made chunk by chunk, straight to a file.

`simulate_to_file` draws stimuli from a named source (`neuralsight.data.sources`), passes
them through a registered simulator (`neuralsight.simulate.base.SIMULATORS`: the retina,
the cortex), using only the `Simulator` protocol, and writes the dataset with
`NeuralDataset.create`, one chunk of stimuli at a time, so only a few chunks are ever in
memory however large the file. Chunks are made by a pool of worker processes (``workers``;
forked where the platform can, as PyTorch's DataLoader does, else spawned, which needs the
usual ``if __name__ == "__main__":`` guard in a calling script) and written in order by the
calling process, with a progress bar on stderr. A worker ends itself when the calling
process dies, however it dies (tests/test_simulate_killed.py), and an interrupted run
removes its temporary file (one killed by SIGKILL leaves it to the next run to remove:
`neuralsight.files.remove_stale_siblings`).

Determinism
    The noiseless part of a response (retina rates, cortical drive) is computed per
    *block* of `BLOCK` consecutive stimuli of one split, aligned (block ``k`` holds stimuli
    ``BLOCK * k`` to ``BLOCK * (k + 1) - 1`` of its split), with one BLAS and one torch
    thread, wherever it runs; a chunk that starts or ends inside a block computes the whole
    block and keeps its own rows. Everything random is drawn in one order: natural-image
    crops as the blocks are cut, then the simulator's `TrialSampler` noise, where it
    belongs: per stimulus from its index in the worker (the cortex), or by the writing
    process in stimulus order from one generator per split (the retina's spikes, the
    streams `simulate_retina` uses). So with one seed the file holds bitwise the same arrays for
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
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from threadpoolctl import threadpool_limits

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.sources import StimulusBlock, stimulus_blocks
from neuralsight.files import raise_if_terminated
from neuralsight.simulate.base import (
    SIMULATORS,
    SPLITS,
    Simulator,
    TrialSampler,
    check_repeats,
    trial_layout,
)

BLOCK = 32
"""Stimuli per block, the unit of the noiseless computation (see the module docstring)."""

CHUNK_STIMULI = 256
CHUNK_BYTES = 16 * 2**20


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


def _exit_when_orphaned(parent: int, every_s: float = 0.5) -> None:
    """End this worker process once its parent is gone (killed, even by SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _start_worker(simulator: Simulator, sampler: TrialSampler) -> None:
    """Pool initialiser: one BLAS and one torch thread per worker process, and a watch
    that ends the worker when its parent dies (no orphans keep computing)."""
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    _WORKER["limits"] = threadpool_limits(1)
    torch.set_num_threads(1)
    _WORKER["simulator"], _WORKER["sampler"], _WORKER["cache"] = simulator, sampler, {}


def _run_in_worker(task: _Task) -> tuple[np.ndarray, np.ndarray]:
    return _simulate_chunk(_WORKER["simulator"], _WORKER["sampler"], task, _WORKER["cache"])


def _simulate_chunk(
    simulator: Simulator, sampler: TrialSampler, task: _Task, cache: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The stimuli of one chunk and their `TrialSampler.per_stimulus` values.

    ``cache`` keeps the last two blocks' images and rates, for the next chunk when chunks
    are smaller than blocks.
    """
    stimuli, rates = [], []
    for block in task.blocks:
        key = (task.split, block.start)
        if key not in cache:
            images = block.render()
            cache[key] = (images, simulator.rates(images))
            while len(cache) > 2:
                del cache[next(iter(cache))]
        stimuli.append(cache[key][0])
        rates.append(cache[key][1])
    rows = slice(task.start - task.blocks[0].start, task.stop - task.blocks[0].start)
    kept = np.concatenate(rates)[rows]
    first = task.offset + task.start
    return np.concatenate(stimuli)[rows], sampler.per_stimulus(kept, task.split, first)


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


def simulate_to_file(
    path: str | os.PathLike,
    simulator: str = "retina",
    source: str = "natural",
    n_train: int = 2000,
    n_test: int = 200,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    repeats_train: int = 1,
    repeats_test: int = 1,
    root: str | None = None,
    download: bool = False,
    chunk: int | None = None,
    workers: int = 2,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Simulate a recording of stimuli from a named source, written chunk by chunk.

    Parameters
    ----------
    path
        The dataset file to write (``.h5``); it appears only once complete.
    simulator
        A name in `SIMULATORS`: ``"retina"`` or ``"cortex"`` (TVSD layout).
    source, n_train, n_test, size, channels, seed, root, download
        The stimuli, as in `neuralsight.data.sources.make_stimuli`; ``seed`` also seeds
        the simulator and its spikes or noise.
    repeats_train, repeats_test
        Trials per train and test stimulus.
    chunk
        Stimuli per chunk; ``None``: see the module docstring (chosen per split, as the
        splits' repeats differ). It changes memory and speed, never the file.
    workers
        Worker processes making chunks; 0 or 1 (or a single chunk) works in this process.
        It changes speed, never the file.
    progress
        Show a progress bar (rich, on stderr).
    **options
        The simulator's own options: the retina's ``preset`` (a key of
        `neuralsight.simulate.retina.PRESETS`) and ``n_cells``, any `CortexSimulator`
        keyword argument.

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
    counts = {"train": n_train, "test": n_test}
    repeats = {"train": repeats_train, "test": repeats_test}
    check_repeats(n_train=n_train, repeats_train=repeats_train)
    check_repeats(n_test=n_test, repeats_test=repeats_test)
    built: Simulator = SIMULATORS.get(simulator)(int(size), seed=int(seed), **options)
    chunks = _chunk_sizes(chunk, channels * size * size, built, repeats)
    stimuli = {"name": source, "size": size, "channels": channels, "seed": seed}
    tasks = _tasks({**stimuli, "root": root, "download": download}, counts, chunks)
    sampler = built.sampler(repeats)
    n_chunks = sum(-(-counts[s] // chunks[s]) for s in SPLITS)
    results: Iterable[tuple[_Task, tuple[np.ndarray, np.ndarray]]]
    results = _results(built, sampler, tasks, min(workers, n_chunks))
    if progress:
        console = Console(stderr=True)
        results = track(
            results, f"simulating {simulator}", n_chunks, transient=True, console=console
        )
    meta = built.meta(repeats) | {"source": source}
    _write(path, built, sampler, results, counts, repeats, (channels, size, size), meta)
    return Path(path)


def _chunk_sizes(
    chunk: int | None, pixels: int, simulator: Simulator, repeats: dict[str, int]
) -> dict[str, int]:
    """Stimuli per chunk of each split (`chunk_size` of a stimulus and its trials' bytes)."""
    trial_values = simulator.n_units * simulator.n_bins
    return {s: chunk_size(chunk, 4 * (pixels + trial_values * repeats[s])) for s in SPLITS}


def _write(
    path: str | os.PathLike,
    simulator: Simulator,
    sampler: TrialSampler,
    results: Iterable[tuple[_Task, tuple[np.ndarray, np.ndarray]]],
    counts: dict[str, int],
    repeats: dict[str, int],
    image_shape: tuple[int, int, int],
    meta: dict[str, Any],
) -> None:
    """Write the chunks in file order, their trials drawn by `TrialSampler.in_order`."""
    first_trial = {"train": 0, "test": counts["train"] * repeats["train"]}
    stimulus_id, split = trial_layout(counts, repeats)
    with NeuralDataset.create(
        path,
        sum(counts[s] * repeats[s] for s in SPLITS),
        simulator.n_units,
        simulator.n_bins,
        sum(counts.values()),
        image_shape,
        stimulus_id=stimulus_id,
        split=split,
        units=simulator.units,
        bin_edges_ms=simulator.bin_edges_ms,
        meta=meta,
        chunk_trials=simulator.chunk_trials,
    ) as writer:
        for task, (images, values) in results:
            raise_if_terminated()
            writer.write_stimuli(task.offset + task.start, images)
            writer.write_responses(
                first_trial[task.split] + task.start * repeats[task.split],
                sampler.in_order(values, task.split),
            )


def _results(
    simulator: Simulator, sampler: TrialSampler, tasks: Iterator[_Task], workers: int
) -> Iterator[tuple[_Task, tuple[np.ndarray, np.ndarray]]]:
    """Each task with its stimuli and values, in task order; ``2 * workers`` in flight."""
    if workers <= 1:
        cache: dict = {}
        for task in tasks:
            with _one_thread():
                result = _simulate_chunk(simulator, sampler, task, cache)
            yield task, result
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(
        workers, context, initializer=_start_worker, initargs=(simulator, sampler)
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
