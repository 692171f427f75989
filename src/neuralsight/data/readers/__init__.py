"""Readers: translate external recording formats into a `NeuralDataset`.

Each format lives in its own module (or package) exposing ``read(paths: list[str],
**options) -> NeuralDataset``. `READERS` names each reader by the format name
``neuralsight convert`` takes, as a ``"module:function"`` path imported on first use, so
listing the formats never imports ``pynwb`` or ``scipy``. Readers only translate: nothing
downstream knows where data came from.

Examples
--------
>>> READERS.names()
('fmri69', 'npy_images', 'npz', 'nwb', 'sid_mat', 'tvsd')
>>> READERS.get("npz").__name__
'read'
"""

from __future__ import annotations

from collections.abc import Callable

from neuralsight.data.dataset import NeuralDataset
from neuralsight.registry import Registry

READERS: Registry[Callable[..., NeuralDataset]] = Registry("reader")
"""Every reader by format name: ``READERS.get(fmt)(paths, **options)``."""

READERS.add("nwb", "neuralsight.data.readers.nwb:read")
READERS.add("tvsd", "neuralsight.data.readers.tvsd:read")
READERS.add("sid_mat", "neuralsight.data.readers.sid_mat:read")
READERS.add("fmri69", "neuralsight.data.readers.fmri69:read")
READERS.add("npz", "neuralsight.data.readers.npz:read")
READERS.add("npy_images", "neuralsight.data.readers.npz:read_npy_images")
