"""Shared fixtures: small in-memory datasets built from known linear encoders; a memory cap."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from neuralsight.data import NeuralDataset


def make_toy_dataset(
    n_stimuli: int = 60,
    n_units: int = 12,
    n_bins: int = 2,
    repeats: int = 1,
    size: int = 8,
    seed: int = 0,
    smooth: bool = False,
) -> NeuralDataset:
    """Responses that are a fixed random linear function of the pixels, plus noise.

    ``smooth`` images are 4x4 random patterns upsampled to ``size`` (easy to decode).
    """
    rng = np.random.default_rng(seed)
    stimuli = rng.random((n_stimuli, 1, size, size), dtype=np.float32)
    if smooth:
        coarse = rng.random((n_stimuli, 1, 4, 4), dtype=np.float32)
        stimuli = np.kron(coarse, np.ones((size // 4, size // 4), np.float32))
    weights = rng.normal(size=(size * size, n_units * n_bins)).astype(np.float32)
    stimulus_id = np.repeat(np.arange(n_stimuli), repeats)
    clean = stimuli.reshape(n_stimuli, -1) @ weights
    responses = clean[stimulus_id] + 0.1 * rng.normal(size=(len(stimulus_id), n_units * n_bins))
    n_test = max(1, n_stimuli // 6)
    split = np.where(stimulus_id >= n_stimuli - n_test, "test", "train")
    units = pd.DataFrame(
        {
            "unit_id": np.arange(n_units),
            "area": ["V1"] * n_units,
            "rf_x": np.linspace(-1, 1, n_units),
        }
    )
    return NeuralDataset(
        responses=responses.reshape(-1, n_units, n_bins).astype(np.float32),
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        units=units,
        bin_edges_ms=np.linspace(0, 100, n_bins + 1),
        split=split,
        meta={"simulator": "toy-linear", "seed": seed},
    )


def linear_deadleaves_recording(n: int = 300, size: int = 16, n_units: int = 40) -> NeuralDataset:
    """Responses that are a noisy linear readout of grey dead-leaves scenes (image seed 2),
    50 of ``n`` images held out."""
    from neuralsight.data.sources import make_stimuli

    rng = np.random.default_rng(0)
    stimuli = make_stimuli("deadleaves", n, size=size, channels=1, seed=2)
    weights = rng.normal(size=(size * size, n_units)) / size
    responses = stimuli.reshape(n, -1) @ weights + 0.05 * rng.normal(size=(n, n_units))
    split = np.where(np.arange(n) < n - 50, "train", "test")
    return NeuralDataset.from_arrays(responses.astype(np.float32), stimuli, split=split)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: tiny tensors on a busy two-core machine run about 50x
    slower with two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def toy_dataset() -> NeuralDataset:
    return make_toy_dataset()


MEMORY_CAP = r"""
import json, os, re, resource, sys

import numpy as np


def data_bytes():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmData:\s+(\d+) kB", status).group(1)) * 1024


path, headroom = sys.argv[1], int(sys.argv[2]) * 2**20
cap = data_bytes() + headroom
resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))
try:
    np.ones(cap, np.uint8)
    cap_holds = False
except MemoryError:
    cap_holds = True
"""


def run_under_memory_cap(imports: str, body: str, path, headroom_mb: int = 300) -> dict:
    """Run ``body`` in a fresh Python whose data segment may grow ``headroom_mb`` past its imports.

    ``imports`` run first, then the cap is set (Linux ``RLIMIT_DATA``) and checked; ``body``
    sees ``path``, ``cap`` and ``cap_holds``, writes the file at ``path`` and prints a JSON
    document as its last line with ``cap``, ``cap_holds`` and ``file_bytes``. Asserts that
    the cap held and that the file outgrew it, removes the file and returns the document.
    """
    script = imports + MEMORY_CAP + body
    try:
        run = subprocess.run(
            [sys.executable, "-c", script, str(path), str(headroom_mb)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        path.unlink(missing_ok=True)
    assert result["cap_holds"], "the memory cap did not stop an allocation of its own size"
    assert result["file_bytes"] > result["cap"]
    return result


@pytest.fixture(autouse=True)
def no_weights_folder(monkeypatch):
    """Tests never read a weights folder a developer's environment names (../shared/weights)."""
    monkeypatch.delenv("NEURALSIGHT_WEIGHTS", raising=False)
