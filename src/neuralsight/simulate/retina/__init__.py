"""Retina simulator: ON and OFF retinal ganglion cell (RGC) spike counts for any image or video.

This is the "spike encoder" of SID (Zhang et al., Neural Networks 2020): a seeded population
of RGCs turns stimuli into Poisson spike counts that decoders learn to invert. The pipeline:

1. **Contrast.** Each image (colour images through Rec. 709 luminance weights, the [0, 1]
   values taken as linear luminance) becomes Weber contrast ``(L - L0) / L0`` relative to an
   adaptation level ``L0``: the image's own mean luminance (``adaptation=None``, default) or a
   fixed level; ``L0`` is floored at ``ADAPTATION_FLOOR`` so a black image stays finite. The
   contrast is multiplied by ``contrast``. Outside the image the contrast is zero (mean grey).
2. **Spatial stage.** Separate ON and OFF mosaics tile the image as jittered hexagonal grids.
   Centre Gaussians have a width set by the mosaic spacing; surrounds are 2-3x wider and
   weaker (difference of Gaussians). Two cell models:

   - ``"ln"``: the generator signal is the DoG-filtered contrast (sign-flipped for OFF cells).
   - ``"subunit"``: the centre pools bipolar-like subunits, small Gaussians on a grid finer
     than the mosaic, each rectified (``max(x, leak * x)``, ON subunits see the contrast,
     OFF subunits its negative) and pooled with Gaussian weights over the centre; a linear
     surround is subtracted. Such cells respond to fine contrast-reversing gratings at both
     phases (Y-like frequency doubling), which a linear decoder cannot undo.

3. **Nonlinearity.** ``rate = max_rate * sigmoid(gain * g + offset)`` with the offset chosen
   so that a uniform grey image (``g = 0``) gives the cell's baseline (drawn per cell in
   ``baseline_hz``) and the rate saturates below ``max_rate_hz``; the gain varies per cell.
4. **Spikes.** Poisson counts in ``n_bins`` equal bins of a ``window_ms`` window; a static
   image drives a constant rate over the window and repeats are independent trials.

Videos pass through a causal biphasic temporal filter, so the response to a frame depends on
the recent frames; `RetinaStream` encodes a stream frame by frame with the same result as
`RetinaSimulator.simulate_video`.

Coordinates are normalised image coordinates in [-1, 1]: ``x`` runs along the width (left -1,
right +1), ``y`` along the height (top row -1, bottom row +1), and pixel centres sit at
``-1 + (2k + 1) / size`` (the ``torch.nn.functional.grid_sample`` convention with
``align_corners=False``). Receptive fields are isotropic in these coordinates, hence
elliptical in pixels for non-square images. ``rf_sigma``, ``surround_sigma`` and
``subunit_sigma`` are Gaussian standard deviations in the same units.

Everything is seeded: the mosaic and the per-cell parameters come from ``seed``; spike
sampling from the ``seed`` given to a call, by default one derived from the simulator seed.

Modules
    `~neuralsight.simulate.retina.mosaic` (mosaics, receptive fields, subunit layers),
    `~neuralsight.simulate.retina.simulator` (`RetinaSimulator`, `PRESETS`, the spike
    sampler of a recording), `~neuralsight.simulate.retina.stream` (the temporal filter,
    `RetinaStream`), `~neuralsight.simulate.retina.recording` (`simulate_retina`).
"""

from neuralsight.simulate.retina.mosaic import hex_mosaic, pixel_gaussians
from neuralsight.simulate.retina.recording import simulate_retina
from neuralsight.simulate.retina.simulator import (
    PRESETS,
    RESPONSE_UNITS,
    RF_UNITS,
    RetinaSimulator,
    SpikeSampler,
    retina_from_preset,
    split_spike_seeds,
)
from neuralsight.simulate.retina.stream import RetinaStream, biphasic_kernel

__all__ = [
    "PRESETS",
    "RESPONSE_UNITS",
    "RF_UNITS",
    "RetinaSimulator",
    "RetinaStream",
    "SpikeSampler",
    "biphasic_kernel",
    "hex_mosaic",
    "pixel_gaussians",
    "retina_from_preset",
    "simulate_retina",
    "split_spike_seeds",
]
