"""Reader for the ``.mat`` layout of the SID reference code (jiankliu/Spike-Image-Decoder).

The file holds retinal ganglion cell spike counts and the images that evoked them:

- ``spkTrn`` ``[n_train, n_cells]`` and ``spkTest`` ``[n_test, n_cells]``;
- ``stimTrn`` / ``stimTest`` either flattened ``[n, H * W]`` (square images unless
  ``image_shape`` says otherwise) or ``[n, H, W]``.

Both MATLAB v5 and v7.3 (HDF5, axes stored reversed) files are read; shapes above are as
MATLAB sees them. Flattened images are unfolded column-major by default, as MATLAB writes
them (``img(:)'``), which is how the SID code displays them (``rot90(fliplr(x))``). Pixels
follow one rule: integers are 0-255 and divided by 255; floats within [0, 1] are kept; floats
within [0, 255] with a maximum above 1 are divided by 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.readers._common import (
    MatFile,
    PathLike,
    build_dataset,
    deduplicate_stimuli,
    expect_paths,
    read_paired_mat,
)

RESPONSE_FIELDS = ("spkTrn", "spkTest")
STIMULUS_FIELDS = ("stimTrn", "stimTest")


def read(
    paths: Sequence[PathLike] | PathLike,
    image_shape: tuple[int, int] | None = None,
    pixel_order: str = "F",
    area: str = "RGC",
    deduplicate: bool = True,
) -> NeuralDataset:
    """Read a SID ``.mat`` file into a `NeuralDataset`.

    Each row of ``spkTrn`` / ``spkTest`` is one trial (split ``train`` / ``test``); cells
    become units of ``area``. Identical images are merged into one stimulus shared by their
    trials unless ``deduplicate`` is false.

    Parameters
    ----------
    paths
        ``[file.mat]`` (MATLAB v5 or v7.3).
    image_shape
        ``(height, width)`` of flattened images; needed when they are not square.
    pixel_order
        ``"F"`` (column-major, MATLAB's default) or ``"C"`` (row-major) for flattened images.
    area
        Area of every cell.
    deduplicate
        Merge identical images into one stimulus.

    Examples
    --------
    >>> import numpy as np, scipy.io, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "sid.mat")
    >>> scipy.io.savemat(path, {"spkTrn": np.ones((4, 5)), "spkTest": np.ones((2, 5)),
    ...                         "stimTrn": np.eye(4, 16, dtype=np.uint8) * 255,
    ...                         "stimTest": np.zeros((2, 16), np.uint8)})
    >>> ds = read([path])
    >>> ds.n_units, ds.image_shape, ds.split.tolist().count("test")
    (5, (1, 4, 4), 2)
    """
    (path,) = expect_paths(paths, ["file.mat"], "sid_mat")
    with MatFile(path) as mat:
        responses, images, split = read_paired_mat(
            mat, RESPONSE_FIELDS, STIMULUS_FIELDS, image_shape, pixel_order
        )
        version = mat.version
    check_spike_counts(path, responses, split)
    stimuli, stimulus_id = deduplicate_stimuli(images) if deduplicate else (images, None)
    n_cells = responses.shape[1]
    return build_dataset(
        path,
        responses=responses,
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        units={"unit_id": range(n_cells), "area": [area] * n_cells},
        split=split,
        meta={
            "format": "sid_mat",
            "source_file": str(path),
            "mat_version": version,
            "response_units": "spike counts per image as stored in spkTrn/spkTest",
            "pixel_order": pixel_order,
        },
    )


def check_spike_counts(path: Path, responses: np.ndarray, split: np.ndarray) -> None:
    """Raise a clear error for a negative spike count, naming the file, field, trial and cell.

    Examples
    --------
    >>> check_spike_counts(Path("sid.mat"), np.array([[1.0], [-5.0]]), np.array(["train", "test"]))
    Traceback (most recent call last):
    ...
    ValueError: sid.mat: field 'spkTest' holds spike counts, which cannot be negative; found -5 at trial 0, cell 0
    """
    bad = responses < 0
    if bad.any():
        flat = responses.reshape(len(responses), -1)
        row, cell = (int(i) for i in np.argwhere(bad.reshape(flat.shape))[0])
        n_train = int(np.sum(split == "train"))
        field_name, trial = ("spkTrn", row) if split[row] == "train" else ("spkTest", row - n_train)
        value = flat[row, cell]
        raise ValueError(
            f"{path}: field '{field_name}' holds spike counts, which cannot be negative; "
            f"found {value:g} at trial {trial}, cell {cell}"
        )
