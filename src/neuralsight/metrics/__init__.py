"""The evaluation suite: pixel, feature, colour and encoding metrics, and evaluation.

- `image_metrics`: MSE, PSNR, SSIM, PixCorr of reconstructions against true images.
- `feature_metrics`: AlexNet layer correlations and two-way identification (records the
  network's ``"weights"`` provenance).
- `colourfulness`: Hasler & Suesstrunk's composite colourfulness.
- `encoding_metrics`: per-unit correlation, noise ceiling and FEVE of encoding models.
- `save_reconstructions` / `load_reconstructions` / `evaluate_reconstructions` /
  `write_metrics_json`: the reconstructions file and ``neuralsight evaluate``.
"""

from neuralsight.metrics.colour import colourfulness, colourfulness_per_image
from neuralsight.metrics.encoding import (
    correlation_ceiling,
    encoding_metrics,
    explainable_variance,
    feve,
    per_unit_correlation,
    repeats_by_stimulus,
    split_half_reliability,
)
from neuralsight.metrics.evaluate import (
    ReconstructionsError,
    evaluate_reconstructions,
    load_reconstructions,
    save_reconstructions,
    true_stimuli,
    write_metrics_json,
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

__all__ = [
    "ALEXNET_LAYERS",
    "TWOWAY_LAYERS",
    "AlexNetFeatures",
    "ReconstructionsError",
    "colourfulness",
    "colourfulness_per_image",
    "correlation_ceiling",
    "encoding_metrics",
    "evaluate_reconstructions",
    "explainable_variance",
    "feature_metrics",
    "feve",
    "image_metrics",
    "load_reconstructions",
    "mse_per_image",
    "per_unit_correlation",
    "pixcorr_per_image",
    "psnr_per_image",
    "repeats_by_stimulus",
    "save_reconstructions",
    "split_half_reliability",
    "ssim_per_image",
    "true_stimuli",
    "twoway_identification",
    "write_metrics_json",
]
