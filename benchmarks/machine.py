"""What a benchmark ran on: the machine block of every benchmark's JSON document.

A benchmark takes the load average before it starts and calls `describe_machine` at the
end, so its document shows the processor, the accelerator, the threads, the versions and
how busy the machine was while it ran (`describe_run` adds the versions and the run's
seconds); `print_document` writes the document to stdout.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

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
