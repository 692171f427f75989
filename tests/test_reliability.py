"""Files from outside are not trusted: crafted checkpoints are refused without running."""

import pathlib

import numpy as np
import pytest
import torch

from neuralsight.analysis.training import load_monkeysee
from neuralsight.cli import main
from neuralsight.data import NeuralDataset
from neuralsight.video.stream import load_stream_model


class WritesAFileWhenUnpickled:
    """What a hostile checkpoint holds: unpickling it calls ``Path.touch(marker)``."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def crafted_checkpoint(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.ckpt"
    payload = {"state_dict": {}, "hyper_parameters": {"x": WritesAFileWhenUnpickled(marker)}}
    torch.save(payload, path)
    assert not marker.exists()
    return path, marker


@pytest.mark.parametrize("load", [load_stream_model, load_monkeysee])
def test_a_crafted_checkpoint_is_refused_without_running(crafted_checkpoint, load):
    path, marker = crafted_checkpoint
    with pytest.raises(ValueError, match=rf"{path}: refused: .*weights_only=True"):
        load(path)
    assert not marker.exists()


def test_the_command_line_refuses_a_crafted_checkpoint(crafted_checkpoint, tmp_path):
    path, marker = crafted_checkpoint
    dataset = tmp_path / "data.h5"
    NeuralDataset.from_arrays(np.zeros((4, 2), np.float32), np.zeros((4, 1, 8, 8))).save(dataset)
    occlusion = ("--dataset", str(dataset), "--out", str(tmp_path / "occlusion"))
    commands = (
        ["stream", "--model", str(path), "--out", str(tmp_path / "out.mp4"), "--frames", "2"],
        ["analyze", "occlusion", "--ckpt", str(path), *occlusion],
    )
    for command in commands:
        with pytest.raises((ValueError, SystemExit), match="refused"):
            main(command)
    assert not marker.exists()
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "occlusion").exists()


def test_the_report_embeds_no_file_a_symbolic_link_points_to(tmp_path):
    from neuralsight.viz.report import write_report

    secret = tmp_path / "outside" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text("host: secret-host-name\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "leak.yaml").symlink_to(secret)
    (run / "linked_folder").symlink_to(secret.parent, target_is_directory=True)
    (run / "run.json").symlink_to(secret)
    page = write_report(run).read_text()
    assert "seed: 0" in page
    assert "secret-host-name" not in page and "leak.yaml" not in page
