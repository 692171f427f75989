"""Video decoding: SID applied frame by frame to a window of recent response bins.

A retina watching a video answers each frame with spike counts shaped by the recent past
(the biphasic temporal filter of `neuralsight.simulate.retina`), so one frame's counts alone
say little about a moving scene. The video decoder sees, for frame ``t``, the counts of the
``context`` most recent frame bins ``t - context + 1, ..., t`` (oldest first, zeros before the
first frame), stacked as the ``n_bins`` axis of a `NeuralDataset` trial and flattened into the
decoder's input, and reconstructs frame ``t``:

- `stack_context` builds those windows for a whole recording, `ContextWindow` one frame at a
  time (the same windows, as spikes arrive);
- `simulate_video_dataset` turns videos into a training `NeuralDataset` (one trial per frame,
  the stimulus of each trial its frame);
- `VideoSID` is `ImprovedSID` over ``n_units * context`` inputs that also records the retina
  and the frame interval it was trained on, so a checkpoint alone can drive a stream. The
  published `SID` trains on the same data set with ``n_inputs = n_units * context``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from neuralsight import __version__
from neuralsight.data.dataset import NeuralDataset
from neuralsight.models.decoders.sid import ImprovedSID
from neuralsight.models.registry import DECODERS
from neuralsight.simulate.retina import (
    PRESETS,
    RESPONSE_UNITS,
    RF_UNITS,
    RetinaSimulator,
    validate_images,
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
    retina = RetinaSimulator(
        image_size=videos[0].shape[2:],
        n_cells=n_cells,
        seed=seed,
        **{**PRESETS[preset], **overrides},
    )
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
    meta = {
        "simulator": "retina-video",
        "preset": preset,
        "seed": int(seed),
        "neuralsight_version": __version__,
        "rf_units": RF_UNITS,
        "response_units": f"{RESPONSE_UNITS} per frame bin",
        "frame_ms": float(frame_ms),
        "context": int(context),
        "video_lengths": {
            "train": lengths[: len(train_videos)],
            "test": lengths[len(train_videos) :],
        },
        "trial_order": "one trial per frame, videos in order (train then test); "
        "bin k of frame t holds frame t - context + 1 + k, zeros before a video's first frame",
        "parameters": retina.params,
    }
    return NeuralDataset(
        responses=responses,
        stimuli=np.concatenate(videos),
        stimulus_id=np.arange(len(responses)),
        units=retina.units.copy(),
        bin_edges_ms=frame_ms * np.arange(-(context - 1), 2, dtype=np.float64),
        split=split,
        meta=meta,
    )


@DECODERS.register("video_sid")
class VideoSID(ImprovedSID):
    """`ImprovedSID` over a window of ``context`` frame bins, aware of its retina.

    Parameters
    ----------
    n_units
        Units per frame bin (``n_inputs = n_units * context``).
    image_shape
        ``(channels, height, width)`` of the frames.
    context
        Frame bins per input window (see `stack_context`).
    retina
        ``RetinaSimulator.params`` of the simulated retina the model was trained on
        (``None`` for real recordings); `make_retina` rebuilds it.
    frame_ms
        Frame interval of the training videos in ms.
    **kwargs
        Any other `ImprovedSID` parameter (``base_channels``, ``depth``, ``lr``, ...).

    Examples
    --------
    >>> import torch
    >>> model = VideoSID(n_units=10, image_shape=(1, 16, 16), context=3, base_channels=4, depth=2)
    >>> model.eval()(torch.rand(2, 10, 3)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self,
        n_units: int,
        image_shape: tuple[int, int, int],
        context: int = 4,
        retina: dict[str, Any] | None = None,
        frame_ms: float = 33.3,
        **kwargs: Any,
    ) -> None:
        _check_context(context)
        super().__init__(n_inputs=int(n_units) * int(context), image_shape=image_shape, **kwargs)
        self.save_hyperparameters()
        del self.hparams["n_inputs"]  # derived from n_units and context
        self.n_units = int(n_units)
        self.context = int(context)
        self.frame_ms = float(frame_ms)
        self.retina_params = retina

    @classmethod
    def for_dataset(cls, dataset: NeuralDataset, **kwargs: Any) -> VideoSID:
        """A model sized for a `simulate_video_dataset` result, with its retina recorded.

        Examples
        --------
        >>> import numpy as np
        >>> videos = [np.random.default_rng(i).random((4, 1, 16, 16)) for i in range(2)]
        >>> ds = simulate_video_dataset(videos[:1], videos[1:], n_cells=8, context=2)
        >>> VideoSID.for_dataset(ds, base_channels=4, depth=2).n_inputs
        16
        """
        return cls(
            n_units=dataset.n_units,
            image_shape=dataset.image_shape,
            context=dataset.n_bins,
            retina=dataset.meta.get("parameters"),
            frame_ms=float(dataset.meta.get("frame_ms", 33.3)),
            **kwargs,
        )

    def make_retina(self) -> RetinaSimulator:
        """The simulated retina the model was trained on.

        Examples
        --------
        >>> import numpy as np
        >>> videos = [np.random.default_rng(i).random((4, 1, 16, 16)) for i in range(2)]
        >>> ds = simulate_video_dataset(videos[:1], videos[1:], n_cells=8, context=2, seed=5)
        >>> VideoSID.for_dataset(ds, base_channels=4, depth=2).make_retina().seed
        5
        """
        if self.retina_params is None:
            raise ValueError(
                "this VideoSID records no retina (hyperparameter 'retina' is None); it was "
                "trained on real recordings and cannot encode frames itself"
            )
        return RetinaSimulator(**self.retina_params)
