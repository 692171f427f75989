"""Helpers shared by the readers: MATLAB files, image folders and zips, pixels, errors.

- `MatFile` opens a MATLAB ``.mat`` file of either version, v5 (read by `scipy.io.loadmat`) or
  v7.3 (HDF5, read lazily by `h5py`), and always answers in MATLAB's orientation. MATLAB is
  column-major and HDF5 row-major, so a v7.3 file stores a MATLAB ``[1024 x 22248]`` matrix as
  an HDF5 dataset of shape ``(22248, 1024)``; `MatFile` reverses the axes back. The version is
  recognised from the file's content (the HDF5 signature), not from MATLAB's header text or
  attributes, so files written by other tools read the same.
- `ImageCollection` lists the images of a folder or a zip archive in natural sorted order, and
  `load_images` reads images into one ``[n, channels, height, width]`` float32 array in [0, 1],
  centre-cropped and resized when asked.
- `to_unit_range`, `unflatten_images` and `deduplicate_stimuli` turn stored pixels into the
  `NeuralDataset` convention; `read_paired_mat` reads the train/test matrix layout shared by
  the SID and fMRI files.
- `field_error` and `missing_field` build `DatasetError` messages that name the file, the field,
  what was expected and what was found.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import h5py
import numpy as np
import scipy.io
from PIL import Image, UnidentifiedImageError
from rich.progress import track

from neuralsight.data.dataset import DatasetError, NeuralDataset

T = TypeVar("T")
PathLike = str | os.PathLike

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_MATLAB_INTERNAL = ("#refs#", "#subsystem#")


def field_error(source: PathLike, field: str, expected: str, found: object) -> DatasetError:
    """A `DatasetError` naming the file, the field, what was expected and what was found.

    Examples
    --------
    >>> str(field_error("a.mat", "spkTrn", "must be 2-D [n, cells]", "shape (3,)"))
    "a.mat: field 'spkTrn' must be 2-D [n, cells], found shape (3,)"
    """
    return DatasetError(f"{source}: field '{field}' {expected}, found {found}")


def missing_field(source: PathLike, field: str, found: Iterable[str]) -> DatasetError:
    """A `DatasetError` saying that ``field`` is absent and listing the fields present."""
    return DatasetError(f"{source}: field '{field}' is missing; found fields {sorted(found)}")


def expect_paths(
    paths: Sequence[PathLike] | PathLike, names: Sequence[str], fmt: str
) -> list[Path]:
    """Check that a reader got one path per entry of ``names``; return them as `Path` objects.

    A single path given as a string is accepted when one path is expected.

    Examples
    --------
    >>> expect_paths("data.npz", ["data.npz"], "npz")
    [PosixPath('data.npz')]
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if len(paths) != len(names):
        raise ValueError(
            f"format '{fmt}' reads {len(names)} path(s) ({', '.join(names)}), got {len(paths)}: "
            f"{[str(p) for p in paths]}"
        )
    return [Path(p) for p in paths]


def open_npz(path: Path, allow_pickle: bool = False) -> Any:
    """``np.load`` of a ``.npz`` archive; anything else (empty, truncated, a ``.mat``) is a
    `DatasetError` naming the file and what was found."""
    try:
        npz = np.load(require_file(path), allow_pickle=allow_pickle)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(
            f"{path}: expected a NumPy .npz archive (numpy.savez), found "
            f"{'an empty file' if path.stat().st_size == 0 else 'something else'} ({err})"
        ) from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: expected a NumPy .npz archive, found a single .npy array")
    return npz


def load_npy(path: Path, field: str) -> np.ndarray:
    """``np.load`` of one ``.npy`` array (no pickles); an empty, truncated or foreign file is
    a `DatasetError` naming the file and the field it should hold."""
    try:
        values = np.load(require_file(path), allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:
        raise field_error(path, field, "must be a whole numeric .npy array", err) from None
    if not isinstance(values, np.ndarray):
        raise field_error(path, field, "must be one .npy array", "a .npz archive")
    return values


def require_file(path: Path) -> Path:
    """Raise `FileNotFoundError` naming ``path`` unless it is an existing file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def progress(
    items: Iterable[T], description: str, total: int | None = None, enabled: bool = True
) -> Iterable[T]:
    """Iterate over ``items`` with a `rich` progress bar (nothing is shown when disabled)."""
    return track(items, description=description, total=total, disable=not enabled)


class MatFile:
    """A MATLAB ``.mat`` file, v5 or v7.3, whose arrays come back in MATLAB's orientation.

    v5 files are read whole by `scipy.io.loadmat`; v7.3 (HDF5) files stay open and each array
    is read when asked for, so `read` can take a block of a variable larger than memory.
    Struct fields are named ``"struct/field"``.

    Examples
    --------
    >>> import numpy as np, scipy.io, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.mat")
    >>> scipy.io.savemat(path, {"spk": np.zeros((5, 3))})
    >>> with MatFile(path) as mat:
    ...     mat.version, mat.shape("spk")
    ('5', (5, 3))
    """

    def __init__(self, path: PathLike) -> None:
        self.path = require_file(Path(path))
        self._h5: h5py.File | None = None
        self._vars: dict[str, Any] = {}
        try:
            if h5py.is_hdf5(self.path):
                self._h5 = h5py.File(self.path, "r")
            else:
                self._vars = scipy.io.loadmat(self.path, squeeze_me=False)
        except (ValueError, TypeError, scipy.io.matlab.MatReadError) as err:
            raise DatasetError(
                f"{self.path}: expected a MATLAB .mat file (v5 or v7.3/HDF5), "
                f"found a file that neither reader accepts ({err})"
            ) from err
        except (OSError, EOFError) as err:
            raise DatasetError(
                f"{self.path}: expected a whole MATLAB .mat file (v5 or v7.3/HDF5), found a "
                f"truncated or corrupt one ({err})"
            ) from err

    def __enter__(self) -> MatFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HDF5 file (v7.3); nothing to do for v5."""
        if self._h5 is not None:
            self._h5.close()

    @property
    def version(self) -> str:
        """``"7.3"`` for HDF5-based files, ``"5"`` otherwise."""
        return "7.3" if self._h5 is not None else "5"

    def names(self) -> list[str]:
        """The variables stored in the file (MATLAB's internal groups left out)."""
        if self._h5 is not None:
            return [n for n in self._h5 if n not in _MATLAB_INTERNAL]
        return [n for n in self._vars if not n.startswith("__")]

    def __contains__(self, name: str) -> bool:
        try:
            self._node(name)
        except KeyError:
            return False
        return True

    def _node(self, name: str) -> Any:
        if self._h5 is not None:
            return self._h5[name]
        top, _, field = name.partition("/")
        value = self._vars[top]
        if field:
            if value.dtype.names is None or field not in value.dtype.names:
                raise KeyError(name)
            value = value[field]
        return value

    def _require(self, name: str) -> Any:
        try:
            return self._node(name)
        except KeyError:
            raise missing_field(self.path, name, self.names()) from None

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of variable ``name`` as MATLAB sees it."""
        node = self._require(name)
        shape = tuple(int(s) for s in node.shape)
        return shape[::-1] if self._h5 is not None else shape

    def array(self, name: str) -> np.ndarray:
        """Variable ``name`` as a NumPy array in MATLAB's orientation."""
        return self.read(name, ())

    def read(self, name: str, index: tuple[slice | int, ...]) -> np.ndarray:
        """A block of variable ``name``; ``index`` is given in MATLAB's axis order.

        For v7.3 files only the block is read from disk, which is how large variables are
        streamed. ``index`` may be shorter than the number of axes (the rest are whole).
        """
        node = self._require(name)
        if self._h5 is None:
            return np.asarray(node[index])
        if not isinstance(node, h5py.Dataset):
            raise field_error(self.path, name, "must be a numeric array", "a struct (HDF5 group)")
        full = tuple(index) + (slice(None),) * (len(node.shape) - len(index))
        try:
            return np.asarray(node[full[::-1]]).T
        except OSError as err:
            raise field_error(
                self.path, name, "must be readable", f"a truncated or corrupt block ({err})"
            ) from err

    def strings(self, name: str) -> list[str]:
        """A cell array (or struct-array field) of strings, in MATLAB's linear order.

        v7.3 files keep each string of a cell in its own dataset, reached through HDF5 object
        references; those are followed here.
        """
        node = self._require(name)
        if self._h5 is not None:
            return self._h5_strings(node)
        try:
            return _v5_strings(node)
        except TypeError as err:
            raise field_error(self.path, name, "must hold strings", str(err)) from None

    def _h5_strings(self, node: Any) -> list[str]:
        if isinstance(node, h5py.Group):
            raise field_error(self.path, node.name, "must hold strings", "a struct (HDF5 group)")
        if node.attrs.get("MATLAB_empty", 0):
            return [""]
        if h5py.check_ref_dtype(node.dtype) is not None:
            refs = np.asarray(node[()]).ravel(order="C")
            assert self._h5 is not None, "object references exist only in v7.3 (HDF5) files"
            return [text for ref in refs for text in self._h5_strings(self._h5[ref])]
        if h5py.check_string_dtype(node.dtype) is not None:
            return [str(s) for s in node.asstr()[()].ravel()]
        codes = np.asarray(node[()])
        if codes.dtype.kind not in "ui":
            raise field_error(self.path, node.name, "must hold character codes", str(codes.dtype))
        rows = np.atleast_2d(codes.T)
        return ["".join(map(chr, row)) for row in rows]

    def struct(self, name: str) -> dict[str, Any]:
        """The numeric and text fields of a scalar struct, as JSON-ready values.

        Fields of other kinds (nested structs, cells of non-strings) are left out. v7.3 text
        fields are recognised by MATLAB's ``MATLAB_class = "char"`` attribute.
        """
        node = self._require(name)
        fields: dict[str, Any] = {}
        if self._h5 is not None:
            for key, child in node.items():
                if isinstance(child, h5py.Dataset) and child.dtype.kind in "uif":
                    if _attr_text(child, "MATLAB_class") == "char":
                        fields[key] = "\n".join(self._h5_strings(child))
                    else:
                        fields[key] = _json_value(np.asarray(child[()]).T)
            return fields
        if not node.size:
            return fields  # an empty struct array: field names but no values
        record = node.ravel()[0]
        for key in node.dtype.names or ():
            value = record[key]
            if isinstance(value, np.ndarray) and value.dtype.kind == "U":
                fields[key] = "\n".join(str(v) for v in value.ravel())
            elif isinstance(value, np.ndarray) and value.dtype.kind in "buif":
                fields[key] = _json_value(value)
        return fields


def _attr_text(node: h5py.Dataset, key: str) -> str:
    value = node.attrs.get(key, b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_value(value: np.ndarray) -> Any:
    squeezed = np.squeeze(value)
    return squeezed.item() if squeezed.ndim == 0 else squeezed.tolist()


def _v5_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return [str(s) for s in array.ravel(order="F")] or [""]
    if array.dtype.kind == "O":
        return [text for item in array.ravel(order="F") for text in _v5_strings(item)]
    raise TypeError(f"an array of dtype {array.dtype}")


def to_unit_range(pixels: np.ndarray, source: PathLike, field: str) -> np.ndarray:
    """Pixels as float32 in [0, 1], by one rule for every reader.

    - integer (e.g. uint8) pixels are 0-255 and are divided by 255;
    - boolean pixels become 0 and 1;
    - floating-point pixels already within [0, 1] are kept;
    - floating-point pixels within [0, 255] with a maximum above 1 are divided by 255;
    - anything else (negative values, values above 255, NaN) is an error.

    Examples
    --------
    >>> to_unit_range(np.array([0, 255], np.uint8), "f.mat", "stim").tolist()
    [0.0, 1.0]
    >>> to_unit_range(np.array([0.0, 0.5]), "f.mat", "stim").tolist()
    [0.0, 0.5]
    """
    values = np.asarray(pixels)
    if values.dtype.kind == "b" or values.size == 0:
        return values.astype(np.float32)
    if values.dtype.kind not in "uif":
        raise field_error(source, field, "must hold numeric pixels", f"dtype {values.dtype}")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise field_error(source, field, "must hold finite pixel values", "NaN or infinity")
    low, high = float(values.min()), float(values.max())
    if values.dtype.kind in "ui":
        if low < 0 or high > 255:
            raise field_error(
                source, field, "must hold integer pixels in 0-255", f"values in [{low}, {high}]"
            )
        return (values / np.float32(255)).astype(np.float32)
    if low >= 0 and high <= 1:
        return values.astype(np.float32)
    if low >= 0 and high <= 255:
        return (values / 255.0).astype(np.float32)
    raise field_error(
        source,
        field,
        "must hold float pixels in [0, 1] or [0, 255]",
        f"values in [{low:.4g}, {high:.4g}]",
    )


def unflatten_images(
    pixels: np.ndarray,
    source: PathLike,
    field: str,
    image_shape: tuple[int, int] | None = None,
    order: str = "F",
) -> np.ndarray:
    """Grey images as ``[n, height, width]`` from ``[n, height * width]`` or ``[n, H, W]``.

    Flattened rows are unfolded in ``order``: ``"F"`` (column-major, MATLAB's ``img(:)'``,
    i.e. NumPy's ``row.reshape(H, W).T`` for square images) or ``"C"`` (row-major). Without
    ``image_shape`` flattened images must be square.

    Examples
    --------
    >>> image = np.arange(6).reshape(2, 3)
    >>> flat = image.reshape(1, -1, order="F")
    >>> bool((unflatten_images(flat, "f", "stim", (2, 3))[0] == image).all())
    True
    """
    if order not in ("F", "C"):
        raise ValueError(
            f"pixel order must be 'F' (column-major) or 'C' (row-major), got {order!r}"
        )
    if pixels.ndim == 3:
        if image_shape is not None and tuple(pixels.shape[1:]) != tuple(image_shape):
            raise field_error(
                source, field, f"must hold images of shape {tuple(image_shape)}", pixels.shape[1:]
            )
        return pixels
    if pixels.ndim != 2:
        raise field_error(
            source, field, "must be [n, height * width] or [n, height, width]", pixels.shape
        )
    n_pixels = pixels.shape[1]
    if image_shape is None:
        side = math.isqrt(n_pixels)
        if side * side != n_pixels:
            raise field_error(
                source,
                field,
                "must hold square flattened images (or give image_shape=(height, width))",
                f"{n_pixels} pixels per row",
            )
        image_shape = (side, side)
    if image_shape[0] * image_shape[1] != n_pixels:
        raise field_error(
            source,
            field,
            f"must hold {image_shape[0]} x {image_shape[1]} = "
            f"{image_shape[0] * image_shape[1]} pixels per row (image_shape)",
            f"{n_pixels}",
        )
    return pixels.reshape((pixels.shape[0], *image_shape), order="F" if order == "F" else "C")


def deduplicate_stimuli(stimuli: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identical stimuli merged, in order of first appearance; also each row's new index.

    Examples
    --------
    >>> unique, index = deduplicate_stimuli(np.array([[1.0], [2.0], [1.0]]))
    >>> unique.ravel().tolist(), index.tolist()
    ([1.0, 2.0], [0, 1, 0])
    """
    flat = stimuli.reshape(len(stimuli), -1)
    _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return stimuli[first[order]], rank[inverse.ravel()]


def read_paired_mat(
    mat: MatFile,
    response_fields: tuple[str, str],
    stimulus_fields: tuple[str, str],
    image_shape: tuple[int, int] | None,
    pixel_order: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the train/test layout ``resp{Trn,Test}`` ``[n, units]`` + ``stim{Trn,Test}``.

    Returns responses ``[n_train + n_test, units]`` float32, grey stimuli
    ``[n_train + n_test, height, width]`` float32 in [0, 1] (see `to_unit_range` and
    `unflatten_images`), and the split of each row.
    """
    responses: list[np.ndarray] = []
    stimuli: list[np.ndarray] = []
    split: list[str] = []
    n_units = None
    for response_field, stimulus_field, part in zip(
        response_fields, stimulus_fields, ("train", "test"), strict=True
    ):
        response = mat.array(response_field)
        if response.ndim != 2:
            raise field_error(mat.path, response_field, "must be 2-D [n, units]", response.shape)
        if n_units is not None and response.shape[1] != n_units:
            raise field_error(
                mat.path,
                response_field,
                f"must have {n_units} units (columns) like '{response_fields[0]}'",
                f"shape {response.shape}",
            )
        n_units = response.shape[1]
        pixels = mat.array(stimulus_field)
        if pixels.shape[0] != response.shape[0]:
            raise field_error(
                mat.path,
                stimulus_field,
                f"must have one image per row of '{response_field}' ({response.shape[0]})",
                f"shape {pixels.shape}",
            )
        images = unflatten_images(pixels, mat.path, stimulus_field, image_shape, pixel_order)
        if stimuli and images.shape[1:] != stimuli[0].shape[1:]:
            raise field_error(
                mat.path,
                stimulus_field,
                f"must hold images of the size of '{stimulus_fields[0]}' {stimuli[0].shape[1:]}",
                f"size {images.shape[1:]}",
            )
        responses.append(_finite_float32(response, mat.path, response_field))
        stimuli.append(to_unit_range(images, mat.path, stimulus_field))
        split += [part] * response.shape[0]
    return np.concatenate(responses), np.concatenate(stimuli), np.asarray(split)


def _finite_float32(values: np.ndarray, source: PathLike, field: str) -> np.ndarray:
    if values.dtype.kind not in "buif":
        raise field_error(source, field, "must be numeric", f"dtype {values.dtype}")
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise field_error(source, field, "must hold finite values", "NaN or infinity")
    return values


def build_dataset(source: PathLike, **fields: Any) -> NeuralDataset:
    """`NeuralDataset.from_arrays`, with any validation error prefixed by ``source``."""
    try:
        return NeuralDataset.from_arrays(**fields)
    except DatasetError as err:
        raise DatasetError(f"{source}: {err}") from err


def nanmean_quiet(values: np.ndarray, axis: int) -> np.ndarray:
    """`numpy.nanmean` without the warning for all-NaN slices (they give NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ImageCollection:
    """The image files of a folder (searched recursively) or of a zip archive.

    ``names`` lists them by natural sort of their path inside the folder or archive (so
    ``image2`` comes before ``image10``); hidden files and macOS resource forks are skipped.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("b10.png", "b9.png"):
    ...     Image.fromarray(np.zeros((2, 2), np.uint8)).save(f"{folder}/{name}")
    >>> ImageCollection(folder).names
    ['b9.png', 'b10.png']
    """

    def __init__(self, location: PathLike) -> None:
        self.location = Path(location)
        self._zip: zipfile.ZipFile | None = None
        if self.location.is_dir():
            found = (p.relative_to(self.location).as_posix() for p in self.location.rglob("*"))
        elif self.location.is_file() and zipfile.is_zipfile(self.location):
            self._zip = zipfile.ZipFile(self.location)
            found = (n for n in self._zip.namelist() if not n.endswith("/"))
        elif self.location.exists():
            raise DatasetError(
                f"{self.location}: expected a folder or a .zip archive of images, found a file "
                "that is neither"
            )
        else:
            raise FileNotFoundError(f"{self.location}: no such folder or zip archive of images")
        self.names = sorted((n for n in found if _is_image_name(n)), key=natural_key)

    def __len__(self) -> int:
        return len(self.names)

    def open(self, name: str) -> IO[bytes]:
        """A binary file object for image ``name``."""
        if self._zip is not None:
            return self._zip.open(name)
        return open(self.location / name, "rb")

    def close(self) -> None:
        """Close the zip archive, if any."""
        if self._zip is not None:
            self._zip.close()


def _is_image_name(name: str) -> bool:
    parts = name.split("/")
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    return not hidden and name.lower().endswith(IMAGE_SUFFIXES)


def load_images(
    names: Sequence[str],
    open_file: Callable[[str], IO[bytes]],
    image_size: int | None = None,
    description: str = "loading images",
    show_progress: bool = True,
) -> np.ndarray:
    """Read images into one float32 ``[n, channels, height, width]`` array in [0, 1].

    With ``image_size`` each image is centre-cropped to a square and resized to
    ``image_size x image_size`` (bicubic); without it all images must share one size. Grey
    images give one channel; if any image is in colour every image gets three (RGB).

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (6, 4), (255, 0, 0)).save(buffer, "PNG")
    >>> load_images(["red"], lambda _: io.BytesIO(buffer.getvalue()), 2, show_progress=False).shape
    (1, 3, 2, 2)
    """
    stack: np.ndarray | None = None
    for index, name in enumerate(progress(names, description, len(names), show_progress)):
        pixels = read_image(name, open_file, image_size)
        if stack is None:
            stack = np.empty((len(names), *pixels.shape), np.float32)
        if pixels.shape[0] > stack.shape[1]:
            stack = np.repeat(stack, pixels.shape[0], axis=1)
        if pixels.shape[1:] != stack.shape[2:]:
            raise DatasetError(
                f"{name}: image of {pixels.shape[2]} x {pixels.shape[1]} pixels differs from the "
                f"first image ({stack.shape[3]} x {stack.shape[2]}); give image_size= to crop "
                "and resize every image to one size"
            )
        stack[index] = pixels
    if stack is None:
        raise DatasetError("no images to load")
    return stack


def read_image(
    name: str, open_file: Callable[[str], IO[bytes]], image_size: int | None = None
) -> np.ndarray:
    """One image as float32 ``[channels, height, width]`` in [0, 1] (see `load_images`)."""
    try:
        with open_file(name) as handle, Image.open(handle) as opened:
            image = opened.convert("L" if opened.mode in GREY_MODES else "RGB")
            if image_size is not None:
                image = centre_square(image).resize(
                    (image_size, image_size), Image.Resampling.BICUBIC
                )
            pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{name}: not a readable image ({err})") from err
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def centre_square(image: Image.Image) -> Image.Image:
    """The largest centred square of ``image``."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))
