"""Decoding speed: eager PyTorch against the fast inference path, batched and frame by frame.

For each decoder (ridge, SID, improved SID), built with random weights, this times the
eval-mode model as it is ("eager") and `Decoder.optimize_for_inference`'s copy ("fast":
BatchNorm folded, channels-last convs) under ``torch.inference_mode()``:

- batched: one forward pass of ``--batch-size`` trials per run; throughput is the batch
  size over the median time;
- one frame at a time: ``--frames`` single-trial passes per run; throughput is frames over
  the median run time, latency the median and 90th percentile of all passes.

There are ``--warmups`` untimed runs, then ``--repeats`` timed ones; eager and fast take
turns within each run, so drifting machine load falls on both alike.

Each throughput also stands as ``gflops`` beside ``peak_gflops``, this machine's fp32
matmul peak measured at the start of the run (`machine.matmul_peak`), with
``fraction_of_peak``: the forward pass's FLOPs per trial are counted once by
`torch.utils.flop_counter.FlopCounterMode` on the eager model (folding BatchNorm removes
no matmul or convolution, so the fast path does the same counted work).

It prints one JSON document with the machine (processor, threads, torch version, load
average before and after), the peak, the settings, and per decoder the numbers of both
paths, their GFLOP/s, the ratio fast / eager of each throughput, and the largest absolute
difference between their outputs.

Run it with ``python benchmarks/decode_speed.py`` (64x64, batch 64 and one trial at a
time, 3 timed runs after 1 warm-up, 2 threads); at batch 256 it took 96 s on a 2-core
machine at load average 4 (31 s for ``--threads 1 --decoders sid``); an idle machine
needs less. For a
steadier figure use ``--repeats 7 --warmups 2``. On a machine busy with other work, two
threads per process oversubscribe the cores and single-frame timings blow up (every op's
thread barrier waits for a descheduled thread); ``--threads 1`` then measures the model
rather than the contention.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from machine import achieved, count_flops, run_speed_benchmark
from neuralsight.models.decoders import SID, Decoder, ImprovedSID, RidgeDecoder

N_INPUTS = 300

BUILDERS: dict[str, Callable[[tuple[int, int, int]], Decoder]] = {
    "ridge": lambda shape: RidgeDecoder(N_INPUTS, shape),
    "sid": lambda shape: SID(N_INPUTS, shape),
    "improved_sid": lambda shape: ImprovedSID(N_INPUTS, shape),
}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_models(
    models: dict[str, torch.nn.Module],
    inputs: torch.Tensor,
    repeats: int,
    warmups: int,
    frames: int,
) -> dict[str, dict[str, float]]:
    """Throughput batched and frame by frame, and single-frame latency, of several models.

    The models take turns within every run, so a change in machine load during the
    benchmark falls on all of them alike.

    Parameters
    ----------
    models
        Eval-mode models taking ``inputs``, by name.
    inputs
        One batch of responses; its first ``frames`` trials are also decoded one by one.
    repeats, warmups
        Timed and untimed runs of each measurement.
    frames
        Single-trial passes per run.

    Returns
    -------
    dict
        Per model: ``batched_fps``, ``single_fps``, ``latency_ms_median``, ``latency_ms_p90``.

    Examples
    --------
    >>> timings = time_models({"linear": torch.nn.Linear(4, 2)}, torch.rand(8, 4), 2, 1, 2)
    >>> sorted(timings["linear"])
    ['batched_fps', 'latency_ms_median', 'latency_ms_p90', 'single_fps']
    """
    single = [inputs[i : i + 1] for i in range(frames)]
    batch_times: dict[str, list[float]] = {name: [] for name in models}
    run_times: dict[str, list[float]] = {name: [] for name in models}
    latencies: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for run in range(warmups + repeats):
            for name, model in models.items():
                batch_time = _timed(lambda model=model: model(inputs))
                per_frame = [_timed(lambda model=model, x=x: model(x)) for x in single]
                if run >= warmups:
                    batch_times[name].append(batch_time)
                    run_times[name].append(sum(per_frame))
                    latencies[name].extend(per_frame)
    return {
        name: {
            "batched_fps": len(inputs) / float(np.median(batch_times[name])),
            "single_fps": frames / float(np.median(run_times[name])),
            "latency_ms_median": 1e3 * float(np.median(latencies[name])),
            "latency_ms_p90": 1e3 * float(np.percentile(latencies[name], 90)),
        }
        for name in models
    }


def gflops_of(timings: dict[str, float], flop_per_sample: float, peak_gflops: float) -> dict:
    """`achieved` GFLOP/s of the batched and the one-frame throughput of one path.

    Examples
    --------
    >>> gflops_of({"batched_fps": 10.0, "single_fps": 5.0}, 1e9, 20.0)["single"]["gflops"]
    5.0
    """
    return {
        "batched": achieved(flop_per_sample, timings["batched_fps"], peak_gflops),
        "single": achieved(flop_per_sample, timings["single_fps"], peak_gflops),
    }


def benchmark_decoder(
    name: str,
    size: int,
    batch_size: int,
    repeats: int,
    warmups: int,
    frames: int,
    peak_gflops: float = float("nan"),
) -> dict:
    """Time one decoder's eager and fast paths on random responses; their GFLOP/s.

    Examples
    --------
    >>> result = benchmark_decoder("ridge", 16, batch_size=4, repeats=1, warmups=0, frames=1)
    >>> sorted(result)
    ['achieved', 'eager', 'fast', 'fast_over_eager', 'flop_per_sample', 'max_abs_diff']
    """
    torch.manual_seed(0)
    eager = BUILDERS[name]((1, size, size)).eval()
    with torch.no_grad():
        for parameter in eager.parameters():
            parameter.normal_(0.0, 0.05)
    fast = eager.optimize_for_inference()
    inputs = torch.rand(batch_size, N_INPUTS, 1)
    with torch.inference_mode():
        max_abs_diff = float((fast(inputs) - eager(inputs)).abs().max())
        flop_per_sample = count_flops(lambda: eager(inputs)) / batch_size
    result: dict = time_models({"eager": eager, "fast": fast}, inputs, repeats, warmups, frames)
    result["fast_over_eager"] = {
        key: result["fast"][key] / result["eager"][key] for key in ("batched_fps", "single_fps")
    }
    result["max_abs_diff"] = max_abs_diff
    result["flop_per_sample"] = flop_per_sample
    result["achieved"] = {
        path: gflops_of(result[path], flop_per_sample, peak_gflops) for path in ("eager", "fast")
    }
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it.

    Examples
    --------
    >>> doc = main(["--size", "16", "--repeats", "1", "--batch-size", "4", "--frames", "1",
    ...             "--decoders", "ridge", "--peak-size", "64"])  # doctest: +ELLIPSIS
    {...}
    >>> sorted(doc["decoders"])
    ['ridge']
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image height and width (grey)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--warmups", type=int, default=1, help="untimed runs before them")
    parser.add_argument("--frames", type=int, default=8, help="single-frame passes per run")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--decoders", nargs="+", choices=list(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the peak matmul")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.frames < 1 or args.frames > args.batch_size:
        parser.error("need repeats >= 1 and 1 <= frames <= batch-size")
    timing = (args.size, args.batch_size, args.repeats, args.warmups, args.frames)

    def measure(peak: float) -> dict:
        return {
            "decoders": {name: benchmark_decoder(name, *timing, peak) for name in args.decoders}
        }

    settings = {
        "n_inputs": N_INPUTS,
        "image_shape": [1, args.size, args.size],
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "warmups": args.warmups,
        "frames": args.frames,
        "weights": "random",
        "statistic": "median over repeats",
        "flops": "FlopCounterMode, one forward pass of the eager model, per trial; "
        "peak: fp32 matmul at the start of the run",
    }
    return run_speed_benchmark("decode_speed", args, settings, measure)


if __name__ == "__main__":
    main()
