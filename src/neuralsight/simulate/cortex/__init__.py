"""Simulated macaque V1/V4/IT multi-unit activity (MUA) of Utah arrays responding to images.

A ground-truth encoder standing in for the THINGS ventral-stream spiking data set (TVSD,
Papale et al. 2025) so that MonkeySee (Le et al., NeurIPS 2024) and the other decoders can
run without a monkey. It models, per electrode:

Layout
    Utah arrays of ``electrodes_per_array`` electrodes in V1, V4 and IT; by default the TVSD
    layout of 7 V1, 4 V4 and 4 IT arrays of 64 electrodes (960 electrodes).
    ``layout="tvsd"`` places V1 and V4 array centres in the lower-left and lower-right
    quadrants near the fovea, as in the TVSD monkeys (the upper visual field is then barely
    sampled), and IT arrays at the fovea; ``layout="spread"`` spreads the array centres of
    each area over the image on a golden-angle spiral, for better coverage.
Receptive fields
    Isotropic Gaussians. Electrode RF centres follow the retinotopic map across their array's
    8 x 8 grid, plus scatter. RF size ``sigma = a + b * eccentricity`` grows with eccentricity
    and along the hierarchy (V1 small, V4 medium, IT large); IT pools further with a uniform
    component over the whole image, so it is nearly position invariant.
Feature selectivity
    Fixed filter banks drawn from the simulator seed, no pretrained network. V1: quadrature
    Gabor energy (complex cells) and rectified even Gabors (simple cells) at 8 orientations and
    2 wavelengths, centre-surround (contrast) luminance on/off, surface luminance on/off
    (blurred luminance above or below mid-grey: V1 MUA follows surface brightness, not only
    edges) and red-green / blue-yellow opponent channels; each electrode has a preferred
    orientation and wavelength, a simple/complex mix, a contrast/surface luminance mix and a
    colour weight. V4: curvature/corner channels (geometric means of V1 energies 45
    degrees apart) and rectified random combinations of V1 channels, pooled over a larger RF
    with sparse excitatory and inhibitory weights. IT: rectified random combinations of V4
    channels, pooled over a large, nearly position-invariant RF, plus a global luminance and
    colour component. Each stage is one ``conv2d`` / FFT over the whole batch, and the RF
    pooling of every electrode one matrix product. The result is compressed by a Naka-Rushton
    nonlinearity.
Time course
    A gamma-shaped transient followed by a sustained level, decaying after the stimulus offset
    (``duration_ms``), at a per-electrode latency (V1 30-50 ms, V4 50-70 ms, IT 80-100 ms; the
    latency is the time the noiseless response first reaches half its peak), sampled in
    ``bin_ms`` bins centred on ``t_start_ms`` to ``t_stop_ms`` (-100 to 200 ms, 1 ms, 301 bins
    with edges -100.5 to 200.5 ms by default), or averaged over one per-area window
    (``mode="window"``; the TVSD windows V1 25-125 ms, V4 50-150 ms, IT 75-175 ms by default).
Noise
    Temporally correlated Gaussian MUA noise (AR(1), 3 ms time constant) with an
    electrode-specific SNR, a per-trial additive baseline offset, and multiplicative gain
    fluctuations per trial that are partly shared within an area. Repeats are independent
    trials.

Units
    Coordinates (``rf_x``, ``rf_y``, ``rf_sigma``) are normalised image coordinates in
    [-1, 1]: x from -1 (left image edge) to +1 (right edge), y from -1 (top edge) to +1
    (bottom edge), pixel k of n centred at -1 + (2k + 1) / n, so lower visual field means ``rf_y > 0`` (the ``torch.nn.functional.grid_sample``
    convention with ``align_corners=False``). With ``field_of_view_deg`` the table also has
    ``rf_x_deg``, ``rf_y_deg``, ``rf_sigma_deg`` (same axes, image width = field of view).
    Responses are normalised MUA in the spirit of the TVSD's normMUA: baseline-subtracted
    (pre-stimulus mean 0) and divided by the electrode's mean noiseless peak response to a
    fixed set of 1/f-noise reference images (so a typical image peaks near 1).

Layout, receptive fields and filters come from the simulator ``seed``; the noise of a call
from its own ``seed``, per stimulus, so results do not depend on how trials are chunked.

Modules
    `~neuralsight.simulate.cortex.parameters` (area parameters, constants, argument
    checks), `~neuralsight.simulate.cortex.layout` (arrays, electrodes, RF pooling),
    `~neuralsight.simulate.cortex.features` (filter banks, feature maps, tuning),
    `~neuralsight.simulate.cortex.timecourse` (time course and noise),
    `~neuralsight.simulate.cortex.simulator` (`CortexSimulator`),
    `~neuralsight.simulate.cortex.recording` (`simulate_cortex`).
"""

from neuralsight.simulate.cortex.features import reference_images
from neuralsight.simulate.cortex.parameters import (
    AREA_PARAMETERS,
    AREAS,
    RESPONSE_UNITS,
    RF_UNITS,
    TVSD_ARRAYS,
    TVSD_WINDOWS_MS,
    AreaParameters,
)
from neuralsight.simulate.cortex.recording import simulate_cortex
from neuralsight.simulate.cortex.simulator import CortexSimulator, NoiseSampler

__all__ = [
    "AREAS",
    "AREA_PARAMETERS",
    "RESPONSE_UNITS",
    "RF_UNITS",
    "TVSD_ARRAYS",
    "TVSD_WINDOWS_MS",
    "AreaParameters",
    "CortexSimulator",
    "NoiseSampler",
    "reference_images",
    "simulate_cortex",
]
