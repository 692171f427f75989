"""Encoders: images -> neural responses, each a LightningModule with the same small surface."""

from neuralsight.models.encoders.base import (
    Encoder,
    energy_centres,
    mean_unit_correlation,
    predict_in_batches,
)
from neuralsight.models.encoders.cnn import (
    CNNEncoder,
    GaussianReadout,
    conv_core,
    linear_receptive_fields,
)
from neuralsight.models.encoders.ln import LNEncoder

__all__ = [
    "CNNEncoder",
    "Encoder",
    "GaussianReadout",
    "LNEncoder",
    "conv_core",
    "energy_centres",
    "linear_receptive_fields",
    "mean_unit_correlation",
    "predict_in_batches",
]
