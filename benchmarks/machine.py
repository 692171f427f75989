"""What a benchmark ran on: the machine block of every benchmark's JSON document.

A benchmark takes the load average before it starts and calls `describe_machine` at the
end, so its document shows the processor, the accelerator, the threads, the versions and
how busy the machine was while it ran (`describe_run` adds the versions and the run's
seconds); `print_document` writes the document to stdout.

It is also the one home of the speed benchmarks' yardstick: `matmul_peak` times a square
fp32 matrix product (the machine's measured peak, in GFLOP/s), `count_flops` counts a
step's floating-point operations with `torch.utils.flop_counter.FlopCounterMode`, and
`achieved` puts a throughput in samples/s beside that peak. `run_speed_benchmark` is the
frame of every speed benchmark's run: the load average, the peak, the measurement, then the
document (machine, peak, settings, results, wall seconds), printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from neuralsight import __version__


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (empty where there is none).

    Examples
    --------
    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = [line for line in cpuinfo if line.startswith("model name")]
    except OSError:
        return ""
    return lines[0].split(":", 1)[1].strip() if lines else ""


def device_name(device: str) -> str:
    """The accelerator's name for a CUDA ``device``, the CPU model otherwise.

    Examples
    --------
    >>> device_name("cpu") == (cpu_model() or platform.machine())
    True
    """
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model() or platform.machine()


def describe_machine(load_before: tuple[float, float, float], device: str = "cpu") -> dict:
    """The machine block: processor, device, threads, versions, load average before and now.

    Examples
    --------
    >>> block = describe_machine(os.getloadavg())
    >>> sorted(block["load_average_1_5_15_min"])
    ['after', 'before']
    """
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "node": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "device": device,
        "device_name": device_name(device),
        "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
    }


def describe_run(
    started: float, load_before: tuple[float, float, float], device: str = "cpu"
) -> dict:
    """`describe_machine` (of ``device``) plus the neuralsight and Python versions and the
    seconds since ``started`` (a `time.perf_counter` reading), for a benchmark that times
    itself whole.

    Examples
    --------
    >>> block = describe_run(time.perf_counter(), os.getloadavg())
    >>> block["total_seconds"] >= 0, "neuralsight" in block
    (True, True)
    """
    return {
        **describe_machine(load_before, device),
        "neuralsight": __version__,
        "python": platform.python_version(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def print_document(doc: dict) -> dict:
    """Print a benchmark's JSON document on stdout (one document, indented) and return it.

    Examples
    --------
    >>> print_document({"benchmark": "example"})["benchmark"]
    {
      "benchmark": "example"
    }
    'example'
    """
    json.dump(doc, sys.stdout, indent=2, default=float)
    print()
    return doc


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: str = "cpu", size: int = 2048, repeats: int = 7) -> dict:
    """The machine's measured fp32 peak: GFLOP/s of a ``size`` x ``size`` matrix product.

    One untimed product, then ``repeats`` timed ones (``2 size^3`` operations each, after a
    CUDA synchronisation on a GPU) with the current torch threads; the figure is the best of
    them (a peak is what the machine can do: on a shared VM single products ran 25% slower
    minutes apart, which a median would report as a lower ceiling).

    Examples
    --------
    >>> peak = matmul_peak(size=64, repeats=3)
    >>> peak["gflops"] > 0, len(peak["runs_gflops"])
    (True, 3)
    """
    target = torch.device(device)
    a, b = torch.rand(size, size, device=target), torch.rand(size, size, device=target)
    a @ b
    _synchronize(target)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _synchronize(target)
        runs.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {
        "gflops": float(max(runs)),
        "runs_gflops": runs,
        "what": f"{size}x{size} float32 matmul on {device}, "
        f"{torch.get_num_threads()} threads, best of {repeats}",
    }


def count_flops(step: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``step`` (`FlopCounterMode`: matmuls,
    convolutions and attention, forward and backward; element-wise work is not counted).

    Examples
    --------
    >>> count_flops(lambda: torch.rand(4, 8) @ torch.rand(8, 2))
    128
    """
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def achieved(flop_per_sample: float, samples_per_s: float, peak_gflops: float) -> dict:
    """GFLOP/s reached at ``samples_per_s`` beside the measured peak, and their ratio.

    Examples
    --------
    >>> achieved(1e9, 50.0, peak_gflops=100.0)
    {'gflops': 50.0, 'peak_gflops': 100.0, 'fraction_of_peak': 0.5}
    """
    gflops = flop_per_sample * samples_per_s / 1e9
    return {"gflops": gflops, "peak_gflops": peak_gflops, "fraction_of_peak": gflops / peak_gflops}


def run_speed_benchmark(
    benchmark: str, args: argparse.Namespace, settings: dict, measure: Callable[[float], dict]
) -> dict:
    """Measure the peak, then ``measure(peak_gflops)``; print the document and return it.

    ``args`` are the benchmark's options: ``threads`` (`torch.set_num_threads`),
    ``peak_size`` (side of the `matmul_peak` matrix) and ``device`` (the CPU where the
    benchmark has no such option). The document is ``{"benchmark", "machine", "peak",
    "settings", <what measure returned>, "wall_s"}``: the machine block of the device (load
    average before the peak and after the measurement), the peak, ``settings``, the results
    (``measure`` returns them under their key, e.g. ``{"models": {...}}``) and the seconds
    from the peak to the end.

    Examples
    --------
    >>> args = argparse.Namespace(threads=1, peak_size=64)
    >>> doc = run_speed_benchmark("example", args, {}, lambda peak: {"models": peak > 0})
    ... # doctest: +ELLIPSIS
    {...}
    >>> list(doc), doc["models"]
    (['benchmark', 'machine', 'peak', 'settings', 'models', 'wall_s'], True)
    """
    device = getattr(args, "device", "cpu")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    start = time.perf_counter()
    peak = matmul_peak(device, args.peak_size)
    results = measure(peak["gflops"])
    doc = {
        "benchmark": benchmark,
        "machine": describe_machine(load_before, device),
        "peak": peak,
        "settings": settings,
        **results,
        "wall_s": time.perf_counter() - start,
    }
    return print_document(doc)
