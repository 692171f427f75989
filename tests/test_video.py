"""Video I/O, the synthetic eye-movement video, the video decoder and `neuralsight stream`."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from neuralsight.cli import main
from neuralsight.models.decoders.video import VideoSID
from neuralsight.simulate.video import (
    ContextWindow,
    rebuild_retina,
    simulate_video_dataset,
    stack_context,
)
from neuralsight.video.io import VideoWriter, read_video, video_fps, write_video
from neuralsight.video.synthetic import eye_movement_video

STREAM_KEYS = {
    "out",
    "frames",
    "fps",
    "encode_decode_fps",
    "latency_ms_median",
    "latency_ms_p99",
    "meets_target",
    "load_average",
}


def test_mp4_round_trip(tmp_path):
    frames = np.random.default_rng(0).random((7, 3, 24, 40)).astype(np.float32)
    path = write_video(tmp_path / "clip.mp4", frames, fps=12)
    decoded = iio.imread(path, plugin="FFMPEG")
    assert decoded.shape == (7, 24, 40, 3)
    assert video_fps(path) == 12.0
    assert read_video(path, size=16).shape == (7, 1, 16, 16)
    assert not list(tmp_path.glob(".clip*")), "temporary file left behind"


def test_odd_sizes_are_padded_and_failed_writes_leave_nothing(tmp_path):
    path = write_video(tmp_path / "odd.mp4", np.zeros((2, 1, 15, 9)))
    assert iio.imread(path, plugin="FFMPEG").shape == (2, 16, 10, 3)
    with (
        pytest.raises(ValueError, match="frame 1 has shape"),
        VideoWriter(tmp_path / "bad.mp4") as w,
    ):
        w.write(np.zeros((1, 8, 8)))
        w.write(np.zeros((1, 10, 8)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_folder_of_frames(tmp_path):
    for i in range(3):
        iio.imwrite(tmp_path / f"{i:03d}.png", np.full((10, 20, 3), 80 * i, np.uint8))
    video = read_video(tmp_path, size=8)
    assert video.shape == (3, 1, 8, 8)
    np.testing.assert_allclose(video[:, 0, 0, 0], [0.0, 80 / 255, 160 / 255], atol=1e-6)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_text("not a video")
    with pytest.raises(ValueError, match=r"bad\.mp4: cannot be decoded as a video"):
        read_video(tmp_path / "bad.mp4")


def test_synthetic_video_is_seeded():
    video = eye_movement_video(40, size=32, seed=3)
    assert video.shape == (40, 1, 32, 32) and video.dtype == np.float32
    assert 0.0 <= video.min() and video.max() <= 1.0
    np.testing.assert_array_equal(video, eye_movement_video(40, size=32, seed=3))
    assert not np.array_equal(video, eye_movement_video(40, size=32, seed=4))
    steps = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))
    assert steps.max() > 5 * np.median(steps), "expected saccades between drifting fixations"
    assert eye_movement_video(3, size=16, channels=3, photo="coffee").shape == (3, 3, 16, 16)


def test_context_window_matches_stack_context():
    counts = np.random.default_rng(0).poisson(2.0, size=(9, 5)).astype(np.float32)
    stacked = stack_context(counts, 3)
    window = ContextWindow(5, 3)
    for t in range(len(counts)):
        np.testing.assert_array_equal(window.push(counts[t])[0].numpy(), stacked[t])


def test_video_dataset_and_model():
    videos = [eye_movement_video(12, size=16, seed=s) for s in range(3)]
    ds = simulate_video_dataset(videos[:2], videos[2:], n_cells=12, context=3, seed=2)
    assert ds.responses.shape == (36, 12, 3) and ds.n_stimuli == 36
    assert ds.split.tolist().count("test") == 12
    model = VideoSID.for_dataset(ds, base_channels=4, depth=2)
    assert rebuild_retina(model.retina_params).params == ds.meta["parameters"]
    assert "n_inputs" not in model.hparams, "derived; would break load_from_checkpoint"
    assert model.eval()(torch.as_tensor(ds.responses[:2])).shape == (2, 1, 16, 16)


def _run_stream(capsys, argv):
    assert main(["stream", "--live", "off", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_stream_writes_playable_side_by_side_mp4(tmp_path, capsys):
    ckpt = tmp_path / "video_sid.ckpt"
    tiny = ["--size", "16", "--cells", "20", "--context", "2", "--train-videos", "2"]
    tiny += ["--train-frames", "20", "--epochs", "1", "--base-channels", "4"]
    stats = _run_stream(
        capsys,
        ["--out", str(tmp_path / "a.mp4"), "--frames", "12", *tiny, "--save-model", str(ckpt)],
    )
    assert STREAM_KEYS <= set(stats) and stats["frames"] == 12
    first = iio.imread(tmp_path / "a.mp4", plugin="FFMPEG")
    assert first.shape[0] == 12 and first.shape[1:3] == (212, 780)

    source = write_video(tmp_path / "in.mp4", eye_movement_video(9, size=40, seed=1), fps=20)
    stats = _run_stream(
        capsys, ["--video", str(source), "--model", str(ckpt), "--out", str(tmp_path / "b.mp4")]
    )
    assert stats["frames"] == 9 and stats["size"] == [16, 16]
    assert iio.imread(tmp_path / "b.mp4", plugin="FFMPEG").shape[0] == 9
    assert video_fps(tmp_path / "b.mp4") == 20.0
