"""The linear-nonlinear (LN) baseline: one linear filter over the pixels per unit, then softplus.

``rate = softplus(w_n . image + b_n)`` with a Poisson loss (``loss="mse"`` makes it a linear
regression on z-scored responses). Filters start at zero; an L2 penalty (AdamW weight decay)
and a Laplacian smoothness penalty keep them from fitting pixel noise. `rf_positions`
estimates each unit's receptive-field centre from its filter's energy, in the same
normalised coordinates as the simulators' ``rf_x``/``rf_y``, to compare with the CNN's
readout positions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralsight.models.encoders.base import Encoder, EncoderLoss, energy_centres
from neuralsight.models.registry import ENCODERS

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


@ENCODERS.register("ln")
class LNEncoder(Encoder):
    """Linear filter + softplus per unit (and time bin), Poisson loss.

    Parameters
    ----------
    n_inputs
        ``n_units * n_bins`` (linked from the DataModule).
    image_shape
        ``(channels, height, width)``.
    n_bins
        Time bins per unit.
    smoothness
        Weight of the squared Laplacian of the filters (summed over pixels, averaged over
        filters).
    loss
        ``"poisson"`` (default) or ``"mse"``.
    lr, weight_decay
        AdamW settings (weight decay is the L2 penalty).

    Examples
    --------
    >>> import torch
    >>> model = LNEncoder(n_inputs=6, image_shape=(1, 8, 8), n_bins=2)
    >>> model(torch.rand(4, 1, 8, 8)).shape, model.filters.shape
    (torch.Size([4, 3, 2]), torch.Size([6, 1, 8, 8]))
    """

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        n_bins: int = 1,
        smoothness: float = 1e-2,
        loss: EncoderLoss = "poisson",
        lr: float = 3e-3,
        weight_decay: float = 1e-3,
    ) -> None:
        super().__init__(n_inputs, image_shape, n_bins, loss, lr, weight_decay)
        self.save_hyperparameters()
        self.filters = nn.Parameter(torch.zeros(self.n_inputs, *self.image_shape))

    def drive(self, images: torch.Tensor) -> torch.Tensor:
        """Each unit's filter dotted with the image, ``[B, n_units, n_bins]``."""
        out = images.flatten(1) @ self.filters.flatten(1).T
        return out.reshape(-1, self.n_units, self.n_bins)

    def regularisation(self) -> torch.Tensor:
        """Weighted squared Laplacian of the filters (smoothness)."""
        if not self.hparams["smoothness"]:
            return self.filters.new_zeros(())
        kernel = _LAPLACIAN.to(self.filters)[None, None]
        flat = self.filters.flatten(0, 1)[:, None]
        curvature = F.conv2d(flat, kernel, padding=1)
        return self.hparams["smoothness"] * curvature.square().sum() / len(self.filters)

    def rf_positions(self) -> np.ndarray:
        """Estimated RF centres ``[n_units, 2]`` (x, y), normalised [-1, 1] coordinates.

        The centre of each filter's energy (squared weights summed over channels and time
        bins), see `neuralsight.models.encoders.base.energy_centres`.

        Examples
        --------
        >>> import torch
        >>> model = LNEncoder(n_inputs=1, image_shape=(1, 8, 8))
        >>> with torch.no_grad():
        ...     model.filters[0, 0, 2, 6] = 1.0
        >>> model.rf_positions().round(3).tolist()
        [[0.625, -0.375]]
        """
        _, height, width = self.image_shape
        energy = self.filters.detach().cpu().square().sum(1)
        return energy_centres(energy.reshape(self.n_units, self.n_bins, height, width).sum(1))
