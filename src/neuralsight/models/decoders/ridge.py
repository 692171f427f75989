"""The ridge baseline: a linear map from responses to pixels, solved in closed form.

`RidgeSolver` sums the sufficient statistics ``X'X``, ``X'Y`` (centred) batch by batch; one
eigendecomposition of ``X'X`` then gives the solution for every regularisation strength at
once, and held-out batches score them all. `RidgeDecoder` runs it under the Trainer: one
epoch (``max_epochs=1``) streams the training split, the validation split picks the
strength with the lowest pixel MSE. Every other decoder must beat this one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from neuralsight.models.decoders.base import Decoder, Scaling
from neuralsight.models.registry import DECODERS

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))


class RidgeSolver:
    """Closed-form ridge regression for all strengths in ``alphas`` from streamed batches.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(100, 3, dtype=torch.float64)
    >>> solver = RidgeSolver([1e-6])
    >>> solver.add(x, x @ torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64) + 5)
    >>> solver.solve()
    >>> weights, bias = solver.weights(1e-6)
    >>> [round(float(w), 3) for w in weights[:, 0]], round(float(bias[0]), 3)
    ([1.0, 2.0, 3.0], 5.0)
    """

    def __init__(self, alphas: Sequence[float] | torch.Tensor) -> None:
        self.alphas = torch.as_tensor(list(alphas), dtype=torch.float64)
        self.n = 0
        self._sums: list[torch.Tensor] | None = None
        self._solution: dict[str, torch.Tensor] | None = None
        self.sse_per_output: torch.Tensor | None = None
        self.n_scored = 0

    @property
    def sse(self) -> torch.Tensor:
        """Held-out squared error of every strength, summed over the outputs."""
        if self.sse_per_output is None:
            return torch.zeros_like(self.alphas)
        return self.sse_per_output.sum(1)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Accumulate a batch of inputs ``[B, n_in]`` and targets ``[B, n_out]``."""
        x, y = x.double(), y.double()
        batch = [x.sum(0), y.sum(0), x.T @ x, x.T @ y, (y**2).sum(0)]
        self._sums = (
            batch if self._sums is None else [a + b for a, b in zip(self._sums, batch, strict=True)]
        )
        self.n += len(x)

    @property
    def has_data(self) -> bool:
        """True once `add` has seen at least one batch."""
        return self.n > 0

    def solve(self) -> None:
        """Eigendecompose the centred ``X'X``; afterwards `weights` and `score` work."""
        if not self.has_data:
            raise RuntimeError("RidgeSolver.solve: no training batches were added")
        assert self._sums is not None  # has_data: batches were added
        sum_x, sum_y, xx, xy, yy = self._sums
        mean_x, mean_y = sum_x / self.n, sum_y / self.n
        eigvals, eigvecs = torch.linalg.eigh(xx - self.n * torch.outer(mean_x, mean_x))
        self._solution = {
            "eigvals": eigvals.clamp_min(0),
            "eigvecs": eigvecs,
            "projected": eigvecs.T @ (xy - self.n * torch.outer(mean_x, mean_y)),
            "mean_x": mean_x,
            "mean_y": mean_y,
            "var_y": (yy / self.n - mean_y**2).clamp_min(0),
        }
        self.sse_per_output = None
        self.n_scored = 0

    def _solved(self) -> dict[str, torch.Tensor]:
        if self._solution is None:
            raise RuntimeError("RidgeSolver: call solve() before score() or weights()")
        return self._solution

    def score(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the squared error of every strength on a held-out batch, per output too."""
        s = self._solved()
        z = (x.double() - s["mean_x"]) @ s["eigvecs"]
        target = y.double() - s["mean_y"]
        if self.sse_per_output is None:
            self.sse_per_output = torch.zeros(
                len(self.alphas), target.shape[1], dtype=torch.float64
            )
        for k, alpha in enumerate(self.alphas):
            pred = (z / (s["eigvals"] + alpha)) @ s["projected"]
            self.sse_per_output[k] += ((pred - target) ** 2).sum(0)
        self.n_scored += target.numel()

    def best_alpha(self, outputs: slice = slice(None)) -> float:
        """The strength with the lowest held-out error over ``outputs`` (all by default).

        The grid's middle if nothing was scored.
        """
        if self.n_scored == 0 or self.sse_per_output is None:
            return float(self.alphas[len(self.alphas) // 2])
        return float(self.alphas[int(torch.argmin(self.sse_per_output[:, outputs].sum(1)))])

    def weights(
        self, alpha: float | torch.Tensor, match_variance: bool | torch.Tensor = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights [n_in, n_out], bias [n_out])`` for strength ``alpha``.

        ``alpha`` is one strength or one per output (``[n_out]``). ``match_variance``
        (True, or a boolean mask ``[n_out]`` of the outputs it applies to) scales each
        output's weights so that its predictions on the training inputs have the variance
        of its training targets (ridge shrinks them towards the mean; outputs predicted as
        constant stay so).
        """
        s = self._solved()
        alphas = torch.as_tensor(alpha, dtype=torch.float64).expand(s["projected"].shape[1])
        weights = s["eigvecs"] @ (s["projected"] / (s["eigvals"][:, None] + alphas[None, :]))
        if isinstance(match_variance, torch.Tensor) or match_variance:
            gain = self._variance_gain(alphas)
            weights = weights * torch.where(torch.as_tensor(match_variance), gain, 1.0)
        return weights, s["mean_y"] - s["mean_x"] @ weights

    def _variance_gain(self, alphas: torch.Tensor) -> torch.Tensor:
        """Per output: SD of the training targets over SD of the training predictions."""
        s = self._solved()
        shrink = s["eigvals"][:, None] / (s["eigvals"][:, None] + alphas[None, :]) ** 2
        var_pred = (shrink * s["projected"] ** 2).sum(0) / self.n
        predicted = var_pred > 1e-12 * float(var_pred.max().clamp_min(1e-300))
        gain = torch.ones_like(var_pred)
        gain[predicted] = (s["var_y"][predicted] / var_pred[predicted]).sqrt()
        return gain


def fit_linear_layer(
    layer: nn.Linear,
    train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    val_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> float:
    """Set ``layer`` to the ridge solution of (input, target) batches; returns the strength.

    Inputs are ``[B, in_features]`` and targets anything that flattens to
    ``[B, out_features]``. The strength is chosen on ``val_batches``.
    """
    solver = RidgeSolver(alphas)
    for x, y in train_batches:
        solver.add(x, y.flatten(1))
    solver.solve()
    for x, y in val_batches:
        solver.score(x, y.flatten(1))
    alpha = solver.best_alpha()
    weights, bias = solver.weights(alpha)
    with torch.no_grad():
        layer.weight.copy_(weights.T.float())
        layer.bias.copy_(bias.float())
    return alpha


@DECODERS.register("ridge")
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

    alpha: torch.Tensor

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
        self.linear = nn.Linear(self.n_inputs, int(np.prod(self.image_shape)))
        nn.init.zeros_(self.linear.weight)
        self.register_buffer("alpha", torch.tensor(float("nan"), dtype=torch.float64))
        self.solver = RidgeSolver(alphas)
        self.match_variance = False

    @property
    def alphas(self) -> torch.Tensor:
        """The regularisation strengths the validation split chooses from."""
        return self.solver.alphas

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Scaled responses -> images through the fitted linear map."""
        return self.linear(features).reshape(-1, *self.image_shape)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """What the responses are regressed onto, ``[B, D]``: the pixels."""
        return images.flatten(1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """A zero-learning-rate optimizer stepped once per batch, so the Trainer counts steps.

        Nothing here has gradients; checkpointing and logging key on the step count.
        """
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_epoch_start(self) -> None:
        """Start the sufficient statistics afresh for this epoch."""
        self.solver = RidgeSolver(self.solver.alphas)

    def training_step(self, batch, batch_idx: int) -> None:
        """Accumulate the batch into the closed-form solution (no gradients)."""
        responses, images = batch
        self.solver.add(self.scaler(responses), self.targets(images))
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)  # configure_optimizers returns one
        optimizer.step()

    def on_validation_epoch_start(self) -> None:
        """Solve for every strength from the statistics gathered so far."""
        if self.solver.has_data:
            self.solver.solve()

    def validation_step(self, batch, batch_idx: int) -> None:
        """Score every strength on the batch."""
        if self.solver.has_data:
            responses, images = batch
            self.solver.score(self.scaler(responses), self.targets(images))

    def on_validation_epoch_end(self) -> None:
        """Keep the weights of the strength with the lowest validation error."""
        if self.solver.n_scored:
            self._set_weights(self.solver.best_alpha())
            self.log("val_alpha", float(self.alpha))
            self.log("val_loss", float(self.solver.sse.min()) / self.solver.n_scored)

    def on_train_epoch_end(self) -> None:
        """Without validation data, fall back to the grid's middle strength (and warn)."""
        if self.solver.n_scored == 0:
            self.solver.solve()
            self._set_weights(self.solver.best_alpha())
            warnings.warn(
                "RidgeDecoder: no validation data, regularisation set to the middle of the grid "
                f"(alpha={float(self.alpha):g}); give the DataModule a val_fraction > 0",
                stacklevel=1,
            )

    def _set_weights(self, alpha: float) -> None:
        self._load_solution(*self.solver.weights(alpha, self.match_variance), alpha)

    def _load_solution(self, weights: torch.Tensor, bias: torch.Tensor, alpha: float) -> None:
        """Put a `RidgeSolver.weights` solution into the linear map; record its strength."""
        self.linear.weight.data.copy_(weights.T.float())
        self.linear.bias.data.copy_(bias.float())
        self.alpha.fill_(alpha)
