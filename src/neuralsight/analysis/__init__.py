"""Analyses of trained decoders: occlusion, single-area models, loss ablations, learned RFs.

- `occlusion`: responses of chosen areas or outside a time window replaced by their
  pre-stimulus baseline or zeros, and a trained decoder scored under every condition;
- `single_area`: the data set of one area's units, and one model trained per area;
- `ablation`: a decoder retrained with each loss term switched off;
- `fields`: learned receptive fields of the end-to-end model against the true ones;
- `conditions`: scoring a set of conditions and writing figures, tables and the report;
- `training`: the analyses' configs (any decoder's, via `neuralsight.lightning_cli`) and
  checkpoint loading.

Each ``run_*`` function writes one folder (PNG figures, CSV and JSON tables, ``run.json``,
``report.html``) and backs a ``neuralsight analyze`` subcommand.
"""

from neuralsight.analysis.ablation import ablation_conditions, run_ablation
from neuralsight.analysis.conditions import (
    CONV_LAYERS,
    ConditionResults,
    feature_extractor,
    score_conditions,
    write_conditions,
)
from neuralsight.analysis.fields import (
    field_coverage,
    field_summary,
    field_table,
    median_distance_sigmas,
    model_fields,
    painted_pixel_fraction,
    painted_pixels,
    run_fields,
    true_fields,
)
from neuralsight.analysis.occlusion import (
    OcclusionCondition,
    apply_condition,
    area_conditions,
    evaluate_occlusion,
    fill_values,
    occlude,
    occlude_areas,
    occlude_outside_window,
    prestimulus_baseline,
    run_occlusion,
    training_mean,
    window_conditions,
)
from neuralsight.analysis.single_area import restrict_to_area, run_single_area
from neuralsight.analysis.training import load_monkeysee, require_decoder, training_settings

__all__ = [
    "CONV_LAYERS",
    "ConditionResults",
    "OcclusionCondition",
    "ablation_conditions",
    "apply_condition",
    "area_conditions",
    "evaluate_occlusion",
    "feature_extractor",
    "field_coverage",
    "field_summary",
    "field_table",
    "fill_values",
    "load_monkeysee",
    "median_distance_sigmas",
    "model_fields",
    "occlude",
    "occlude_areas",
    "occlude_outside_window",
    "painted_pixel_fraction",
    "painted_pixels",
    "prestimulus_baseline",
    "require_decoder",
    "restrict_to_area",
    "run_ablation",
    "run_fields",
    "run_occlusion",
    "run_single_area",
    "score_conditions",
    "training_mean",
    "training_settings",
    "true_fields",
    "window_conditions",
    "write_conditions",
]
