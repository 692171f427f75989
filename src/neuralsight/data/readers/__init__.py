"""Readers: translate external recording formats into a `NeuralDataset`.

Each format lives in its own module exposing ``read(paths: list[str], **options) ->
NeuralDataset``; `READERS` maps the format name used by ``neuralsight convert`` to that
module (or to ``module:function`` where one module reads two layouts). Readers only translate: nothing downstream knows where data came from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from neuralsight.data.dataset import NeuralDataset

READERS: dict[str, str] = {
    "nwb": "neuralsight.data.readers.nwb",
    "tvsd": "neuralsight.data.readers.tvsd",
    "sid_mat": "neuralsight.data.readers.sid_mat",
    "fmri69": "neuralsight.data.readers.fmri69",
    "npz": "neuralsight.data.readers.npz",
    "npy_images": "neuralsight.data.readers.npz:read_npy_images",
}


def get_reader(fmt: str) -> Callable[..., NeuralDataset]:
    """The ``read`` function of format ``fmt``; a clear error lists the known formats."""
    if fmt not in READERS:
        raise ValueError(f"unknown format '{fmt}'; known formats: {sorted(READERS)}")
    module, _, function = READERS[fmt].partition(":")
    return getattr(importlib.import_module(module), function or "read")
