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

Beside each throughput stands the work it does: the first (untimed) batch is counted by
`torch.utils.flop_counter.FlopCounterMode` (forward and backward, every optimiser step of
the batch), so each variant reports ``gflops`` achieved next to ``peak_gflops``, this
machine's fp32 matmul peak measured at the start of the run (`machine.matmul_peak`), and
``fraction_of_peak``. For the models Lightning optimises automatically (SID, the improved
SID) a plain loop follows the fp32 run: the same module and the same optimiser, stepped by
hand (``zero_grad``, ``training_loss``, ``backward``, ``step``; no logging, and the
learning-rate schedule is not stepped) over batches of the same DataLoader, timed in the same windows; the ratio
``32-true_over_plain_loop`` is the Trainer's overhead (1: none).

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
import sys
import time
import warnings
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from machine import achieved, run_speed_benchmark
from neuralsight.data import NeuralDataModule
from neuralsight.train import make_trainer
from workloads import DECODERS, build_decoder, make_data, n_inputs


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BatchClock(L.Callback):
    """Stamps the end of every training batch (after a CUDA synchronisation on a GPU)."""

    def __init__(self, count_flops: bool = True) -> None:
        self.stamps: list[float] = []
        self.count_flops = count_flops
        self.first_batch_flops: int | None = None
        self._counter: FlopCounterMode | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Start counting FLOPs at the first batch."""
        if batch_idx == 0 and self.count_flops:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Stop the FLOP count after the first batch; stamp the time."""
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.first_batch_flops = int(self._counter.get_total_flops())
            self._counter = None
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


def speed_trainer(device: str, precision: str, n_batches: int, clock: BatchClock) -> L.Trainer:
    """The package's Trainer (`neuralsight.train.make_trainer`) for ``n_batches`` training
    batches and nothing else (no validation, no logs, no checkpoints, no progress bar)."""
    return make_trainer(
        max_epochs=1,
        progress=False,
        accelerator=torch.device(device).type,
        precision=precision,
        limit_train_batches=n_batches,
        limit_val_batches=0,
        callbacks=[clock],
    )


def windowed(rates: list[float], batch_size: int, flop_per_sample: float | None) -> dict:
    """The median of window ``rates`` (samples/s), the step time and the FLOPs per sample."""
    median = float(np.median(rates))
    timing = {
        "samples_per_s": median,
        "step_ms_median": 1e3 * batch_size / median,
        "windows_samples_per_s": rates,
    }
    return {**timing, "flop_per_sample": flop_per_sample}


def time_plain_loop(
    module: L.LightningModule, trainer: L.Trainer, datamodule: NeuralDataModule, args
) -> list[float]:
    """Window rates (samples/s) of a hand loop: ``module``'s loss, ``trainer``'s optimiser.

    A hand loop logs nothing, so ``module.log`` (which needs a running Trainer loop) is a
    no-op while it runs.
    """
    (optimizer,) = trainer.optimizers
    module.train()
    module.log = lambda *args, **kwargs: None
    stamps = []
    n_batches = args.warmups + args.repeats * args.steps
    try:
        for responses, images in itertools.islice(datamodule.train_dataloader(), n_batches):
            responses, images = responses.to(module.device), images.to(module.device)
            optimizer.zero_grad()
            module.training_loss(responses, images).backward()
            optimizer.step()
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)
            stamps.append(time.perf_counter())
    finally:
        del module.log
    return window_rates(stamps, args.warmups, args.steps, args.batch_size)


def time_training(
    model: str, precision: str, compiled: bool, args: argparse.Namespace, plain_loop: bool = False
) -> dict:
    """Train one model variant for warm-ups and timed windows; its throughput or its error.

    With ``plain_loop`` (and a model Lightning optimises automatically) the same module and
    optimiser are then stepped by hand over the same batches (`time_plain_loop`).
    """
    n_batches = args.warmups + args.repeats * args.steps
    data = make_data(model, int(n_batches * args.batch_size / 0.9) + 1, args.channels, args.size)
    datamodule = NeuralDataModule(dataset=data, batch_size=args.batch_size, val_fraction=0.1)
    torch.manual_seed(0)
    module = build_decoder(model, data.image_shape, vgg_input_size=args.vgg_input_size)
    clock = BatchClock(count_flops=not compiled)
    start = time.perf_counter()
    plain_rates = None
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            trainer = speed_trainer(args.device, precision, n_batches, clock)
            trainer.fit(torch.compile(module) if compiled else module, datamodule)
            fit_s = time.perf_counter() - start
            if plain_loop and module.automatic_optimization:
                plain_rates = time_plain_loop(module, trainer, datamodule, args)
    except Exception as error:  # a variant the device or compiler cannot run is a result
        return {"error": f"{type(error).__name__}: {error}"[:500]}
    rates = window_rates(clock.stamps, args.warmups, args.steps, args.batch_size)
    flops = clock.first_batch_flops
    flop_per_sample = flops / args.batch_size if flops is not None else None
    result = {
        **windowed(rates, args.batch_size, flop_per_sample),
        "precision_used": str(trainer.precision),
        "fit_s": fit_s,
    }
    if plain_rates is not None:
        result["plain_loop"] = windowed(plain_rates, args.batch_size, flop_per_sample)
    elif plain_loop:
        result["plain_loop"] = {"skipped": "manual optimisation (two optimisers): no hand loop"}
    return result


def with_achieved(result: dict, flop_per_sample: float | None, peak_gflops: float) -> dict:
    """``result`` with `achieved` GFLOP/s (at ``flop_per_sample``) beside the peak."""
    if "samples_per_s" not in result or flop_per_sample is None:
        return result
    speed = achieved(flop_per_sample, result["samples_per_s"], peak_gflops)
    return {**result, "flop_per_sample": flop_per_sample, **speed}


def benchmark_model(model: str, args: argparse.Namespace, peak_gflops: float) -> dict:
    """Every variant of one model, the plain loop, and each one's ratio to the first precision.

    Every variant and the plain loop report GFLOP/s at the FLOPs per sample counted in the
    first precision's run (a compiled model is not counted: the counter would interfere).
    """
    variants = {p: (p, False) for p in args.precisions}
    if args.compile:
        variants[f"compiled_{args.precisions[0]}"] = (args.precisions[0], True)
    results = {}
    for name, (precision, compiled) in variants.items():
        _log(f"training {model} ({name})")
        plain_loop = precision == "32-true" and not compiled and not args.no_plain_loop
        results[name] = time_training(model, precision, compiled, args, plain_loop)
    flop_per_sample = results[args.precisions[0]].get("flop_per_sample")
    plain = results.get("32-true", {}).pop("plain_loop", None)
    results = {name: with_achieved(r, flop_per_sample, peak_gflops) for name, r in results.items()}
    base = results[args.precisions[0]].get("samples_per_s")
    ratios = {
        f"{name}_over_{args.precisions[0]}": result["samples_per_s"] / base
        for name, result in results.items()
        if name != args.precisions[0] and base and "samples_per_s" in result
    }
    report: dict = {"variants": results, "ratios": ratios}
    if plain is not None:
        report["plain_loop"] = with_achieved(plain, flop_per_sample, peak_gflops)
    if plain is not None and "samples_per_s" in plain:
        fp32 = results["32-true"]["samples_per_s"]
        ratios["32-true_over_plain_loop"] = fp32 / plain["samples_per_s"]
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=DECODERS, default=list(DECODERS))
    parser.add_argument("--size", type=int, default=64, help="image side (MonkeySee: x32)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="batches per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows")
    parser.add_argument("--warmups", type=int, default=2, help="untimed batches first")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precisions", nargs="+", default=["32-true"])
    parser.add_argument("--compile", action="store_true", help="also time a compiled model")
    parser.add_argument("--vgg-input-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the peak matmul")
    parser.add_argument("--no-plain-loop", action="store_true", help="skip the hand loop")
    args = parser.parse_args(argv)
    if args.warmups < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("need warmups, steps and repeats >= 1")

    def measure(peak: float) -> dict:
        return {"models": {model: benchmark_model(model, args, peak) for model in args.models}}

    settings = {
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
        "flops": "FlopCounterMode on the first (untimed) batch of the first precision, "
        "forward + backward; peak: fp32 matmul at the start of the run",
        "plain_loop": "fp32, same module and optimiser, zero_grad/loss/backward/step by "
        "hand over the same DataLoader (automatic-optimisation models only)",
    }
    return run_speed_benchmark("train_speed", args, settings, measure)


if __name__ == "__main__":
    main()
