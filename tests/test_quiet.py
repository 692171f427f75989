"""Quiet by default: no Lightning banners or known third-party warnings; --verbose shows them."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from neuralsight.data import NeuralDataset
from neuralsight.quiet import VERBOSE_ENV

BANNERS = ("GPU available", "litlogger", "LeafSpec", "`Trainer.fit` stopped")
FIT = """
import numpy as np
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.models.decoders import RidgeDecoder
from neuralsight.train import fit
rng = np.random.default_rng(0)
ds = NeuralDataset.from_arrays(rng.random((40, 6), np.float32), rng.random((40, 1, 4, 4), np.float32))
dm = NeuralDataModule(dataset=ds, batch_size=8)
fit(RidgeDecoder(dm.n_inputs, dm.image_shape), dm, max_epochs=1)
print("neuralsight: trained")
"""


def _run(argv: list[str], verbose: bool, cwd: Path) -> str:
    env = {**os.environ, VERBOSE_ENV: "1" if verbose else "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def _shown(output: str) -> list[str]:
    return [banner for banner in BANNERS if banner in output]


@pytest.mark.parametrize("verbose", [False, True])
def test_fit_shows_only_neuralsight_and_the_progress_bar_unless_verbose(tmp_path, verbose):
    output = _run([sys.executable, "-c", FIT], verbose, tmp_path)
    assert "neuralsight: trained" in output and "Epoch 0" in output
    assert _shown(output) == (list(BANNERS) if verbose else [])


@pytest.fixture
def ridge_config(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    split = np.array(["train"] * 30 + ["test"] * 10)
    dataset = NeuralDataset.from_arrays(
        rng.random((40, 6), np.float32), rng.random((40, 1, 4, 4), np.float32), split=split
    )
    config = {
        "seed_everything": 0,
        "model": {"class_path": "neuralsight.models.decoders.RidgeDecoder"},
        "data": {"path": str(dataset.save(tmp_path / "tiny.h5")), "batch_size": 8},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "logger": False},
    }
    path = tmp_path / "ridge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("verbose", [False, True])
def test_neuralsight_fit_is_quiet_and_its_verbose_flag_brings_lightning_back(ridge_config, verbose):
    command = [sys.executable, "-m", "neuralsight.cli"]
    argv = [*command, *(["--verbose"] if verbose else []), "fit", "--config", str(ridge_config)]
    output = _run(argv, verbose=False, cwd=ridge_config.parent)
    assert "Epoch 0" in output and "neuralsight: report written to" in output
    expected = ("GPU available", "Seed set to 0", "LightningCLI's args parameter")
    assert [line for line in expected if line in output] == (list(expected) if verbose else [])
