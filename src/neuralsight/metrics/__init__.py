"""The evaluation suite: pixel, feature, colour and encoding metrics, one scoring service.

- `image_metrics`: MSE, PSNR, SSIM, PixCorr of reconstructions against true images.
- `feature_metrics`: AlexNet layer correlations and two-way identification (records the
  network's ``"weights"`` provenance).
- `colourfulness`: Hasler & Suesstrunk's composite colourfulness.
- `encoding_metrics`: per-unit correlation, noise ceiling and FEVE of encoding models;
  `rf_centre_errors`: learned against true receptive-field centres.
- `score_decoder` / `score_encoder`: score any decoder or encoder (a trained model, a
  results file or arrays) on any split of a dataset; one `DecoderScores` /
  `EncoderScores` record each (`neuralsight.metrics.score`).
- The results files and their writers (`neuralsight.metrics.results`): reconstructions,
  response predictions, `ReconstructionWriter` / `ResponsePredictionWriter` for
  ``Trainer.predict``, and `write_metrics_json`.
"""

from neuralsight.metrics.colour import colourfulness, colourfulness_per_image
from neuralsight.metrics.encoding import (
    correlation_ceiling,
    encoding_metrics,
    explainable_variance,
    feve,
    per_unit_correlation,
    repeats_by_stimulus,
    rf_centre_errors,
    split_half_reliability,
)
from neuralsight.metrics.features import (
    ALEXNET_LAYERS,
    TWOWAY_LAYERS,
    AlexNetFeatures,
    feature_metrics,
    twoway_identification,
)
from neuralsight.metrics.image import (
    image_metrics,
    mse_per_image,
    pixcorr_per_image,
    psnr_per_image,
    ssim_per_image,
)
from neuralsight.metrics.results import (
    PredictionsError,
    ReconstructionsError,
    ReconstructionWriter,
    ResponsePredictionWriter,
    load_reconstructions,
    load_response_predictions,
    save_reconstructions,
    save_response_predictions,
    write_metrics_json,
)
from neuralsight.metrics.score import (
    DecoderScores,
    EncoderScores,
    held_out_pairs,
    mean_image,
    score_decoder,
    score_encoder,
    shuffled_pairing,
    true_stimuli,
)

__all__ = [
    "ALEXNET_LAYERS",
    "TWOWAY_LAYERS",
    "AlexNetFeatures",
    "DecoderScores",
    "EncoderScores",
    "PredictionsError",
    "ReconstructionWriter",
    "ReconstructionsError",
    "ResponsePredictionWriter",
    "colourfulness",
    "colourfulness_per_image",
    "correlation_ceiling",
    "encoding_metrics",
    "explainable_variance",
    "feature_metrics",
    "feve",
    "held_out_pairs",
    "image_metrics",
    "load_reconstructions",
    "load_response_predictions",
    "mean_image",
    "mse_per_image",
    "per_unit_correlation",
    "pixcorr_per_image",
    "psnr_per_image",
    "repeats_by_stimulus",
    "rf_centre_errors",
    "save_reconstructions",
    "save_response_predictions",
    "score_decoder",
    "score_encoder",
    "shuffled_pairing",
    "split_half_reliability",
    "ssim_per_image",
    "true_stimuli",
    "twoway_identification",
    "write_metrics_json",
]
