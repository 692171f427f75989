"""A killed ``neuralsight simulate`` leaves no live workers and no file the next run keeps.

The program runs in a subprocess with two worker processes; once its temporary file is on
disk it is killed (SIGKILL: nothing of ours runs; SIGTERM: it unwinds as Ctrl-C does).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuralsight import files
from neuralsight.data import NeuralDataset

SIMULATE = [
    "simulate",
    "--source",
    "natural",
    "--n-train",
    "60000",
    "--n-test",
    "10",
    "--size",
    "32",
    "--cells",
    "400",
    "--chunk",
    "256",
    "--workers",
    "2",
]


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".retina.*.h5"))


def start_simulate(out: Path) -> tuple[subprocess.Popen, set[int]]:
    """Start the program; return it and its workers once its temporary file exists."""
    command = [
        sys.executable,
        "-c",
        "from neuralsight.cli import console; raise SystemExit(console())",
    ]
    process = subprocess.Popen(
        [*command, *SIMULATE, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = children(process.pid)
        if len(workers) >= 2 and temporaries(out.parent):
            return process, workers
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    process.kill()
    raise AssertionError("simulate did not start its workers and temporary file in 120 s")


def wait_until_gone(pids: set[int], seconds: float = 15) -> set[int]:
    deadline = time.monotonic() + seconds
    while (alive := {pid for pid in pids if is_running(pid)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize(("sent", "status"), [(signal.SIGKILL, -9), (signal.SIGTERM, 143)])
def test_a_killed_simulate_leaves_no_workers_and_no_lasting_file(tmp_path, sent, status):
    out = tmp_path / "retina.h5"
    process, workers = start_simulate(out)
    os.kill(process.pid, sent)
    assert process.wait(timeout=60) == status
    assert wait_until_gone(workers) == set()
    assert not out.exists()
    if sent == signal.SIGTERM:
        assert temporaries(tmp_path) == []
        return
    (stale,) = temporaries(tmp_path)
    small = ["--n-train", "20", "--n-test", "4", "--size", "16", "--cells", "20", "--out", str(out)]
    command = [
        sys.executable,
        "-c",
        "from neuralsight.cli import console; raise SystemExit(console())",
    ]
    again = subprocess.run(
        [*command, "simulate", *small], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert f"removed {stale}, left by a killed run" in again.stderr
    assert temporaries(tmp_path) == [] and NeuralDataset.open(out).n_trials == 24


@pytest.fixture
def termination_requested(monkeypatch):
    """A process that was told to stop, as the SIGTERM handler leaves it."""
    monkeypatch.setattr(files, "_TERMINATION", [])
    files.request_termination(143)


def test_a_stop_whose_exception_was_swallowed_still_writes_no_file(tmp_path, termination_requested):
    """The handler's SystemExit can land in a weakref callback, where Python ignores it; the
    writers check again before renaming, so nothing appears and no temporary file stays."""
    images = np.zeros((4, 1, 4, 4), dtype=np.float32)
    writers = {
        "dataset": lambda out: NeuralDataset.from_arrays(np.zeros((4, 3)), images).save(out),
        "json": lambda out: files.atomic_write(out, lambda handle: handle.write(b"{}")),
    }
    for name, write in writers.items():
        out = tmp_path / f"{name}.out"
        with pytest.raises(SystemExit) as stopped:
            write(out)
        assert stopped.value.code == 143
        assert list(tmp_path.iterdir()) == [], name
