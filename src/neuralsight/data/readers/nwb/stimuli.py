"""Stimulus pixels of an NWB session, from the file or from ``stimulus_path``.

`load_nwb_stimuli` reads the one ``ImageSeries`` / ``OpticalSeries`` / ``Images`` in
``nwb.stimulus`` or ``nwb.stimulus_template`` (or the one named; an ``IndexSeries`` is
followed to the images it indexes); `load_stimulus_path` reads a folder of images or a
``.npy`` stack instead. Either way the frames become float32 ``[n, C, H, W]`` in [0, 1],
and the rule that scaled them is returned beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pynwb import NWBFile
from pynwb.base import Images
from pynwb.image import ImageSeries, IndexSeries

from neuralsight.data.dataset import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


def load_nwb_stimuli(
    nwb: NWBFile, path: Path, stimulus: str | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The stimulus frames stored in the file, as float32 ``[n, C, H, W]`` in [0, 1], and their meta."""
    name, source = _find_stimulus(nwb, path, stimulus)
    where = f"{path}: stimulus '{name}'"
    if isinstance(source, Images):
        frames = _images_stack(source, where)
    elif source.external_file is not None:
        raise DatasetError(
            f"{where} keeps its frames in external files {list(source.external_file[:])}; "
            "expected frames stored in the file; pass them as stimulus_path"
        )
    else:
        frames = source.data
    stimuli, scaling = _frames_to_float(frames, where)
    return stimuli, {"stimulus_source": name, "stimulus_scaling": scaling}


def _find_stimulus(
    nwb: NWBFile, path: Path, stimulus: str | None
) -> tuple[str, ImageSeries | Images]:
    groups = {"stimulus": nwb.stimulus, "stimulus_template": nwb.stimulus_template}
    found = {
        f"{group}/{name}": obj for group, items in groups.items() for name, obj in items.items()
    }
    if stimulus is not None:
        for group in groups:
            if f"{group}/{stimulus}" in found:
                return _resolve_stimulus(f"{group}/{stimulus}", found[f"{group}/{stimulus}"], path)
        raise DatasetError(
            f"{path}: stimulus '{stimulus}' not found; expected it in nwb.stimulus or "
            f"nwb.stimulus_template, found {sorted(found)}"
        )
    candidates: dict[int, tuple[str, ImageSeries | Images]] = {}
    for key, obj in found.items():
        if isinstance(obj, ImageSeries | Images | IndexSeries):
            resolved = _resolve_stimulus(key, obj, path)
            candidates.setdefault(id(resolved[1]), resolved)
    if len(candidates) != 1:
        names = sorted(name for name, _ in candidates.values())
        raise DatasetError(
            f"{path}: expected exactly one ImageSeries, OpticalSeries or Images in "
            f"nwb.stimulus / nwb.stimulus_template, found {len(candidates)} {names} among "
            f"{sorted(found)}; name one with stimulus, or give stimulus_path"
        )
    return next(iter(candidates.values()))


def _resolve_stimulus(key: str, obj: Any, path: Path) -> tuple[str, ImageSeries | Images]:
    if isinstance(obj, IndexSeries):
        target = obj.indexed_images or obj.indexed_timeseries
        return f"{key} -> {target.name}", target
    if isinstance(obj, ImageSeries | Images):
        return key, obj
    raise DatasetError(
        f"{path}: stimulus '{key}' is a {type(obj).__name__}; expected an ImageSeries, "
        "OpticalSeries, Images or IndexSeries"
    )


def _images_stack(images: Images, where: str) -> np.ndarray:
    """The images of an ``Images`` container in ``order_of_images`` (else by name)."""
    if images.order_of_images is not None:
        ordered = list(images.order_of_images.data)
    else:
        ordered = [images.images[name] for name in sorted(images.images)]
    arrays = [np.asarray(image.data[:]) for image in ordered]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DatasetError(f"{where}: images must share one shape, found shapes {sorted(shapes)}")
    return np.stack(arrays)


def load_stimulus_path(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The frames of a folder of images or a ``.npy`` array, as float32 ``[n, C, H, W]``, and their meta."""
    if path.is_dir():
        frames = _image_folder(path)
    elif path.suffix.lower() == ".npy" and path.is_file():
        frames = np.load(path, mmap_mode="r")
    else:
        raise DatasetError(
            f"{path}: stimulus_path must be a folder of images or a .npy array, "
            f"found {'a ' + path.suffix + ' file' if path.exists() else 'nothing'}"
        )
    stimuli, scaling = _frames_to_float(frames, f"{path}")
    return stimuli, {"stimulus_source": str(path), "stimulus_scaling": scaling}


def _image_folder(folder: Path) -> np.ndarray:
    """Images of ``folder`` in sorted file-name order, ``[n, H, W]`` or ``[n, H, W, 3]``."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(
            f"{folder}: stimulus_path folder holds no images; expected files ending in "
            f"{list(IMAGE_SUFFIXES)}"
        )
    arrays = []
    for file in files:
        with Image.open(file) as image:
            gray = image.mode in ("1", "L", "LA", "I", "I;16", "F")
            arrays.append(np.asarray(image.convert("L" if gray else "RGB")))
        if arrays[-1].shape[:2] != arrays[0].shape[:2]:
            raise DatasetError(
                f"{file}: image must have the size of {files[0].name}, "
                f"{arrays[0].shape[:2]} (height, width), found {arrays[-1].shape[:2]}"
            )
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
    return np.stack(arrays)


def _frames_to_float(frames: Any, where: str, chunk: int = 256) -> tuple[np.ndarray, str]:
    """``[n, H, W]`` / ``[n, H, W, C]`` frames to float32 ``[n, C, H, W]`` in [0, 1]."""
    shape = tuple(int(s) for s in frames.shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        raise DatasetError(
            f"{where}: frames must have shape [n, H, W] or [n, H, W, C] with C in 1, 3, 4, "
            f"found shape {shape}"
        )
    channels = 1 if len(shape) == 3 or shape[3] == 1 else 3
    offset, scale, rule = _intensity_scaling(frames, where, chunk)
    stimuli = np.empty((shape[0], channels, shape[1], shape[2]), dtype=np.float32)
    for start in range(0, shape[0], chunk):
        block = np.asarray(frames[start : start + chunk], dtype=np.float64)
        block = block[..., None] if block.ndim == 3 else block[..., :channels]
        block = np.clip((block - offset) / scale, 0.0, 1.0)
        stimuli[start : start + chunk] = block.transpose(0, 3, 1, 2)
    return stimuli, rule


def _intensity_scaling(frames: Any, where: str, chunk: int) -> tuple[float, float, str]:
    """``(offset, scale, rule)`` mapping the frames' values into [0, 1]."""
    dtype = np.dtype(frames.dtype)
    if dtype == np.uint8:
        return 0.0, 255.0, "uint8 / 255"
    if dtype == np.bool_:
        return 0.0, 1.0, "bool as 0 / 1"
    low, high = np.inf, -np.inf
    for start in range(0, int(frames.shape[0]), chunk):
        block = np.asarray(frames[start : start + chunk], dtype=np.float64)
        if not np.all(np.isfinite(block)):
            raise DatasetError(f"{where}: frames hold NaN or infinite values")
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0, "unchanged (already in [0, 1])"
    if low >= 0.0 and high <= 255.0:
        return 0.0, 255.0, "values in [0, 255] / 255"
    return low, (high - low) or 1.0, f"min-max rescaled from [{low:.6g}, {high:.6g}]"
