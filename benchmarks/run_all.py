"""Run every ``make bench`` benchmark and collect their JSON documents in one results file.

The benchmarks run one after another, each in its own process (so one's threads, caches
and memory never touch the next), with settings chosen per device (``SETTINGS``): on a
CPU they keep the whole run near 10 minutes on two cores; on a GPU they are larger and
add what only a GPU has (fp16, bigger batches). ``--quick`` runs each at tiny settings, in
seconds, to check that they work. ``real_data.py`` is not among them: it needs recorded
data sets (see README.md).

The results go to ``<out-dir>/<machine>.json``, where ``<machine>`` names the device, its
model and the CPU count in lower case, every run of other characters a dash: e.g.
``cpu-amd-epyc-2cores`` or ``cuda-nvidia-h100-80gb-hbm3-16cores``; a later run on the same
machine replaces it. The file holds the machine block, the settings of each benchmark, its
document (or, where it failed, its exit status and the tail of its stderr) and the wall
time; its path is printed.

Run it with ``make bench`` or ``python benchmarks/run_all.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from machine import describe_machine, device_name

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

SETTINGS: dict[str, dict[str, list[str]]] = {
    "cpu": {
        "decode_speed": ["--repeats", "3", "--warmups", "1", "--frames", "4"],
        "loader_speed": ["--trials", "5000", "--epochs", "2", "--workers", "0", "2"],
        "train_speed": [
            "--size", "32", "--batch-size", "64", "--steps", "2", "--repeats", "3",
            "--warmups", "1", "--precisions", "32-true", "bf16-mixed",
        ],
        "precision_compile": ["--size", "64", "--samples", "8", "--repeats", "3", "--warmups", "1"],
    },
    "cuda": {
        "decode_speed": ["--repeats", "5", "--warmups", "2"],
        "loader_speed": ["--epochs", "3", "--workers", "0", "2", "8"],
        "train_speed": [
            "--size", "64", "--batch-size", "64", "--steps", "10", "--repeats", "5",
            "--warmups", "5", "--precisions", "32-true", "bf16-mixed", "16-mixed", "--compile",
            "--vgg-input-size", "224",
        ],
        "precision_compile": [
            "--size", "64", "--repeats", "5", "--warmups", "2", "--samples", "1024",
            "--variants", "fp32", "bf16", "compiled", "compiled_bf16",
        ],
    },
}  # fmt: skip
"""Arguments of each benchmark by device type (``--device`` is added where it applies)."""

QUICK: dict[str, list[str]] = {
    "decode_speed": [
        "--size", "16", "--batch-size", "8", "--frames", "2", "--repeats", "1", "--warmups", "0",
        "--threads", "1", "--decoders", "ridge",
    ],
    "loader_speed": [
        "--trials", "200", "--units", "20", "--size", "16", "--epochs", "1", "--warmups", "0",
        "--workers", "0", "--batch-size", "64",
    ],
    "train_speed": [
        "--models", "sid", "--size", "16", "--batch-size", "4", "--steps", "1", "--repeats",
        "1", "--warmups", "1", "--threads", "1",
    ],
    "precision_compile": [
        "--decoders", "sid", "--variants", "fp32", "bf16", "--batch-sizes", "1", "4",
        "--size", "16", "--samples", "4", "--repeats", "1", "--warmups", "0", "--threads", "1",
    ],
}  # fmt: skip
"""Tiny settings of each benchmark, for ``--quick``."""

TAKES_DEVICE = ("train_speed", "precision_compile")


def machine_name(device: str) -> str:
    """The results file's stem: device type, device model and CPU count, sanitised.

    Examples
    --------
    >>> re.fullmatch(r"cpu-[a-z0-9-]+-\\d+cores", machine_name("cpu")) is not None
    True
    """
    kind = torch.device(device).type
    name = f"{kind}-{device_name(device)}-{os.cpu_count()}cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def command(name: str, device: str, quick: bool) -> list[str]:
    """The command line of one benchmark.

    Examples
    --------
    >>> command("train_speed", "cuda", quick=False)[-2:]
    ['--device', 'cuda']
    """
    settings = QUICK[name] if quick else SETTINGS[torch.device(device).type][name]
    device_args = ["--device", device] if name in TAKES_DEVICE else []
    return [sys.executable, str(HERE / f"{name}.py"), *settings, *device_args]


def run_benchmark(argv: list[str], timeout: float) -> dict:
    """Run one benchmark; its JSON document, or its exit status and the tail of stderr."""
    start = time.perf_counter()
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else expired.stderr
        return {"error": f"timed out after {timeout:g} s", "stderr_tail": (stderr or "")[-2000:]}
    if run.returncode != 0:
        return {"error": f"exit status {run.returncode}", "stderr_tail": run.stderr[-2000:]}
    try:
        doc = json.loads(run.stdout)
    except json.JSONDecodeError as error:
        return {
            "error": f"stdout is not one JSON document ({error})",
            "stdout_tail": run.stdout[-2000:],
        }
    return doc | {"run_all_wall_s": time.perf_counter() - start}


def write_json(path: Path, doc: dict) -> Path:
    """Write ``doc`` to ``path`` under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(doc, file, indent=2)
            file.write("\n")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the benchmarks, write the results file, print and return its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--only", nargs="+", choices=list(QUICK), default=list(QUICK))
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke test)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    started = dt.datetime.now().isoformat(timespec="seconds")
    start = time.perf_counter()
    commands = {name: command(name, args.device, args.quick) for name in args.only}
    results = {}
    for name, argv_ in commands.items():
        print(f"run_all: {name} ...", file=sys.stderr, flush=True)
        results[name] = run_benchmark(argv_, args.timeout)
        status = results[name].get("error", "ok")
        print(f"run_all: {name}: {status} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    doc = {
        "benchmark": "run_all",
        "machine_name": machine_name(args.device),
        "machine": describe_machine(load_before, args.device),
        "started": started,
        "quick": args.quick,
        "commands": {name: [f"benchmarks/{name}.py", *a[2:]] for name, a in commands.items()},
        "results": results,
        "wall_s": time.perf_counter() - start,
    }
    path = write_json(args.out_dir / f"{machine_name(args.device)}.json", doc)
    print(path)
    return path


if __name__ == "__main__":
    main()
