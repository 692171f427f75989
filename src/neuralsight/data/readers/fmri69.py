"""Reader for fMRI image-reconstruction ``.mat`` files: the "69 digits" and Miyawaki layouts.

Both files share one layout (shapes as MATLAB sees them; v5 and v7.3 files are read):

- ``fmriTrn`` ``[n_train, n_voxels]`` and ``fmriTest`` ``[n_test, n_voxels]``: one BOLD
  response pattern per trial;
- ``stimTrn`` / ``stimTest`` ``[n, 784]``: 28 x 28 images flattened column-major (NumPy's
  ``row.reshape(28, 28).T``);
- ``labelTrn`` / ``labelTest`` ``[n, 1]``: one label per trial (optional).

``digit69_28x28.mat`` (van Gerven et al. 2010, as shipped with DGMM): 90 + 10 trials, 3092
voxels in V1-V3, uint8 handwritten 6s and 9s, labels 1 = six and 2 = nine.
``miyawaki_structured_28x28.mat`` (Miyawaki et al. 2008, as derived by braindecoding/LDM):
107 + 12 trials, 967 V1 voxels (z-scored), float 0/1 geometric shapes and letters (20
distinct images shown about 6 times), labels are recording-session numbers; it adds
``train_indices`` / ``test_indices`` (rows of the original sample table) and a ``metadata``
struct.

Voxels become units of area ``voxel``; responses are kept as stored. Identical images are
merged into one stimulus shared by their trials (Miyawaki's repeats), across splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.readers._common import (
    MatFile,
    PathLike,
    build_dataset,
    deduplicate_stimuli,
    expect_paths,
    field_error,
    read_paired_mat,
)

RESPONSE_FIELDS = ("fmriTrn", "fmriTest")
STIMULUS_FIELDS = ("stimTrn", "stimTest")
LABEL_FIELDS = ("labelTrn", "labelTest")
INDEX_FIELDS = ("train_indices", "test_indices")

KNOWN_FILES: dict[str, dict[str, str]] = {
    "digit69": {
        "dataset": "69 digits fMRI (van Gerven et al. 2010), single participant",
        "roi": "V1-V3",
        "labels_meaning": "digit class: 1 = six, 2 = nine",
        "response_units": "BOLD response per voxel and image, as stored in the file",
    },
    "miyawaki": {
        "dataset": "Miyawaki et al. 2008, subject S1, figure conditions",
        "roi": "V1",
        "labels_meaning": "recording session number",
        "response_units": "BOLD response per voxel and trial, z-scored, as stored in the file",
    },
}


def read(
    paths: Sequence[PathLike] | PathLike,
    image_shape: tuple[int, int] | None = None,
    pixel_order: str = "F",
    deduplicate: bool = True,
) -> NeuralDataset:
    """Read a "69 digits" or Miyawaki fMRI ``.mat`` file into a `NeuralDataset`.

    Each row of ``fmriTrn`` / ``fmriTest`` is one trial (split ``train`` / ``test``).
    ``meta["labels"]`` holds the label of each trial (``labelTrn`` then ``labelTest``) and
    ``meta["labels_meaning"]`` what they are; for Miyawaki ``meta["trial_source_index"]``
    holds ``train_indices`` then ``test_indices`` and ``meta["file_metadata"]`` the
    ``metadata`` struct. The data set is recognised by its file name (``digit69`` or
    ``miyawaki``); other files read the same with generic descriptions.

    Parameters
    ----------
    paths
        ``[file.mat]``.
    image_shape
        ``(height, width)`` of the flattened images; needed when they are not square.
    pixel_order
        ``"F"`` (column-major, as in these files) or ``"C"`` (row-major).
    deduplicate
        Merge identical images into one stimulus.

    Examples
    --------
    >>> ds = read(["digit69_28x28.mat"])  # doctest: +SKIP
    >>> ds.n_units, ds.image_shape, ds.units["area"].iloc[0]  # doctest: +SKIP
    (3092, (1, 28, 28), 'voxel')
    """
    (path,) = expect_paths(paths, ["file.mat"], "fmri69")
    with MatFile(path) as mat:
        responses, images, split = read_paired_mat(
            mat, RESPONSE_FIELDS, STIMULUS_FIELDS, image_shape, pixel_order
        )
        meta: dict[str, Any] = _describe(path.name) | {"mat_version": mat.version}
        meta |= _per_trial(mat, LABEL_FIELDS, "labels", len(responses))
        meta |= _per_trial(mat, INDEX_FIELDS, "trial_source_index", len(responses))
        if "metadata" in mat:
            meta["file_metadata"] = mat.struct("metadata")
    stimuli, stimulus_id = deduplicate_stimuli(images) if deduplicate else (images, None)
    n_voxels = responses.shape[1]
    return build_dataset(
        path,
        responses=responses,
        stimuli=stimuli,
        stimulus_id=stimulus_id,
        units={"unit_id": range(n_voxels), "area": ["voxel"] * n_voxels},
        split=split,
        meta={"format": "fmri69", "source_file": str(path), "pixel_order": pixel_order} | meta,
    )


def _describe(file_name: str) -> dict[str, str]:
    for key, description in KNOWN_FILES.items():
        if key in file_name.lower():
            return dict(description)
    return {
        "dataset": "unknown (fmri69 layout)",
        "labels_meaning": "as stored in labelTrn/labelTest",
        "response_units": "BOLD response per voxel, as stored in the file",
    }


def _per_trial(mat: MatFile, fields: tuple[str, str], key: str, n_trials: int) -> dict[str, Any]:
    if not all(field in mat for field in fields):
        return {}
    values = np.concatenate([mat.array(field).ravel() for field in fields])
    if len(values) != n_trials:
        raise field_error(
            mat.path,
            f"{fields[0]}/{fields[1]}",
            f"must hold one value per trial ({n_trials})",
            f"{len(values)} values",
        )
    return {key: values.tolist()}
