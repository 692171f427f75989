"""Encoders: images -> neural responses, each a LightningModule with the same small surface."""

from neuralsight.models.encoders.base import (
    Encoder,
    PredictionsError,
    ResponsePredictionWriter,
    energy_centres,
    evaluate_encoding,
    load_response_predictions,
    mean_unit_correlation,
    predict_in_batches,
    save_response_predictions,
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
    "PredictionsError",
    "ResponsePredictionWriter",
    "conv_core",
    "energy_centres",
    "evaluate_encoding",
    "linear_receptive_fields",
    "load_response_predictions",
    "mean_unit_correlation",
    "predict_in_batches",
    "save_response_predictions",
]
