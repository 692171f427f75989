"""Encoders: images -> neural responses, each a LightningModule with the same small surface."""

from neuralsight.models.encoders.base import (
    Encoder,
    energy_centres,
    mean_unit_correlation,
    predict_in_batches,
)
from neuralsight.models.encoders.cnn import (
    CNNEncoder,
    FactorisedReadout,
    GaussianReadout,
    ReadoutEncoder,
    conv_core,
    linear_receptive_fields,
)
from neuralsight.models.encoders.ln import LNEncoder
from neuralsight.models.encoders.mei import most_exciting_input, most_exciting_inputs
from neuralsight.models.encoders.pretrained import (
    LayerChoice,
    PretrainedCoreEncoder,
    choose_layer,
)

__all__ = [
    "CNNEncoder",
    "Encoder",
    "FactorisedReadout",
    "GaussianReadout",
    "LNEncoder",
    "LayerChoice",
    "PretrainedCoreEncoder",
    "ReadoutEncoder",
    "choose_layer",
    "conv_core",
    "energy_centres",
    "linear_receptive_fields",
    "mean_unit_correlation",
    "most_exciting_input",
    "most_exciting_inputs",
    "predict_in_batches",
]
