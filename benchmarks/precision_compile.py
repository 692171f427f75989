"""Decoding at lower precision and compiled: eager fp32 against bf16 autocast and torch.compile.

For each decoder (SID, the improved SID, MonkeySee's generator with its inverse
retinotopic mapping), built with random weights, this times the inference path
`Decoder.reconstruct` runs (``optimize_for_inference``'s copy, under
``torch.inference_mode()``) in up to four variants:

- ``fp32``: as it is;
- ``bf16``: under ``torch.autocast`` with bfloat16;
- ``compiled``: ``torch.compile`` of it (default mode, static shapes: one compilation per
  batch size);
- ``compiled_bf16``: both.

at every ``--batch-sizes`` (1, 8, 64, 256): each run decodes ``max(batch, --samples)``
trials in batches, the variants taking turns within every run so that drifting machine
load falls on all alike; the figure is the samples/s of the median of ``--repeats`` timed
runs after ``--warmups`` untimed ones. A variant's first call is timed on its own
(``first_call_s``: the compilation, for the compiled ones, which is stopped after
``--compile-timeout`` seconds); a variant other than fp32 that fails or times out is
recorded with the reason and left out from then on, never stopping the benchmark.
Every throughput also stands as ``gflops`` beside ``peak_gflops``, this machine's fp32
matmul peak measured at the start of the run (`machine.matmul_peak`), with
``fraction_of_peak``: the forward FLOPs per trial are counted once per decoder by
`torch.utils.flop_counter.FlopCounterMode` (the same count for every variant: bf16 and
compilation change how fast the work is done, not how much is counted).

How much a variant changes the reconstructions is measured on the same inputs at the
largest batch size, against the fp32 output: the largest and the mean absolute
difference, and PSNR and SSIM taking the fp32 reconstruction as the reference
(``null`` PSNR: identical). With random weights a PSNR or SSIM against the stimuli would
only measure the random weights; the agreement with fp32 is what precision and
compilation change, and compares with a trained decoder's error against the stimuli
(PSNR 15-25 dB in this library's demos).

It prints one JSON document: the machine (processor, device, threads, torch version,
load average before and after), the settings and, per decoder, the throughput of every
variant at every batch size, the ratios of each to fp32, and the differences.

Run it with ``python benchmarks/precision_compile.py``; the same command with
``--device cuda`` on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from machine import achieved, count_flops, run_speed_benchmark
from neuralsight.metrics.image import ssim_per_image
from workloads import DECODERS, build_decoder, n_inputs

VARIANTS = ("fp32", "bf16", "compiled", "compiled_bf16")
Decode = Callable[[torch.Tensor], torch.Tensor]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `TimeoutError` in the block after ``seconds`` (POSIX main thread; else no limit).

    The alarm interrupts a block that runs too long; a block that swallowed the alarm's
    exception (the compiler catches some errors and falls back to eager), or turned it into
    another error (an alarm inside an import leaves the module half-imported, and the
    compiler then reports `ModuleNotFoundError`), still ends in `TimeoutError` if it took
    longer than ``seconds``.

    Examples
    --------
    >>> with deadline(5):
    ...     pass
    """
    if not hasattr(signal, "setitimer") or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"took more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Exception as error:
        if time.perf_counter() - start > seconds:
            raise TimeoutError(f"took more than {seconds:g} s") from error
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if time.perf_counter() - start > seconds:
        expire(signal.SIGALRM, None)


def make_variant(name: str, model: torch.nn.Module, device: torch.device) -> Decode:
    """The decode function of one variant of ``model`` (see the module docstring).

    Examples
    --------
    >>> decode = make_variant("bf16", torch.nn.Linear(3, 2), torch.device("cpu"))
    >>> decode(torch.rand(4, 3)).dtype
    torch.bfloat16
    """
    run = torch.compile(model, dynamic=False) if name.startswith("compiled") else model
    if not name.endswith("bf16"):
        return run

    def autocast_run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return run(x)

    return autocast_run


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(decode: Decode, batches: Sequence[torch.Tensor], device: torch.device) -> float:
    start = time.perf_counter()
    for batch in batches:
        decode(batch)
    _synchronize(device)
    return time.perf_counter() - start


def agreement(output: torch.Tensor, reference: torch.Tensor) -> dict[str, float | None]:
    """How far ``output`` is from ``reference`` (both clamped to [0, 1]).

    Examples
    --------
    >>> x = torch.rand(2, 1, 16, 16)
    >>> agreement(x, x)["psnr_vs_fp32_db"] is None
    True
    """
    output, reference = output.float().clamp(0, 1), reference.float().clamp(0, 1)
    difference = (output - reference).abs()
    mse = float(difference.square().mean())
    return {
        "max_abs_diff": float(difference.max()),
        "mean_abs_diff": float(difference.mean()),
        "psnr_vs_fp32_db": 10 * math.log10(1 / mse) if mse > 0 else None,
        "ssim_vs_fp32": float(ssim_per_image(output.cpu(), reference.cpu()).mean()),
    }


def time_batch_size(
    variants: dict[str, Decode],
    inputs: torch.Tensor,
    batch_size: int,
    args: argparse.Namespace,
    errors: dict[str, str],
) -> dict[str, dict[str, float]]:
    """Throughput of every variant at one batch size; a failing variant goes to ``errors``."""
    device = inputs.device
    n_batches = max(1, args.samples // batch_size)
    batches = [inputs[:batch_size]] * n_batches
    results: dict[str, dict[str, float]] = {}
    for name, decode in list(variants.items()):
        if name == "fp32":
            results[name] = {"first_call_s": _timed(decode, batches[:1], device)}
            continue
        try:
            with deadline(args.compile_timeout if name.startswith("compiled") else 0):
                first = _timed(decode, batches[:1], device)
        except Exception as error:  # a compiler error or a timeout is a result
            errors[name] = f"batch {batch_size}: {type(error).__name__}: {error}"[:500]
            del variants[name]
            continue
        results[name] = {"first_call_s": first}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(args.warmups + args.repeats):
        for name, decode in variants.items():
            elapsed = _timed(decode, batches, device)
            if run >= args.warmups:
                times[name].append(elapsed)
    for name in variants:
        results[name]["samples_per_s"] = n_batches * batch_size / float(np.median(times[name]))
    return results


def benchmark_decoder(name: str, args: argparse.Namespace, peak_gflops: float) -> dict:
    """Every variant of one decoder at every batch size (with its GFLOP/s beside
    ``peak_gflops``), ratios to fp32, and differences."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_decoder(name, (args.channels, args.size, args.size), training=False)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.05)
    fast = model.to(device).optimize_for_inference()
    torch.compiler.reset()
    variants = {variant: make_variant(variant, fast, device) for variant in args.variants}
    inputs = torch.rand(max(args.batch_sizes), n_inputs(name), 1, device=device)
    errors: dict[str, str] = {}
    by_size, ratios = {}, {}
    with torch.inference_mode():
        flop_per_sample = count_flops(lambda: fast(inputs)) / len(inputs)
        for batch_size in args.batch_sizes:
            _log(f"decoding {name}, batch {batch_size}")
            result = time_batch_size(variants, inputs, batch_size, args, errors)
            for timing in result.values():
                timing.update(achieved(flop_per_sample, timing["samples_per_s"], peak_gflops))
            by_size[str(batch_size)] = result
            ratios[str(batch_size)] = {
                f"{variant}_over_fp32": timing["samples_per_s"] / result["fp32"]["samples_per_s"]
                for variant, timing in result.items()
                if variant != "fp32" and "fp32" in result
            }
        reference = fast(inputs)
        differences = {
            variant: agreement(decode(inputs), reference)
            for variant, decode in variants.items()
            if variant != "fp32"
        }
    return {
        "flop_per_sample": flop_per_sample,
        "batch_sizes": by_size,
        "ratios": ratios,
        "difference_vs_fp32": {"batch_size": len(inputs), **differences},
        "errors": errors,
    }


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoders", nargs="+", choices=DECODERS, default=list(DECODERS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS[:3]))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 64, 256])
    parser.add_argument("--samples", type=int, default=64, help="trials per run, at least")
    parser.add_argument("--size", type=int, default=64, help="image side (MonkeySee: x32)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs")
    parser.add_argument("--warmups", type=int, default=1, help="untimed runs before them")
    parser.add_argument("--compile-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the peak matmul")
    args = parser.parse_args(argv)
    if "fp32" not in args.variants or args.repeats < 1 or min(args.batch_sizes) < 1:
        parser.error("need the fp32 variant, repeats >= 1 and positive batch sizes")

    def measure(peak: float) -> dict:
        return {"decoders": {name: benchmark_decoder(name, args, peak) for name in args.decoders}}

    settings = {
        "image_shape": [args.channels, args.size, args.size],
        "n_inputs": {name: n_inputs(name) for name in args.decoders},
        "variants": args.variants,
        "batch_sizes": args.batch_sizes,
        "samples_per_run": args.samples,
        "repeats": args.repeats,
        "warmups": args.warmups,
        "compile_timeout_s": args.compile_timeout,
        "path": "optimize_for_inference copy under torch.inference_mode",
        "weights": "random (perturbed, so zero-initialised layers contribute)",
        "statistic": "samples/s of the median timed run",
        "flops": "FlopCounterMode, one fp32 forward pass, per trial; "
        "peak: fp32 matmul at the start of the run",
    }
    return run_speed_benchmark("precision_compile", args, settings, measure)


if __name__ == "__main__":
    main()
