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


@pytest.mark.parametrize("ids", [[0.0, 9.7], [1.9, 0.0], [0.0, float("nan")]])
def test_fractional_or_missing_stimulus_ids_are_refused_not_truncated(ids):
    from neuralsight.data import DatasetError

    with pytest.raises(DatasetError, match=r"field 'stimulus_id' must hold whole numbers"):
        NeuralDataset.from_arrays(
            np.zeros((2, 3), np.float32), np.zeros((10, 1, 4, 4)), stimulus_id=ids
        )


def test_whole_float_stimulus_ids_are_accepted():
    ds = NeuralDataset.from_arrays(
        np.zeros((2, 3), np.float32), np.zeros((3, 1, 4, 4)), stimulus_id=[2.0, 0.0]
    )
    assert ds.stimulus_id.tolist() == [2, 0] and ds.stimulus_id.dtype == np.int64


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (["--frames", "0"], ValueError, r"--frames \(max_frames\) must be at least 1, found 0"),
        (["--frames", "-3"], ValueError, r"must be at least 1, found -3"),
        (["--video", "missing.mp4"], FileNotFoundError, r"missing.mp4: video file or frame"),
    ],
)
def test_stream_refuses_bad_frames_and_missing_videos_before_training(
    tmp_path, monkeypatch, arguments, error, message
):
    import neuralsight.video.stream as stream

    def no_training(**kwargs):
        raise AssertionError("trained before checking its inputs")

    monkeypatch.setattr(stream, "train_stream_model", no_training)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.mp4"
    with pytest.raises(error, match=message):
        main(["stream", "--out", str(out), *arguments])
    assert not out.exists()


@pytest.mark.parametrize(
    ("field", "value", "found"),
    [
        (
            "spkTrn",
            -5.0,
            "holds spike counts, which cannot be negative.*found -5 at trial 1, cell 2",
        ),
        ("spkTest", -1.0, "holds spike counts, which cannot be negative.*found -1 at trial 0"),
        ("spkTest", np.nan, "must hold finite values, found NaN"),
    ],
)
def test_sid_mat_refuses_negative_or_nan_spike_counts(tmp_path, field, value, found):
    import scipy.io

    from neuralsight.data.readers import sid_mat

    arrays = {"spkTrn": np.ones((4, 5)), "spkTest": np.ones((2, 5))}
    arrays[field][1 if field == "spkTrn" else 0, 2] = value
    path = tmp_path / "sid.mat"
    stimuli = {"stimTrn": np.eye(4, 16) * 255, "stimTest": np.zeros((2, 16))}
    scipy.io.savemat(path, arrays | {k: v.astype(np.uint8) for k, v in stimuli.items()})
    with pytest.raises(ValueError, match=rf"{path}: field '{field}' {found}"):
        sid_mat.read([path])


EVALUATE_REST = ["--dataset", "{tmp}/none.h5", "--out", "{tmp}/m.json"]


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["report", "{tmp}/no_run"], "{tmp}/no_run: run folder does not exist"),
        (["stream", "--video", "{tmp}/none.mp4", "--out", "{tmp}/o.mp4"], "{tmp}/none.mp4: video"),
        (["stream", "--model", "{tmp}/none.ckpt", "--out", "{tmp}/o.mp4"], "{tmp}/none.ckpt:"),
        (["evaluate", "--reconstructions", "{tmp}/r.npz", *EVALUATE_REST], "{tmp}/"),
    ],
)
def test_the_program_turns_errors_into_one_line_naming_the_file(tmp_path, capsys, command, named):
    from neuralsight.cli import console

    argv = [part.format(tmp=tmp_path) for part in command]
    assert console(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"neuralsight: error: {named.format(tmp=tmp_path)}")
    assert "Traceback" not in err and "--debug" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises((OSError, ValueError)):
        console(["--debug", *argv])
