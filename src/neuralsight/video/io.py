"""Video in and out: any video file or folder of frames to float32 ``[T, C, H, W]``, and MP4.

Video files are decoded by imageio's ffmpeg plugin (the ``ffmpeg`` binary ships inside the
``imageio-ffmpeg`` wheel), folders of frames are read in name order with imageio. Frames come
out in the `NeuralDataset` stimulus layout: float32 ``[C, H, W]`` in [0, 1], grey
(``channels=1``, Rec. 709 luminance) or colour (``channels=3``), optionally centre-cropped to
a square and resized (bicubic with anti-aliasing, as `neuralsight.data.sources` does).

`iter_frames` yields frames one at a time (a long video never sits in memory), `read_video`
stacks them. `VideoWriter` writes H.264 MP4 frame by frame to a temporary name and renames it
into place when closed, so a reader never sees a half-written file; `write_video` writes a
whole array that way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np

from neuralsight.data.sources import (
    IMAGE_EXTENSIONS,
    as_unit_float,
    center_square,
    resize_images,
    to_channels,
)
from neuralsight.files import FileWriter, move_into_place, temporary_sibling

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")
DEFAULT_FPS = 30.0


def video_fps(path: str | Path, default: float = DEFAULT_FPS) -> float:
    """Frames per second of a video file (``default`` for a folder or when unknown).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "clip.mp4"
    >>> _ = write_video(path, np.zeros((3, 1, 16, 16), np.float32), fps=25)
    >>> video_fps(path)
    25.0
    """
    path = Path(path)
    if path.is_dir():
        return float(default)
    try:
        fps = iio.immeta(path, plugin="FFMPEG").get("fps")
    except (OSError, RuntimeError) as error:
        raise ValueError(f"{path}: cannot be decoded as a video ({error})") from error
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else float(default)


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise FileNotFoundError(
            f"{folder}: no frame images found; expected files ending in {IMAGE_EXTENSIONS}"
        )
    return files


def _raw_frames(path: Path) -> Iterator[np.ndarray]:
    """Decoded frames of a file or folder as ``[H, W]`` / ``[H, W, C]`` arrays."""
    if path.is_dir():
        for file in _frame_files(path):
            yield np.asarray(iio.imread(file, index=0))
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file or folder of frames does not exist")
    try:
        yield from iio.imiter(path, plugin="FFMPEG")
    except (OSError, RuntimeError) as error:
        raise ValueError(f"{path}: cannot be decoded as a video ({error})") from error


def prepare_frame(
    pixels: np.ndarray,
    size: int | None = None,
    channels: int = 1,
    crop: bool = True,
    source: str | Path = "frame",
) -> np.ndarray:
    """One decoded image (``[H, W]`` or ``[H, W, C]``, any dtype) to float32 ``[C, H, W]``.

    Parameters
    ----------
    pixels
        Image pixels; integers are scaled by their dtype's maximum, floats clipped to [0, 1].
    size
        Output side in pixels (the frame is made square first); ``None`` keeps the size.
    channels
        1 (luminance) or 3 (RGB; grey frames are repeated).
    crop
        Centre-crop to a square before resizing; ``False`` squeezes the whole frame.
    source
        Name used in error messages.

    Examples
    --------
    >>> import numpy as np
    >>> prepare_frame(np.zeros((48, 64, 3), np.uint8), size=32).shape
    (1, 32, 32)
    """
    if channels not in (1, 3):
        raise ValueError(f"parameter 'channels' must be 1 or 3, found {channels!r}")
    if size is not None and size < 2:
        raise ValueError(f"parameter 'size' must be >= 2 or None, found {size!r}")
    image = as_unit_float(np.asarray(pixels), Path(source))
    if size is not None:
        image = center_square(image) if crop else image
        image = resize_images(image[None], size)[0]
    return np.ascontiguousarray(to_channels(image[None], channels)[0])


def iter_frames(
    path: str | Path,
    size: int | None = None,
    channels: int = 1,
    crop: bool = True,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or a folder of frame images one at a time.

    Parameters
    ----------
    path
        A video file (anything ffmpeg decodes) or a folder of images (read in name order).
    size, channels, crop
        See `prepare_frame`.
    max_frames
        Stop after this many frames.

    Yields
    ------
    numpy.ndarray
        float32 ``[channels, H, W]`` in [0, 1].

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = write_video(Path(tempfile.mkdtemp()) / "clip.mp4", np.zeros((4, 3, 32, 48)))
    >>> [frame.shape for frame in iter_frames(path, size=16, max_frames=2)]
    [(1, 16, 16), (1, 16, 16)]
    """
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"parameter 'max_frames' must be >= 1 or None, found {max_frames!r}")
    for index, pixels in enumerate(_raw_frames(path)):
        if max_frames is not None and index >= max_frames:
            return
        yield prepare_frame(pixels, size, channels, crop, source=f"{path} (frame {index})")


def read_video(
    path: str | Path,
    size: int | None = None,
    channels: int = 1,
    crop: bool = True,
    max_frames: int | None = None,
) -> np.ndarray:
    """Read a video file or a folder of frames into float32 ``[T, C, H, W]`` in [0, 1].

    Parameters are those of `iter_frames`; without ``size`` every frame must have the size of
    the first.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = write_video(Path(tempfile.mkdtemp()) / "clip.mp4", np.zeros((5, 1, 32, 32)))
    >>> read_video(path, size=16, channels=3).shape
    (5, 3, 16, 16)
    """
    frames = list(iter_frames(path, size, channels, crop, max_frames))
    if not frames:
        raise ValueError(f"{path}: holds no frames")
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(
            f"{path}: frames differ in shape {sorted(shapes)}; pass 'size' to resize them"
        )
    return np.stack(frames)


def to_uint8_rgb(frame: np.ndarray) -> np.ndarray:
    """A ``[C, H, W]`` float frame in [0, 1] (C in 1, 3) to ``[H, W, 3]`` uint8.

    Examples
    --------
    >>> import numpy as np
    >>> to_uint8_rgb(np.ones((1, 2, 2), np.float32))[0, 0].tolist()
    [255, 255, 255]
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[0] not in (1, 3):
        raise ValueError(f"a frame must have shape [C, H, W] with C in (1, 3), found {frame.shape}")
    pixels = np.rint(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(pixels, (3, *pixels.shape[1:])).transpose(1, 2, 0))


class VideoWriter(FileWriter):
    """Write an H.264 MP4 frame by frame; the file appears under its name only when closed.

    Frames are ``[H, W, 3]`` uint8 or ``[C, H, W]`` floats in [0, 1]; all must have the same
    size. Odd sizes are padded with black to even (H.264 with yuv420p needs even sides).
    Use it as a context manager: on an exception the temporary file is removed.

    Parameters
    ----------
    path
        The MP4 file to write; its folder is created.
    fps
        Frame rate.
    quality
        ffmpeg quality, 0 (worst) to 10 (best).
    threads
        Encoder threads of the ffmpeg process; the default 1, with x264's ``veryfast``
        preset, keeps the encoder from competing with a real-time loop for the cores.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "out.mp4"
    >>> with VideoWriter(path, fps=10) as writer:
    ...     for _ in range(3):
    ...         writer.write(np.zeros((1, 16, 16), np.float32))
    >>> path.exists(), writer.n_frames
    (True, 3)
    """

    def __init__(
        self, path: str | Path, fps: float = DEFAULT_FPS, quality: float = 8, threads: int = 1
    ) -> None:
        if not fps > 0:
            raise ValueError(f"parameter 'fps' must be > 0, found {fps!r}")
        self.path = Path(path)
        self._tmp = temporary_sibling(self.path.with_suffix(self.path.suffix or ".mp4"))
        self._writer = iio2.get_writer(
            self._tmp,
            format="FFMPEG",
            mode="I",
            fps=float(fps),
            codec="libx264",
            quality=quality,
            pixelformat="yuv420p",
            macro_block_size=1,
            output_params=["-preset", "veryfast", "-threads", str(int(threads))],
        )
        self.n_frames = 0
        self._shape: tuple[int, ...] | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (``[H, W, 3]`` uint8 or ``[C, H, W]`` float in [0, 1])."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            frame = to_uint8_rgb(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"a uint8 frame must have shape [H, W, 3], found {frame.shape}")
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(
                f"{self.path}: frame {self.n_frames} has shape {frame.shape}, "
                f"the first had {self._shape}"
            )
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)))
        self._writer.append_data(frame)
        self.n_frames += 1

    def close(self) -> Path:
        """Finish the file and rename it into place; returns its path."""
        self._writer.close()
        if self.n_frames == 0:
            self._tmp.unlink(missing_ok=True)
            raise ValueError(f"{self.path}: no frames were written")
        return move_into_place(self._tmp, self.path)

    def discard(self) -> None:
        """Stop writing and remove the temporary file."""
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def write_video(path: str | Path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> Path:
    """Write ``[T, C, H, W]`` floats in [0, 1] (or ``[T, H, W, 3]`` uint8) to an MP4 atomically.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = write_video(Path(tempfile.mkdtemp()) / "clip.mp4", np.zeros((2, 1, 8, 8)))
    >>> path.suffix
    '.mp4'
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(
            f"'frames' must have shape [T, C, H, W] (floats) or [T, H, W, 3] (uint8), "
            f"found {frames.shape}"
        )
    with VideoWriter(path, fps=fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path
