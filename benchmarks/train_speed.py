"""Training speed: samples per second of SID, the improved SID and the MonkeySee GAN.

Each model trains through a Lightning ``Trainer`` (the library's only training loop) on
random in-memory data of a realistic shape: 300 retinal cells for SID and the improved
SID, 960 electrodes in 15 Utah arrays of V1, V4 and IT (one window, known receptive
fields, the ``"spatial"`` mapping) for MonkeySee, whose every batch is one discriminator
and one generator step (PatchGAN + VGG19 feature loss + L1, the paper's weights; VGG19
with random weights, so nothing is downloaded). A callback stamps the end of every batch
(after a CUDA synchronisation on a GPU): the first ``--warmups`` batches are untimed,
then ``--repeats`` windows of ``--steps`` batches each are timed; a window's throughput is
its samples over its time, and the figure is the median over windows.

Every model trains once per ``--precisions`` entry (Lightning precision strings:
``32-true``, ``bf16-mixed``, ``16-mixed`` on CUDA), and once more compiled
(``torch.compile``, first precision) with ``--compile``; ratios to the first precision come
from the same run. A variant that fails (a precision the device lacks, a compiler error)
is recorded with its error instead of stopping the benchmark.

MonkeySee's VGG19 sees images at ``--vgg-input-size`` (default: the image size; the
paper resizes to 224, which on a CPU is about 12 times the work per sample at 64 x 64).

It prints one JSON document: the machine (processor, device, threads, torch version,
load average before and after), the settings and, per model and variant, the median
samples/s, every window's samples/s and the median milliseconds per batch.

Run it with ``python benchmarks/train_speed.py``; ``--device cuda --precisions 32-true
bf16-mixed --compile --batch-size 64`` on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
import warnings
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch

from machine import describe_machine, print_document
from neuralsight.data import NeuralDataModule
from workloads import DECODERS, build_decoder, make_data, n_inputs


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BatchClock(L.Callback):
    """Stamps the end of every training batch (after a CUDA synchronisation on a GPU)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.stamps.append(time.perf_counter())


def window_rates(stamps: Sequence[float], warmups: int, steps: int, batch_size: int) -> list[float]:
    """Samples/s of each window of ``steps`` batches after the first ``warmups`` batches.

    Examples
    --------
    >>> window_rates([0.0, 1.0, 2.0, 4.0, 6.0], warmups=1, steps=2, batch_size=10)
    [10.0, 5.0]
    """
    edges = stamps[warmups - 1 :: steps]
    return [steps * batch_size / (b - a) for a, b in itertools.pairwise(edges)]


def make_trainer(device: str, precision: str, n_batches: int, clock: BatchClock) -> L.Trainer:
    """A Trainer for ``n_batches`` training batches and nothing else (no validation, no logs)."""
    return L.Trainer(
        accelerator=torch.device(device).type,
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=n_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )


def time_training(model: str, precision: str, compiled: bool, args: argparse.Namespace) -> dict:
    """Train one model variant for warm-ups and timed windows; its throughput or its error."""
    n_batches = args.warmups + args.repeats * args.steps
    data = make_data(model, int(n_batches * args.batch_size / 0.9) + 1, args.channels, args.size)
    datamodule = NeuralDataModule(dataset=data, batch_size=args.batch_size, val_fraction=0.1)
    torch.manual_seed(0)
    module = build_decoder(model, data.image_shape, vgg_input_size=args.vgg_input_size)
    clock = BatchClock()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            trainer = make_trainer(args.device, precision, n_batches, clock)
            trainer.fit(torch.compile(module) if compiled else module, datamodule)
    except Exception as error:  # a variant the device or compiler cannot run is a result
        return {"error": f"{type(error).__name__}: {error}"[:500]}
    rates = window_rates(clock.stamps, args.warmups, args.steps, args.batch_size)
    return {
        "samples_per_s": float(np.median(rates)),
        "step_ms_median": 1e3 * args.batch_size / float(np.median(rates)),
        "windows_samples_per_s": rates,
        "precision_used": str(trainer.precision),
        "fit_s": time.perf_counter() - start,
    }


def benchmark_model(model: str, args: argparse.Namespace) -> dict:
    """Every variant of one model, and each one's ratio to the first precision."""
    variants = {p: (p, False) for p in args.precisions}
    if args.compile:
        variants[f"compiled_{args.precisions[0]}"] = (args.precisions[0], True)
    results = {}
    for name, (precision, compiled) in variants.items():
        _log(f"training {model} ({name})")
        results[name] = time_training(model, precision, compiled, args)
    base = results[args.precisions[0]].get("samples_per_s")
    ratios = {
        f"{name}_over_{args.precisions[0]}": result["samples_per_s"] / base
        for name, result in results.items()
        if name != args.precisions[0] and base and "samples_per_s" in result
    }
    return {"variants": results, "ratios": ratios}


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=DECODERS, default=list(DECODERS))
    parser.add_argument("--size", type=int, default=64, help="image side (MonkeySee: x32)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="batches per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows")
    parser.add_argument("--warmups", type=int, default=2, help="untimed batches first")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precisions", nargs="+", default=["32-true"])
    parser.add_argument("--compile", action="store_true", help="also time a compiled model")
    parser.add_argument("--vgg-input-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.warmups < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("need warmups, steps and repeats >= 1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    start = time.perf_counter()
    models = {model: benchmark_model(model, args) for model in args.models}
    doc = {
        "benchmark": "train_speed",
        "machine": describe_machine(load_before, args.device),
        "settings": {
            "image_shape": [args.channels, args.size, args.size],
            "batch_size": args.batch_size,
            "steps_per_window": args.steps,
            "windows": args.repeats,
            "warmup_batches": args.warmups,
            "precisions": args.precisions,
            "compile": args.compile,
            "n_inputs": {model: n_inputs(model) for model in args.models},
            "monkeysee": "spatial mapping, D + G step per batch, VGG19 random weights, "
            f"VGG input {args.vgg_input_size or args.size} px",
            "weights": "random",
            "statistic": "median over windows of samples/s",
        },
        "models": models,
        "wall_s": time.perf_counter() - start,
    }
    return print_document(doc)


if __name__ == "__main__":
    main()
