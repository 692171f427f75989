"""A killed ``neuralsight fit`` loses nothing: ``--ckpt_path last`` resumes it exactly.

The kill is a real SIGKILL, sent by the training process to itself from a callback at a
chosen batch, so no cleanup code of ours or Lightning's runs; the resumed run must end with
the weights of an uninterrupted run of the same seed, and log into the first run's folder.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from conftest import make_toy_dataset
from neuralsight.cli import main
from neuralsight.train import RunCheckpoint

KILLER = '''
import os, signal

import lightning as L


class KillAt(L.Callback):
    """SIGKILL this process at the start of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGKILL)
'''

EPOCHS = 4


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "toy.h5"
    make_toy_dataset(n_stimuli=48, size=16, seed=1).save(path)
    return path


def write_config(tmp_path, dataset, run: str, callbacks=(), **trainer) -> str:
    config = {
        "seed_everything": 5,
        "model": {"class_path": "neuralsight.models.decoders.SID"},
        "data": {"path": str(dataset), "batch_size": 8},
        "trainer": {
            "max_epochs": EPOCHS,
            "accelerator": "cpu",
            "enable_progress_bar": False,
            "default_root_dir": str(tmp_path / run),
            "callbacks": list(callbacks),
            **trainer,
        },
    }
    path = tmp_path / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run_fit(tmp_path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "killer.py").write_text(textwrap.dedent(KILLER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    command = [
        sys.executable,
        "-c",
        "from neuralsight.cli import console; raise SystemExit(console())",
        "fit",
    ]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=600)


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_weights(tmp_path, dataset):
    uninterrupted = write_config(tmp_path, dataset, "whole")
    assert run_fit(tmp_path, "--config", uninterrupted).returncode == 0
    kill = {"class_path": "killer.KillAt", "init_args": {"epoch": 2, "batch": 2}}
    killed = run_fit(tmp_path, "--config", write_config(tmp_path, dataset, "cut", [kill]))
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "cut" / "lightning_logs" / "version_0"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1

    resumed = run_fit(
        tmp_path, "--config", write_config(tmp_path, dataset, "cut"), "--ckpt_path", "last"
    )
    assert resumed.returncode == 0, resumed.stderr
    whole = weights(
        tmp_path / "whole" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    )
    again = weights(run / "checkpoints" / "last.ckpt")
    assert whole.keys() == again.keys()
    for name in whole:
        torch.testing.assert_close(again[name], whole[name], rtol=0, atol=0, msg=name)
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    logged_epochs = {
        line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]
    }
    assert logged_epochs >= {str(epoch) for epoch in range(EPOCHS)}


def test_last_is_saved_every_n_steps_within_an_epoch(tmp_path, dataset):
    kill = {"class_path": "killer.KillAt", "init_args": {"epoch": 0, "batch": 4}}
    config = write_config(tmp_path, dataset, "steps", [kill], logger=False)
    killed = run_fit(tmp_path, "--config", config, "--checkpoint.last_every_n_train_steps", "3")
    assert killed.returncode == -signal.SIGKILL
    last = torch.load(tmp_path / "steps" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, 3)


def test_resuming_with_no_last_checkpoint_is_an_error_not_a_fresh_run(tmp_path, dataset, capsys):
    config = write_config(tmp_path, dataset, "never", logger=False)
    with pytest.raises(FileNotFoundError, match=r"never: --ckpt_path last: no last.ckpt"):
        main(["fit", "--config", config, "--ckpt_path", "last"])
    assert not (tmp_path / "never" / "checkpoints").exists()


@pytest.mark.parametrize("steps", [0, -3])
def test_a_step_interval_must_be_positive(steps):
    with pytest.raises(ValueError, match=f"last_every_n_train_steps .* found {steps}"):
        RunCheckpoint(last_every_n_train_steps=steps)
