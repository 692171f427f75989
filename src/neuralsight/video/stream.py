"""Real-time streaming: frames to spikes to images, one frame at a time, timed.

`stream_video` plays the part of an eye and of a decoder watching a recording as it arrives:
every frame is encoded to spike counts by a `RetinaStream` (the simulated retina with its
temporal filter, `RetinaStream.push`), the counts join a `ContextWindow` of recent frame
bins, and the fast inference copy of a `VideoSID` (`optimize_for_inference`) decodes the
window into the frame. The loop writes one side-by-side MP4 frame per input frame:

    stimulus | spike raster (cells x recent frames) | rate map | reconstruction

where the rate map draws every cell's rate change from its baseline as a Gaussian blob at its
receptive field (ON cells bright, OFF cells dark): what the spikes say before decoding.

Timing: the *latency* of a frame is the time from handing the frame to the retina to holding
its reconstruction on the CPU (encode + decode, the real-time path); *fps* counts the whole
loop, drawing and MP4 writing included. Reading the source video is not timed (the frames
"arrive"). A few warm-up decodes of a blank window run before the clock starts.

`train_stream_model` trains a small `VideoSID` on synthetic eye-movement videos in seconds to
minutes, for the demo and tests, when no checkpoint is given.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.models.decoders.video import VideoSID
from neuralsight.simulate.retina import RetinaSimulator
from neuralsight.simulate.video import ContextWindow, rebuild_retina, simulate_video_dataset
from neuralsight.train import UNSAFE_CHECKPOINT, make_trainer
from neuralsight.video.io import VideoWriter, iter_frames, video_fps
from neuralsight.video.synthetic import eye_movement_video

TARGET_FPS = 30.0
TARGET_P99_MS = 33.0
PANEL_TITLES = ("stimulus", "spike raster", "rate map", "reconstruction")
_GAP = 4
_HEADER = 20
_MIN_DISPLAY = 192
_RASTER_FULL_COUNT = 3.0
_RATE_MAP_GAIN = 2.0
_WARMUP = 5


def train_stream_model(
    size: int = 64,
    channels: int = 1,
    n_cells: int = 300,
    context: int = 4,
    n_videos: int = 6,
    n_frames: int = 200,
    epochs: int = 2,
    base_channels: int = 16,
    depth: int = 3,
    frame_ms: float = 33.3,
    seed: int = 0,
    checkpoint: str | Path | None = None,
) -> VideoSID:
    """Train a `VideoSID` on synthetic eye-movement videos of the training photographs.

    ``n_videos`` videos of ``n_frames`` frames (seeds ``seed .. seed + n_videos - 1``, split
    ``train``) train it; one video of a held-out photograph is the test split. With
    ``checkpoint`` the trained model is saved there (reload with
    ``VideoSID.load_from_checkpoint``).

    Examples
    --------
    >>> model = train_stream_model(size=16, n_cells=20, n_videos=2, n_frames=20, epochs=1,
    ...                            base_channels=4, depth=2)  # doctest: +SKIP
    >>> model.context  # doctest: +SKIP
    4
    """
    videos = [
        eye_movement_video(
            n_frames, size, channels, seed=seed + i, split="train", frame_ms=frame_ms
        )
        for i in range(n_videos)
    ]
    test = [eye_movement_video(n_frames, size, channels, seed=seed, split="test")]
    dataset = simulate_video_dataset(
        videos, test, n_cells=n_cells, context=context, frame_ms=frame_ms, seed=seed
    )
    model = VideoSID.for_dataset(dataset, base_channels=base_channels, depth=depth)
    datamodule = NeuralDataModule(dataset=dataset, batch_size=32, seed=seed)
    trainer = make_trainer(max_epochs=epochs, progress=False, accelerator="cpu")
    trainer.fit(model, datamodule)
    if checkpoint is not None:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(checkpoint)
    return model.eval()


def load_stream_model(checkpoint: str | Path) -> VideoSID:
    """A `VideoSID` from a Lightning checkpoint, on the CPU, with a clear error otherwise."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file does not exist")
    try:
        model = VideoSID.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: refused: {UNSAFE_CHECKPOINT} ({error})") from error
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(
            f"{path}: is not a VideoSID checkpoint (a stream needs a model trained on "
            f"simulated video with its retina recorded): {error}"
        ) from error
    return model.eval()


class StreamRenderer:
    """Draws the side-by-side frame: stimulus | spike raster | rate map | reconstruction.

    Parameters
    ----------
    retina
        The retina (its receptive fields place the rate-map blobs).
    image_shape
        ``(channels, height, width)`` of the frames.
    scale
        Integer magnification of every panel (nearest neighbour).

    Examples
    --------
    >>> import numpy as np
    >>> from neuralsight.simulate.retina import RetinaSimulator
    >>> renderer = StreamRenderer(RetinaSimulator(16, n_cells=10), (1, 16, 16), scale=2)
    >>> frame = np.zeros((1, 16, 16), np.float32)
    >>> renderer.render(frame, np.zeros(10), np.zeros((1, 10)), frame).shape
    (52, 140, 3)
    """

    def __init__(self, retina: RetinaSimulator, image_shape: tuple[int, int, int], scale: int):
        _, height, width = image_shape
        self.scale = int(scale)
        self.height, self.width = height, width
        self.raster = np.zeros((retina.n_cells, width), dtype=np.float32)
        units = retina.units
        self.baseline = units["baseline_hz"].to_numpy(np.float32)
        self.max_rate = float(retina.max_rate_hz)
        sign = units["polarity"].to_numpy(np.float32)
        xs = -1.0 + (2.0 * np.arange(width) + 1.0) / width
        ys = -1.0 + (2.0 * np.arange(height) + 1.0) / height
        rf_x, rf_y = units["rf_x"].to_numpy(), units["rf_y"].to_numpy()
        sigma = units["rf_sigma"].to_numpy()
        blobs = np.exp(
            -(
                (xs[None, None, :] - rf_x[:, None, None]) ** 2
                + (ys[None, :, None] - rf_y[:, None, None]) ** 2
            )
            / (2.0 * sigma[:, None, None] ** 2)
        )
        self.rate_map = (sign[:, None, None] * blobs).reshape(len(units), -1).T.astype(np.float32)
        self.panel_h, self.panel_w = height * self.scale, width * self.scale
        self.canvas = np.full(
            (_HEADER + self.panel_h, 4 * self.panel_w + 3 * _GAP, 3), 40, dtype=np.uint8
        )
        self._draw_titles()

    def _draw_titles(self) -> None:
        from PIL import Image, ImageDraw

        header = Image.fromarray(self.canvas[:_HEADER])
        draw = ImageDraw.Draw(header)
        for index, title in enumerate(PANEL_TITLES):
            draw.text((index * (self.panel_w + _GAP) + 4, 4), title, fill=(230, 230, 230))
        self.canvas[:_HEADER] = np.asarray(header)

    def _place(self, index: int, grey_or_rgb: np.ndarray) -> None:
        """Put a ``[h, w]`` or ``[h, w, 3]`` float image in [0, 1] into panel ``index``."""
        pixels = np.rint(np.clip(grey_or_rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
        pixels = np.repeat(np.repeat(pixels, self.scale, axis=0), self.scale, axis=1)
        left = index * (self.panel_w + _GAP)
        target = self.canvas[_HEADER:, left : left + self.panel_w]
        target[...] = pixels[..., None] if pixels.ndim == 2 else pixels

    @staticmethod
    def _image(frame: np.ndarray) -> np.ndarray:
        return frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0)

    def render(
        self, stimulus: np.ndarray, counts: np.ndarray, rates: np.ndarray, recon: np.ndarray
    ) -> np.ndarray:
        """The ``[H, W, 3]`` uint8 canvas for one frame (reused: copy it to keep it)."""
        self.raster[:, :-1] = self.raster[:, 1:]
        self.raster[:, -1] = np.minimum(counts, _RASTER_FULL_COUNT) / _RASTER_FULL_COUNT
        rows = np.linspace(0, len(self.raster) - 1, self.height).round().astype(int)
        change = (np.asarray(rates, dtype=np.float32)[0] - self.baseline) / self.max_rate
        rate_map = 0.5 + _RATE_MAP_GAIN * (self.rate_map @ change).reshape(self.height, self.width)
        self._place(0, self._image(stimulus))
        self._place(1, self.raster[rows])
        self._place(2, rate_map)
        self._place(3, self._image(recon))
        return self.canvas


class _LiveView:
    """A matplotlib window showing the canvas, where a display exists."""

    def __init__(self, first: np.ndarray) -> None:
        import matplotlib.pyplot as plt

        plt.switch_backend("TkAgg")
        self._plt = plt
        self.figure, axis = plt.subplots(figsize=(first.shape[1] / 100, first.shape[0] / 100))
        axis.set_axis_off()
        self.image = axis.imshow(first)
        plt.show(block=False)

    def update(self, canvas: np.ndarray) -> None:
        self.image.set_data(canvas)
        self.figure.canvas.draw_idle()
        self.figure.canvas.flush_events()

    def close(self) -> None:
        self._plt.close(self.figure)


def has_display() -> bool:
    """Whether a window can be opened (an X11 or Wayland display; assumed off Linux)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _open_live_view(mode: str, first: np.ndarray) -> _LiveView | None:
    if mode == "off" or (mode == "auto" and not has_display()):
        return None
    try:
        return _LiveView(first)
    except Exception as error:  # no Tk, no display: the stream goes on without a window
        print(f"neuralsight stream: no live view ({error})", file=sys.stderr)
        return None


def stream_video(
    frames: Iterable[np.ndarray],
    model: VideoSID,
    out: str | Path,
    fps: float | None = None,
    device: str = "cpu",
    live: str = "off",
    seed: int | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Encode and decode ``frames`` one at a time, write the side-by-side MP4, time it all.

    Parameters
    ----------
    frames
        ``[C, H, W]`` frames in [0, 1] of the model's image shape, in order.
    model
        A `VideoSID` that records its retina.
    out
        The MP4 file to write (atomically).
    fps
        Frame rate of the MP4; default ``1000 / model.frame_ms``.
    device
        Where the decoder runs (``"cpu"``, ``"cuda"``); the retina runs on the CPU.
    live
        ``"on"``, ``"off"`` or ``"auto"`` (a window only where a display exists).
    seed
        Spike seed of the retina; ``None`` derives one from the retina's seed.
    threads
        Torch intra-op threads while streaming (restored afterwards); ``None`` leaves the
        setting alone. One frame is too little work to share: on a loaded 2-core machine two
        threads spin-waited each other down to 3.5 frames/s, one thread ran at 79.

    Returns
    -------
    dict
        ``out``, ``frames``, ``fps`` (whole loop), ``encode_decode_fps``,
        ``latency_ms_median``, ``latency_ms_p99``, ``latency_ms_max``, ``encode_ms_median``,
        ``decode_ms_median``, ``size``, ``n_cells``, ``context``, ``threads``, ``device``,
        ``meets_target`` (fps > 30 and p99 latency < 33 ms), ``load_average``.

    Examples
    --------
    >>> import tempfile
    >>> from neuralsight.simulate.video import simulate_video_dataset
    >>> videos = [np.random.default_rng(i).random((4, 1, 16, 16)) for i in range(2)]
    >>> dataset = simulate_video_dataset(videos[:1], videos[1:], n_cells=8)
    >>> model = VideoSID.for_dataset(dataset, base_channels=4, depth=2)
    >>> stats = stream_video(videos[0], model, Path(tempfile.mkdtemp()) / "stream.mp4")
    >>> stats["frames"], stats["context"]
    (4, 4)
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _stream(frames, model, out, fps, device, live, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _stream(
    frames: Iterable[np.ndarray],
    model: VideoSID,
    out: str | Path,
    fps: float | None,
    device: str,
    live: str,
    seed: int | None,
) -> dict[str, Any]:
    retina = rebuild_retina(model.retina_params)
    fast = model.optimize_for_inference().to(device)
    window = ContextWindow(model.n_units, model.context)
    encoder = retina.stream(frame_ms=model.frame_ms, seed=seed)
    channels, height, width = model.image_shape
    renderer = StreamRenderer(retina, model.image_shape, max(1, -(-_MIN_DISPLAY // height)))
    with torch.inference_mode():
        for _ in range(_WARMUP):
            fast(window.window.to(device)).cpu()
    encode_s, latency_s = [], []
    view = None
    started = time.perf_counter()
    with VideoWriter(out, fps=fps or 1000.0 / model.frame_ms) as writer:
        for index, frame in enumerate(frames):
            if frame.shape != (channels, height, width):
                raise ValueError(
                    f"frame {index} has shape {frame.shape}, the model decodes "
                    f"{(channels, height, width)}"
                )
            if index == 0:
                started = time.perf_counter()
            t0 = time.perf_counter()
            counts = encoder.push(frame)
            t1 = time.perf_counter()
            with torch.inference_mode():
                recon = fast(window.push(counts).to(device)).clamp_(0.0, 1.0).cpu().numpy()[0]
            t2 = time.perf_counter()
            encode_s.append(t1 - t0)
            latency_s.append(t2 - t0)
            canvas = renderer.render(frame, counts, encoder.rates, recon)
            writer.write(canvas)
            if index == 0:
                view = _open_live_view(live, canvas)
            elif view is not None:
                view.update(canvas)
        if not latency_s:
            raise ValueError("the video holds no frames")
        elapsed = time.perf_counter() - started
    if view is not None:
        view.close()
    latency_ms = 1000.0 * np.asarray(latency_s)
    encode_ms = 1000.0 * np.asarray(encode_s)
    stats: dict[str, Any] = {
        "out": str(writer.path),
        "frames": len(latency_s),
        "fps": round(len(latency_s) / elapsed, 1),
        "encode_decode_fps": round(1000.0 * len(latency_s) / float(latency_ms.sum()), 1),
        "latency_ms_median": round(float(np.median(latency_ms)), 2),
        "latency_ms_p99": round(float(np.percentile(latency_ms, 99)), 2),
        "latency_ms_max": round(float(latency_ms.max()), 2),
        "encode_ms_median": round(float(np.median(encode_ms)), 2),
        "decode_ms_median": round(float(np.median(latency_ms - encode_ms)), 2),
        "size": [height, width],
        "n_cells": retina.n_cells,
        "context": model.context,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    stats["meets_target"] = bool(
        stats["fps"] > TARGET_FPS and stats["latency_ms_p99"] < TARGET_P99_MS
    )
    return stats


def check_frame_source(video: str, max_frames: int | None = None) -> None:
    """Raise a clear error, before any work, for a missing video or a frame count below 1.

    Examples
    --------
    >>> check_frame_source("synthetic", max_frames=0)
    Traceback (most recent call last):
    ...
    ValueError: --frames (max_frames) must be at least 1, found 0
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--frames (max_frames) must be at least 1, found {max_frames}")
    if video != "synthetic" and not Path(video).exists():
        raise FileNotFoundError(f"{video}: video file or frame folder does not exist")


def source_frames(
    video: str,
    model: VideoSID,
    max_frames: int | None = None,
    seed: int = 0,
) -> tuple[Iterator[np.ndarray], float | None]:
    """Frames for `stream_video` and their frame rate: a file, a folder, or ``"synthetic"``.

    ``"synthetic"`` is `eye_movement_video` over a held-out photograph (``max_frames``
    frames, 300 by default) at the model's frame interval; files and folders are read lazily
    at the model's image size and channels.
    """
    check_frame_source(video, max_frames)
    channels, size, _ = model.image_shape
    if video == "synthetic":
        frames = eye_movement_video(
            max_frames or 300, size, channels, seed=seed, split="test", frame_ms=model.frame_ms
        )
        return iter(frames), None
    return iter_frames(video, size=size, channels=channels, max_frames=max_frames), video_fps(video)
