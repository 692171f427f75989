"""A seeded synthetic "eye movement" video: fixations, drift and saccades over a photograph.

The eye looks at one of scikit-image's bundled natural photographs (the same files as the
``natural`` source of `neuralsight.data.sources`, never downloaded) through a square window.
The gaze path alternates

- **fixations** of a random duration (gamma distributed, mean ``fixation_ms``) during which
  the gaze drifts as a slow random walk (``drift_px`` pixels of the output per frame), and
- **saccades**: a fast, straight jump to a new random fixation point, lasting
  ``saccade_ms`` (at least one frame).

Each frame samples the window at the gaze position with bilinear interpolation (sub-pixel
drift is smooth). The photograph is first resized so its shorter side is ``field`` times the
output ``size``: the eye explores a scene ``field`` windows wide. The same seed always gives
the same video; the train and test splits use disjoint photographs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from neuralsight.data.sources import (
    NATURAL_PHOTO_FILES,
    check_source_args,
    load_photo,
    natural_photos,
    source_rng,
    to_channels,
)


def gaze_path(
    n_frames: int,
    extent: float,
    rng: np.random.Generator,
    frame_ms: float = 33.3,
    fixation_ms: float = 300.0,
    saccade_ms: float = 40.0,
    drift_px: float = 0.3,
) -> np.ndarray:
    """Gaze positions ``[n_frames, 2]`` (x, y) in pixels within ``[0, extent]``.

    Parameters
    ----------
    n_frames
        Number of frames.
    extent
        Largest coordinate of the window's top-left corner on both axes.
    rng
        Random generator.
    frame_ms, fixation_ms, saccade_ms
        Frame interval, mean fixation duration and saccade duration in ms.
    drift_px
        Standard deviation of the drift step per frame, in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> path = gaze_path(50, 100.0, np.random.default_rng(0))
    >>> path.shape, bool(path.min() >= 0 and path.max() <= 100)
    ((50, 2), True)
    """
    positions = np.empty((n_frames, 2))
    current = rng.uniform(0.0, extent, size=2)
    saccade_frames = max(1, round(saccade_ms / frame_ms))
    frame = 0
    while frame < n_frames:
        fixation = max(1, round(rng.gamma(4.0, fixation_ms / 4.0) / frame_ms))
        for _ in range(min(fixation, n_frames - frame)):
            current = np.clip(current + rng.normal(0.0, drift_px, size=2), 0.0, extent)
            positions[frame] = current
            frame += 1
        target = rng.uniform(0.0, extent, size=2)
        for step in range(1, saccade_frames + 1):
            if frame >= n_frames:
                break
            positions[frame] = current + (target - current) * step / saccade_frames
            frame += 1
        current = target
    return positions


def eye_movement_video(
    n_frames: int = 150,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    split: str = "test",
    photo: str | None = None,
    field: float = 3.0,
    frame_ms: float = 33.3,
    fixation_ms: float = 300.0,
    saccade_ms: float = 40.0,
    drift_px: float = 0.3,
) -> np.ndarray:
    """Frames of an eye scanning a natural photograph with fixations, drift and saccades.

    Parameters
    ----------
    n_frames
        Number of frames, at least 1.
    size
        Side of the square frames in pixels.
    channels
        1 (grey) or 3 (colour; only colour photographs are then drawn).
    seed
        Seed of the photograph choice and of the gaze path.
    split
        ``"train"`` or ``"test"``: the photograph pool (see `neuralsight.data.sources`).
    photo
        A name in `neuralsight.data.sources.NATURAL_PHOTO_FILES`; ``None`` draws one from the
        split's pool.
    field
        Shorter side of the photograph, in windows (at least 1).
    frame_ms, fixation_ms, saccade_ms, drift_px
        See `gaze_path`.

    Returns
    -------
    numpy.ndarray
        float32 ``[n_frames, channels, size, size]`` in [0, 1].

    Examples
    --------
    >>> video = eye_movement_video(20, size=32, seed=1)
    >>> video.shape, video.dtype
    ((20, 1, 32, 32), dtype('float32'))
    >>> bool(np.array_equal(video, eye_movement_video(20, size=32, seed=1)))
    True
    """
    check_source_args(n_frames, size, channels, seed, split)
    if not field >= 1:
        raise ValueError(f"parameter 'field' must be >= 1, found {field!r}")
    rng = source_rng(seed, "eye_movements", split)
    if photo is None:
        pool = natural_photos(channels, split)
        photo = pool[int(rng.integers(len(pool)))]
    elif photo not in NATURAL_PHOTO_FILES:
        raise ValueError(
            f"parameter 'photo' must be one of {sorted(NATURAL_PHOTO_FILES)}, found {photo!r}"
        )
    scene = load_photo(photo)
    height, width = scene.shape[-2:]
    scale = field * size / min(height, width)
    scene_h, scene_w = max(size, round(height * scale)), max(size, round(width * scale))
    scene = to_channels(_resize_rect(scene, scene_h, scene_w), channels)
    extent = min(scene_h, scene_w) - size
    path = gaze_path(n_frames, extent, rng, frame_ms, fixation_ms, saccade_ms, drift_px)
    return _sample_windows(scene, path, size)


def _resize_rect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[c, h, w]`` to ``[1, c, height, width]``: bicubic, anti-aliased, clipped to [0, 1]."""
    tensor = torch.tensor(image[None], dtype=torch.float32)
    resized = F.interpolate(
        tensor, size=(height, width), mode="bicubic", antialias=True, align_corners=False
    )
    return resized.clamp_(0.0, 1.0).numpy()


def _sample_windows(scene: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Bilinear ``size`` x ``size`` windows of ``[1, c, H, W]`` at top-left ``corners``."""
    _, channels, height, width = scene.shape
    offsets = torch.arange(size, dtype=torch.float64) + 0.5
    corners_t = torch.from_numpy(corners)
    x = (corners_t[:, None, 0] + offsets) * (2.0 / width) - 1.0
    y = (corners_t[:, None, 1] + offsets) * (2.0 / height) - 1.0
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)
    source = torch.from_numpy(scene).expand(len(corners), channels, height, width)
    frames = F.grid_sample(
        source, grid.float(), mode="bilinear", padding_mode="border", align_corners=False
    )
    return np.ascontiguousarray(frames.clamp_(0.0, 1.0).numpy(), dtype=np.float32)
