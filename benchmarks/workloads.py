"""The models and data the speed benchmarks run: shapes of real recordings, random values.

SID and the improved SID decode 300 retinal cells; MonkeySee decodes 960 electrodes in 15
Utah arrays of V1, V4 and IT (the TVSD layout: 7 + 4 + 4 arrays of 64), one time window,
with a receptive field per electrode and the ``"spatial"`` mapping. Weights are random
(VGG19 too), so nothing is downloaded.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd

from neuralsight.data import NeuralDataset
from neuralsight.models.decoders import SID, ImprovedSID, MonkeySee

DECODERS = ("sid", "improved_sid", "monkeysee")
N_CELLS = 300
ARRAYS = {"V1": 7, "V4": 4, "IT": 4}
ELECTRODES_PER_ARRAY = 64
WINDOW_MS = (25.0, 175.0)


def electrode_table(seed: int = 0) -> pd.DataFrame:
    """Units of a TVSD-like recording: area, array and a receptive field per electrode.

    Examples
    --------
    >>> table = electrode_table()
    >>> len(table), sorted(table["area"].unique())
    (960, ['IT', 'V1', 'V4'])
    """
    rng = np.random.default_rng(seed)
    areas = [area for area, arrays in ARRAYS.items() for _ in range(arrays)]
    n = len(areas) * ELECTRODES_PER_ARRAY
    return pd.DataFrame(
        {
            "unit_id": np.arange(n),
            "area": np.repeat(areas, ELECTRODES_PER_ARRAY),
            "array": np.repeat(np.arange(len(areas)), ELECTRODES_PER_ARRAY),
            "rf_x": rng.uniform(-0.8, 0.8, n),
            "rf_y": rng.uniform(-0.8, 0.8, n),
            "rf_sigma": rng.uniform(0.05, 0.3, n),
        }
    )


def n_inputs(decoder: str) -> int:
    """Responses per trial the decoder takes (one time bin).

    Examples
    --------
    >>> n_inputs("sid"), n_inputs("monkeysee")
    (300, 960)
    """
    return sum(ARRAYS.values()) * ELECTRODES_PER_ARRAY if decoder == "monkeysee" else N_CELLS


def make_data(decoder: str, n: int, channels: int, size: int, seed: int = 0) -> NeuralDataset:
    """Random responses (Poisson counts) and images of the shape ``decoder`` trains on.

    Examples
    --------
    >>> make_data("sid", 4, 1, 16).responses.shape
    (4, 300, 1)
    """
    rng = np.random.default_rng(seed)
    units = electrode_table(seed) if decoder == "monkeysee" else None
    return NeuralDataset.from_arrays(
        rng.poisson(2.0, (n, n_inputs(decoder), 1)).astype(np.float32),
        rng.random((n, channels, size, size), dtype=np.float32),
        units=units,
        bin_edges_ms=list(WINDOW_MS) if units is not None else None,
    )


def build_decoder(
    decoder: str,
    image_shape: tuple[int, int, int],
    training: bool = True,
    vgg_input_size: int | None = None,
) -> L.LightningModule:
    """The decoder with random weights; ``training=False`` leaves out MonkeySee's
    discriminator and VGG19, which only training needs.

    Examples
    --------
    >>> build_decoder("monkeysee", (1, 32, 32), training=False).discriminator is None
    True
    """
    if decoder == "sid":
        return SID(N_CELLS, image_shape)
    if decoder == "improved_sid":
        return ImprovedSID(N_CELLS, image_shape)
    units = electrode_table()
    losses = {} if training else {"adversarial_weight": 0.0, "feature_weight": 0.0}
    return MonkeySee(
        n_inputs(decoder),
        image_shape,
        mapping="spatial",
        vgg_weights="random",
        vgg_input_size=vgg_input_size,
        area=units["area"].tolist(),
        array=units["array"].tolist(),
        rf_x=units["rf_x"].tolist(),
        rf_y=units["rf_y"].tolist(),
        rf_sigma=units["rf_sigma"].tolist(),
        bin_edges_ms=list(WINDOW_MS),
        **losses,
    )
