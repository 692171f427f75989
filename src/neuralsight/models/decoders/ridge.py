"""The ridge baseline: a linear map from responses to pixels, solved in closed form.

The Trainer streams the training split once (``max_epochs=1``) while the decoder sums the
sufficient statistics ``X'X``, ``X'Y`` (centred); then one eigendecomposition of ``X'X``
gives the solution for every regularisation strength at once. The validation split picks
the strength with the lowest pixel MSE. Every other decoder must beat this one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from neuralsight.models.decoders.base import Decoder, Scaling

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))


class RidgeDecoder(Decoder):
    """Closed-form ridge regression from scaled responses to pixels.

    Parameters
    ----------
    n_inputs
        ``n_units * n_bins``.
    image_shape
        ``(channels, height, width)``.
    alphas
        Regularisation strengths to choose from on the validation split (the chosen one is
        stored in ``alpha``).
    scaling
        Response scaling (``"zscore"`` by default).

    Examples
    --------
    >>> import numpy as np, lightning as L
    >>> from neuralsight.data import NeuralDataset, NeuralDataModule
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((200, 1, 4, 4), dtype=np.float32)
    >>> r = x.reshape(200, -1) @ rng.normal(size=(16, 30)).astype(np.float32)
    >>> dm = NeuralDataModule(dataset=NeuralDataset.from_arrays(r, x), batch_size=50)
    >>> model = RidgeDecoder(n_inputs=30, image_shape=(1, 4, 4))
    >>> L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
    ...           enable_model_summary=False, enable_checkpointing=False).fit(model, dm)
    >>> float(abs(model.reconstruct(r[:5]) - x[:5]).max()) < 0.05
    True
    """

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        scaling: Scaling = "zscore",
    ) -> None:
        super().__init__(n_inputs, image_shape, scaling)
        self.save_hyperparameters()
        self.automatic_optimization = False
        n_pixels = int(np.prod(self.image_shape))
        self.linear = nn.Linear(self.n_inputs, n_pixels)
        nn.init.zeros_(self.linear.weight)
        self.register_buffer("alphas", torch.tensor(list(alphas), dtype=torch.float64))
        self.register_buffer("alpha", torch.tensor(float("nan"), dtype=torch.float64))
        self._reset_statistics()

    def _reset_statistics(self) -> None:
        self._n = 0
        self._sum_x: torch.Tensor | None = None
        self._sum_y: torch.Tensor | None = None
        self._xx: torch.Tensor | None = None
        self._xy: torch.Tensor | None = None
        self._solution: dict[str, torch.Tensor] | None = None
        self._val_sse: torch.Tensor | None = None
        self._val_count = 0

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).reshape(-1, *self.image_shape)

    def configure_optimizers(self) -> None:
        return None

    def on_train_epoch_start(self) -> None:
        self._reset_statistics()

    def training_step(self, batch, batch_idx: int) -> None:
        responses, images = batch
        x = self.scaler(responses).double()
        y = images.flatten(1).double()
        if self._xx is None:
            self._sum_x, self._sum_y = x.sum(0), y.sum(0)
            self._xx, self._xy = x.T @ x, x.T @ y
        else:
            self._sum_x += x.sum(0)
            self._sum_y += y.sum(0)
            self._xx += x.T @ x
            self._xy += x.T @ y
        self._n += len(x)

    def on_validation_epoch_start(self) -> None:
        if self._xx is not None:
            self._solve()

    def on_train_epoch_end(self) -> None:
        if self._solution is not None or torch.isnan(self.alpha):
            self._solve()
            self._set_weights(float(self.alphas[len(self.alphas) // 2]))
            warnings.warn(
                "RidgeDecoder: no validation data, regularisation set to the middle of the grid "
                f"(alpha={float(self.alpha):g}); give the DataModule a val_fraction > 0",
                stacklevel=1,
            )
        self._solution = None

    def _solve(self) -> None:
        mean_x, mean_y = self._sum_x / self._n, self._sum_y / self._n
        xx = self._xx - self._n * torch.outer(mean_x, mean_x)
        xy = self._xy - self._n * torch.outer(mean_x, mean_y)
        eigvals, eigvecs = torch.linalg.eigh(xx)
        self._solution = {
            "eigvals": eigvals.clamp_min(0),
            "eigvecs": eigvecs,
            "projected": eigvecs.T @ xy,
            "mean_x": mean_x,
            "mean_y": mean_y,
        }
        self._val_sse = torch.zeros_like(self.alphas)
        self._val_count = 0

    def validation_step(self, batch, batch_idx: int) -> None:
        if self._solution is None:
            return
        responses, images = batch
        s = self._solution
        z = (self.scaler(responses).double() - s["mean_x"]) @ s["eigvecs"]
        y = images.flatten(1).double() - s["mean_y"]
        for k, alpha in enumerate(self.alphas):
            pred = (z / (s["eigvals"] + alpha)) @ s["projected"]
            self._val_sse[k] += ((pred - y) ** 2).sum()
        self._val_count += y.numel()

    def on_validation_epoch_end(self) -> None:
        if self._solution is None or self._val_count == 0:
            return
        best = int(torch.argmin(self._val_sse))
        self._set_weights(float(self.alphas[best]))
        self.log("val_alpha", float(self.alpha))
        self.log("val_loss", float(self._val_sse[best]) / self._val_count)
        self._solution = None

    def _set_weights(self, alpha: float) -> None:
        s = self._solution
        weights = s["eigvecs"] @ (s["projected"] / (s["eigvals"] + alpha)[:, None])
        bias = s["mean_y"] - s["mean_x"] @ weights
        self.linear.weight.data.copy_(weights.T.float())
        self.linear.bias.data.copy_(bias.float())
        self.alpha.fill_(alpha)
