"""Loader speed: the DataModule's train loader from an HDF5 file against the same data in memory.

A dataset file of a realistic shape (by default 20,000 trials x 1,000 units x 1 bin of
Poisson counts, 64 x 64 grey stimuli, one trial per stimulus, written by
`NeuralDataset.create` with the library's defaults: LZF, 256 trials and 16 stimuli per chunk)
is read through `NeuralDataModule.train_dataloader` in batches of 256, every sample touched:

- ``memory``: the file read into memory first (``in_memory=True``), no worker processes;
- ``hdf5_<order>_w<k>``: the file opened lazily, ``k`` DataLoader worker processes, items
  in plain random order (``random``) or chunk by chunk (``chunks``, `ChunkShuffleSampler`);
- ``hdf5_raw_chunks_w<k>``: the same data in a file written without compression, chunk by
  chunk: what the lazy path costs when decompression is taken out.

Each configuration runs ``--warmups`` untimed epochs (worker start-up, page cache), then
``--epochs`` timed ones; its figure is the median of samples/s over the timed epochs. The
files are written just before, so reads come from the page cache, not the disk.

The stimuli are smooth random images quantised to 8 bits (as decoded photographs are): they
compress, so the lazy path pays for decompression as it would on real data.

"Keeps a GPU busy" compares each loader with a stated GPU consumption rate: the training
FLOPs per sample of the improved SID for this shape (counted by
``torch.utils.flop_counter``, forward and backward) divided by an assumed sustained GPU
throughput, ``--gpu-tflops`` (default 100 TFLOP/s: an H100 under bf16 autocast at about a
tenth of its dense peak, plausible for a small U-Net; not measured here). A loader keeps it
busy when its samples/s reach that rate.

Run it with ``python benchmarks/loader_speed.py [--trials 20000] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from machine import count_flops, describe_machine, print_document
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.models.decoders import ImprovedSID


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def smooth_images(
    rng: np.random.Generator, n: int, channels: int, size: int, coarse: int = 8
) -> np.ndarray:
    """Random smooth images ``[n, channels, size, size]``, quantised to 1/255 steps.

    Examples
    --------
    >>> x = smooth_images(np.random.default_rng(0), 2, 1, 16)
    >>> x.shape, bool(x.min() >= 0 and x.max() <= 1), bool(np.all((x * 255) % 1 < 1e-3))
    ((2, 1, 16, 16), True, True)
    """
    low = torch.from_numpy(rng.random((n, channels, coarse, coarse), dtype=np.float32))
    images = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    images = images + 0.03 * torch.from_numpy(rng.standard_normal(images.shape, np.float32))
    return (torch.round(images.clamp(0, 1) * 255) / 255).numpy()


def make_file(
    path: Path,
    n_trials: int,
    n_units: int,
    n_bins: int,
    channels: int,
    size: int,
    compression: str | None = "lzf",
    seed: int = 0,
    block: int = 1000,
) -> Path:
    """Write a dataset of Poisson counts and smooth images, block by block.

    Examples
    --------
    >>> path = make_file(Path(tempfile.mkdtemp()) / "toy.h5", 30, 5, 2, 1, 16)
    >>> NeuralDataset.open(path).responses.shape
    (30, 5, 2)
    """
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 2.0, size=(1, n_units, n_bins))
    n_test = n_trials // 10
    split = np.where(np.arange(n_trials) >= n_trials - n_test, "test", "train")
    shape = (channels, size, size)
    with NeuralDataset.create(
        path, n_trials, n_units, n_bins, n_trials, shape, split=split, compression=compression
    ) as w:
        for start in range(0, n_trials, block):
            k = min(block, n_trials - start)
            w.write_responses(start, rng.poisson(rates, (k, n_units, n_bins)).astype(np.float32))
            w.write_stimuli(start, smooth_images(rng, k, channels, size))
    return path


def epoch_rates(loader: torch.utils.data.DataLoader, epochs: int, warmups: int) -> list[float]:
    """Samples per second of each timed pass over ``loader`` (after ``warmups`` untimed ones).

    Examples
    --------
    >>> loader = torch.utils.data.DataLoader(torch.zeros(10, 2), batch_size=5)
    >>> len(epoch_rates(loader, epochs=2, warmups=1))
    2
    """
    rates = []
    for epoch in range(warmups + epochs):
        start, count = time.perf_counter(), 0
        for responses, *_ in loader:
            count += len(responses)
        if epoch >= warmups:
            rates.append(count / (time.perf_counter() - start))
    return rates


def gpu_rate(n_inputs: int, image_shape: tuple[int, int, int], tflops: float) -> dict:
    """The stated GPU consumption rate: improved-SID training FLOPs per sample over ``tflops``.

    Examples
    --------
    >>> rate = gpu_rate(10, (1, 16, 16), tflops=1.0)
    >>> rate["samples_per_s"] == 1e12 / rate["flop_per_sample"]
    True
    """
    model = ImprovedSID(n_inputs, image_shape)
    batch = 4
    responses, images = torch.rand(batch, n_inputs, 1), torch.rand(batch, *image_shape)
    flop = count_flops(lambda: F.mse_loss(model(responses), images).backward()) / batch
    return {
        "model": "ImprovedSID (defaults: U-Net base 32, depth 3)",
        "flop_per_sample": flop,
        "assumed_sustained_tflops": tflops,
        "samples_per_s": tflops * 1e12 / flop,
        "basis": "assumed, not measured: training FLOPs (forward + backward, "
        "torch.utils.flop_counter) / an assumed sustained GPU throughput",
    }


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it.

    Examples
    --------
    >>> doc = main(["--trials", "300", "--units", "20", "--size", "16", "--epochs", "1",
    ...             "--warmups", "0", "--workers", "0"])  # doctest: +ELLIPSIS
    {...}
    >>> sorted(doc["loaders"])
    ['hdf5_chunks_w0', 'hdf5_random_w0', 'hdf5_raw_chunks_w0', 'memory']
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--bins", type=int, default=1)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loader")
    parser.add_argument("--warmups", type=int, default=1, help="untimed epochs before them")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--gpu-tflops", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--path",
        default=None,
        help="write the LZF file here and keep it, the uncompressed one beside it as "
        "<stem>_raw.h5 (default: temporary files)",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("need at least one timed epoch")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.path or Path(tmp) / "loader_speed.h5")
        raw = path.with_name(f"{path.stem}_raw.h5")
        _log(f"writing {path} and {raw}")
        for target, compression in ((path, "lzf"), (raw, None)):
            make_file(
                target, args.trials, args.units, args.bins, args.channels, args.size, compression
            )
        stored = NeuralDataset.open(path)
        raw_bytes = 4 * (stored.responses.size + stored.stimuli.size)
        chunks = {"responses": stored.responses.chunks, "stimuli": stored.stimuli.chunks}
        configs = {"memory": (path, {"in_memory": True})}
        for label, order, source in (
            ("hdf5_random", "random", path),
            ("hdf5_chunks", "chunks", path),
            ("hdf5_raw_chunks", "chunks", raw),
        ):
            for workers in args.workers:
                lazy = {"in_memory": False, "shuffle": order, "num_workers": workers}
                configs[f"{label}_w{workers}"] = (source, lazy)
        loaders = {}
        for name, (source, kwargs) in configs.items():
            _log(f"timing {name}")
            dm = NeuralDataModule(path=str(source), batch_size=args.batch_size, **kwargs)
            rates = epoch_rates(dm.train_dataloader(), args.epochs, args.warmups)
            loaders[name] = {"samples_per_s": float(np.median(rates)), "epochs": rates}
        file_bytes = {"lzf": path.stat().st_size, "none": raw.stat().st_size}
    gpu = gpu_rate(args.units * args.bins, (args.channels, args.size, args.size), args.gpu_tflops)
    memory_rate = loaders["memory"]["samples_per_s"]
    doc = {
        "benchmark": "loader_speed",
        "machine": describe_machine(load_before),
        "settings": {
            "n_trials": args.trials,
            "train_items": len(dm.train_set),
            "n_units": args.units,
            "n_bins": args.bins,
            "image_shape": [args.channels, args.size, args.size],
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "warmups": args.warmups,
            "statistic": "median over timed epochs of samples/s",
            "page_cache": "warm (file written just before)",
        },
        "file": {
            "bytes_by_compression": file_bytes,
            "uncompressed_bytes": int(raw_bytes),
            "chunks": chunks,
        },
        "loaders": loaders,
        "over_memory": {
            name: result["samples_per_s"] / memory_rate for name, result in loaders.items()
        },
        "gpu": gpu,
        "over_gpu_rate": {
            name: result["samples_per_s"] / gpu["samples_per_s"] for name, result in loaders.items()
        },
        "keeps_gpu_busy": {
            name: result["samples_per_s"] >= gpu["samples_per_s"]
            for name, result in loaders.items()
        },
        "wall_s": time.perf_counter() - start,
    }
    return print_document(doc)


if __name__ == "__main__":
    main()
