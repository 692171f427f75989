"""Videos as recordings: a retina watching videos, answered frame by frame in context windows.

A retina watching a video answers each frame with spike counts shaped by the recent past
(the biphasic temporal filter of `neuralsight.simulate.retina`), so one frame's counts alone
say little about a moving scene. A video decoder (`neuralsight.models.decoders.video`)
sees, for frame ``t``, the counts of the ``context`` most recent frame bins
``t - context + 1, ..., t`` (oldest first, zeros before the first frame), stacked as the
``n_bins`` axis of a `NeuralDataset` trial:

- `stack_context` builds those windows for a whole recording, `ContextWindow` one frame at a
  time (the same windows, as spikes arrive);
- `simulate_video_dataset` turns videos into a training `NeuralDataset` (one trial per frame,
  the stimulus of each trial its frame), recording the retina's parameters;
- `rebuild_retina` rebuilds that retina from the parameters a dataset or a model recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from neuralsight import __version__
from neuralsight.data.dataset import NeuralDataset
from neuralsight.simulate.base import validate_images
from neuralsight.simulate.retina import (
    PRESETS,
    RESPONSE_UNITS,
    RF_UNITS,
    RetinaSimulator,
    retina_from_preset,
)

_SPIKE_STREAM = 1


def _check_context(context: int) -> None:
    if not (isinstance(context, int | np.integer) and context >= 1):
        raise ValueError(f"parameter 'context' must be an integer >= 1, found {context!r}")


def stack_context(counts: np.ndarray, context: int) -> np.ndarray:
    """Windows of the ``context`` most recent frame bins for every frame of a recording.

    Parameters
    ----------
    counts
        ``[T, n_units]`` responses per frame bin.
    context
        Frames per window.

    Returns
    -------
    numpy.ndarray
        float32 ``[T, n_units, context]``; ``[t, :, k]`` holds frame ``t - context + 1 + k``
        (the last bin is frame ``t``), zeros before the first frame.

    Examples
    --------
    >>> import numpy as np
    >>> stack_context(np.arange(3.0)[:, None], 2)[:, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 2.0]]
    """
    _check_context(context)
    counts = np.asarray(counts, dtype=np.float32)
    if counts.ndim != 2:
        raise ValueError(f"'counts' must have shape [T, n_units], found {counts.shape}")
    padded = np.concatenate([np.zeros((context - 1, counts.shape[1]), np.float32), counts])
    windows = np.lib.stride_tricks.sliding_window_view(padded, context, axis=0)
    return np.ascontiguousarray(windows)


class ContextWindow:
    """The window of `stack_context`, kept up to date one frame at a time.

    Parameters
    ----------
    n_units
        Units per frame bin.
    context
        Frames per window.

    Examples
    --------
    >>> import numpy as np
    >>> window = ContextWindow(n_units=1, context=2)
    >>> [window.push(np.array([v]))[0, 0].tolist() for v in (0.0, 1.0, 2.0)]
    [[0.0, 0.0], [0.0, 1.0], [1.0, 2.0]]
    """

    def __init__(self, n_units: int, context: int) -> None:
        _check_context(context)
        self.n_units = int(n_units)
        self.context = int(context)
        self.window = torch.zeros(1, self.n_units, self.context)

    def reset(self) -> None:
        """Back to zeros, as before the first frame."""
        self.window.zero_()

    def push(self, counts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Add one frame's ``[n_units]`` counts; returns the ``[1, n_units, context]`` window.

        The returned tensor is updated in place by the next push.
        """
        counts = torch.as_tensor(counts, dtype=torch.float32)
        if counts.shape != (self.n_units,):
            raise ValueError(
                f"counts must have shape ({self.n_units},) (n_units), found {tuple(counts.shape)}"
            )
        if self.context > 1:
            self.window[0, :, :-1] = self.window[0, :, 1:].clone()
        self.window[0, :, -1] = counts
        return self.window


def simulate_video_dataset(
    train_videos: Sequence[np.ndarray],
    test_videos: Sequence[np.ndarray],
    n_cells: int = 300,
    context: int = 4,
    frame_ms: float = 33.3,
    preset: str = "realistic",
    seed: int = 0,
    **overrides: Any,
) -> NeuralDataset:
    """Simulate a retina watching videos; one trial per frame with ``context`` frame bins.

    Each video is encoded on its own (the retina saw mean grey before it) through the
    temporal filter by `RetinaSimulator.simulate_video`, with an independent spike seed; the
    counts are stacked by `stack_context`.

    Parameters
    ----------
    train_videos, test_videos
        Lists of ``[T, C, H, W]`` videos in [0, 1], all of one ``C, H, W``.
    n_cells
        Number of ganglion cells.
    context
        Frame bins per trial (the current frame and the ``context - 1`` before it).
    frame_ms
        Frame interval in ms; counts are per frame.
    preset
        Retina preset (see `neuralsight.simulate.retina.PRESETS`).
    seed
        Seed of the mosaic and of the spikes.
    **overrides
        Any other `RetinaSimulator` parameter.

    Returns
    -------
    NeuralDataset
        ``responses [n_frames, n_cells, context]``, ``stimuli`` the frames (train videos then
        test videos), ``stimulus_id`` the frame index, bin edges from
        ``-(context - 1) * frame_ms`` to ``frame_ms``; ``meta`` records the retina parameters,
        ``frame_ms``, ``context``, the video lengths and the seed.

    Examples
    --------
    >>> import numpy as np
    >>> videos = [np.random.default_rng(i).random((6, 1, 16, 16)) for i in range(3)]
    >>> ds = simulate_video_dataset(videos[:2], videos[2:], n_cells=10, context=3)
    >>> ds.responses.shape, ds.split.tolist().count("test"), ds.bin_edges_ms.tolist()[0]
    ((18, 10, 3), 6, -66.6)
    """
    _check_context(context)
    if preset not in PRESETS:
        raise ValueError(f"parameter 'preset' must be one of {sorted(PRESETS)}, found {preset!r}")
    videos = _checked_videos(train_videos, test_videos)
    retina = retina_from_preset(videos[0].shape[2:], seed, preset, n_cells, **overrides)
    spike_seeds = np.random.SeedSequence([seed, _SPIKE_STREAM]).spawn(len(videos))
    responses = np.concatenate(
        [
            stack_context(retina.simulate_video(video, frame_ms, seed=spike_seed), context)
            for video, spike_seed in zip(videos, spike_seeds, strict=True)
        ]
    )
    lengths = [len(video) for video in videos]
    n_train_frames = sum(lengths[: len(train_videos)])
    split = np.where(np.arange(len(responses)) < n_train_frames, "train", "test")
    lengths_of = {"train": lengths[: len(train_videos)], "test": lengths[len(train_videos) :]}
    return NeuralDataset(
        responses=responses,
        stimuli=np.concatenate(videos),
        stimulus_id=np.arange(len(responses)),
        units=retina.units.copy(),
        bin_edges_ms=frame_ms * np.arange(-(context - 1), 2, dtype=np.float64),
        split=split,
        meta=_video_meta(retina, frame_ms, context, lengths_of),
    )


def _checked_videos(
    train_videos: Sequence[np.ndarray], test_videos: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The train then the test videos as float32, checked: at least one of each, one shape."""
    if not train_videos or not test_videos:
        raise ValueError("simulate_video_dataset needs at least one train and one test video")
    videos = [
        validate_images(video, f"{split}_videos[{i}]")
        for split, group in (("train", train_videos), ("test", test_videos))
        for i, video in enumerate(group)
    ]
    shapes = {video.shape[1:] for video in videos}
    if len(shapes) > 1:
        raise ValueError(f"all videos must share [C, H, W], found {sorted(shapes)}")
    return videos


def _video_meta(
    retina: RetinaSimulator, frame_ms: float, context: int, lengths: dict[str, list[int]]
) -> dict[str, Any]:
    """The provenance `simulate_video_dataset` records: the retina, frame interval, context."""
    return {
        "simulator": "retina-video",
        "preset": retina.preset,
        "seed": retina.seed,
        "neuralsight_version": __version__,
        "rf_units": RF_UNITS,
        "response_units": f"{RESPONSE_UNITS} per frame bin",
        "frame_ms": float(frame_ms),
        "context": int(context),
        "video_lengths": lengths,
        "trial_order": "one trial per frame, videos in order (train then test); "
        "bin k of frame t holds frame t - context + 1 + k, zeros before a video's first frame",
        "parameters": retina.params,
    }


def rebuild_retina(parameters: dict[str, Any] | None) -> RetinaSimulator:
    """The simulated retina a video decoder was trained on, from its recorded parameters.

    Parameters
    ----------
    parameters
        ``RetinaSimulator.params`` as recorded in a `simulate_video_dataset` result's
        ``meta["parameters"]`` and in a `VideoSID`'s ``retina`` hyperparameter; ``None``
        (a model trained on real recordings) is refused.

    Examples
    --------
    >>> videos = [np.random.default_rng(i).random((4, 1, 16, 16)) for i in range(2)]
    >>> ds = simulate_video_dataset(videos[:1], videos[1:], n_cells=8, context=2, seed=5)
    >>> rebuild_retina(ds.meta["parameters"]).seed
    5
    """
    if parameters is None:
        raise ValueError(
            "this model records no retina (hyperparameter 'retina' is None); it was "
            "trained on real recordings and cannot encode frames itself"
        )
    return RetinaSimulator(**parameters)
