"""The common surface of every encoder: images in, neural responses out, as a `LightningModule`.

An encoder is built from plain keyword arguments: ``n_inputs`` (``n_units * n_bins``, linked
from the DataModule like a decoder's), ``image_shape`` and ``n_bins``. `Encoder.forward` takes
images ``[B, C, H, W]`` and returns responses ``[B, n_units, n_bins]`` in the recorded units:

- ``loss="poisson"`` (spike counts): the output is a rate ``softplus(drive + bias)`` and the
  loss the Poisson negative log-likelihood; the bias starts at the training mean.
- ``loss="mse"`` (fMRI, or any real-valued response): the drive predicts z-scored responses
  (training-split statistics, held in buffers), the loss is their mean squared error, and the
  output is scaled back.

`predict_responses` batches images through an eval-mode copy without gradients. The
predictions file and its writer live in `neuralsight.metrics.results`; `score_encoder`
(`neuralsight.metrics.score`) scores an encoder or its file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralsight.data.dataset import NeuralDataset
from neuralsight.models.inference import optimize_for_inference

EncoderLoss = Literal["poisson", "mse"]
MIN_RATE = 1e-3


class Encoder(L.LightningModule):
    """Base class of encoders: response statistics, the output link, losses, batched prediction.

    Subclasses implement `drive` (images -> ``[B, n_units, n_bins]`` before the bias and the
    link) and may add a `regularisation` term.

    Parameters
    ----------
    n_inputs
        ``n_units * n_bins``, the length of one flattened response vector.
    image_shape
        ``(channels, height, width)`` of the stimuli.
    n_bins
        Time bins per unit; ``n_inputs`` must be a multiple of it.
    loss
        ``"poisson"`` (spike counts) or ``"mse"`` (z-scored real-valued responses).
    lr, weight_decay
        AdamW settings.
    """

    response_mean: torch.Tensor
    response_std: torch.Tensor
    stats_fitted: torch.Tensor

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        n_bins: int = 1,
        loss: EncoderLoss = "poisson",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if n_bins < 1 or n_inputs < 1 or n_inputs % n_bins:
            raise ValueError(
                f"n_inputs (n_units * n_bins) must be a positive multiple of n_bins, "
                f"found n_inputs={n_inputs}, n_bins={n_bins}"
            )
        if len(image_shape) != 3 or image_shape[0] not in (1, 3):
            raise ValueError(
                f"image_shape must be (channels, height, width) with 1 or 3 channels, "
                f"found {tuple(image_shape)}"
            )
        if loss not in ("poisson", "mse"):
            raise ValueError(f"loss must be 'poisson' or 'mse', found {loss!r}")
        self.n_inputs, self.n_bins = int(n_inputs), int(n_bins)
        self.n_units = self.n_inputs // self.n_bins
        self.image_shape = tuple(int(s) for s in image_shape)
        self.loss_name = loss
        self.lr, self.weight_decay = lr, weight_decay
        self.bias = nn.Parameter(torch.zeros(self.n_units, self.n_bins))
        self.register_buffer("response_mean", torch.zeros(self.n_units, self.n_bins))
        self.register_buffer("response_std", torch.ones(self.n_units, self.n_bins))
        self.register_buffer("stats_fitted", torch.tensor(False))

    def fit_response_stats(self, stats: dict) -> None:
        """Take ``{"mean", "std"}`` of the training responses (flattened ``[n_inputs]``).

        Sets the buffers and starts the bias at the mean rate (Poisson) or 0 (MSE).
        """
        shape = (self.n_units, self.n_bins)
        mean = torch.as_tensor(stats["mean"], dtype=torch.float32).reshape(shape)
        std = torch.as_tensor(stats["std"], dtype=torch.float32).reshape(shape)
        with torch.no_grad():
            self.response_mean.copy_(mean)
            self.response_std.copy_(std)
            if self.loss_name == "poisson":
                rate = mean.clamp_min(MIN_RATE).to(self.bias.device)
                self.bias.copy_(rate + torch.log(-torch.expm1(-rate)))
            self.stats_fitted.fill_(True)

    def setup(self, stage: str) -> None:
        """Take the response statistics from the DataModule's training split, unless taken."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if not bool(self.stats_fitted) and datamodule is not None:
            self.fit_response_stats(datamodule.response_stats())

    def drive(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` -> ``[B, n_units, n_bins]`` before bias and link."""
        raise NotImplementedError

    def regularisation(self) -> torch.Tensor:
        """A penalty added to the training loss (none by default)."""
        return self.bias.new_zeros(())

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"images must have shape [B, {', '.join(map(str, self.image_shape))}] "
                f"(the encoder's image_shape), found {tuple(images.shape)}"
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted responses ``[B, n_units, n_bins]`` in recorded units."""
        self._check_images(images)
        drive = self.drive(images) + self.bias
        if self.loss_name == "poisson":
            return F.softplus(drive)
        return drive * self.response_std + self.response_mean

    def response_loss(self, predicted: torch.Tensor, recorded: torch.Tensor) -> torch.Tensor:
        """Poisson negative log-likelihood, or MSE of z-scored responses."""
        if self.loss_name == "poisson":
            return F.poisson_nll_loss(predicted, recorded, log_input=False, eps=1e-6)
        return F.mse_loss(
            (predicted - self.response_mean) / self.response_std,
            (recorded - self.response_mean) / self.response_std,
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """The response loss of a batch plus the regularisation."""
        responses, images = batch
        loss = self.response_loss(self(images), responses)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        return loss + self.regularisation()

    def _evaluate(self, batch, prefix: str) -> None:
        responses, images = batch
        predicted = self(images)
        self.log(f"{prefix}_loss", self.response_loss(predicted, responses), prog_bar=True)
        self.log(f"{prefix}_r", mean_unit_correlation(predicted, responses), prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        """Log the validation loss and mean per-unit correlation."""
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        """Log the test loss and mean per-unit correlation."""
        self._evaluate(batch, "test")

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Predicted responses to a batch of images (or of ``(responses, images)``)."""
        images = batch[1] if isinstance(batch, list | tuple) else batch
        return self(images)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over all parameters."""
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def predict_responses(
        self,
        data: NeuralDataset | np.ndarray | torch.Tensor,
        split: str = "test",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Predicted responses, batched, without gradients, through an eval-mode copy.

        ``data`` is a `NeuralDataset` (one row per trial of ``split``, aligned with
        ``data.trials(split)``) or images ``[N, C, H, W]``. Returns float32
        ``[N, n_units, n_bins]``.

        Examples
        --------
        >>> import numpy as np
        >>> from neuralsight.models.encoders import LNEncoder
        >>> model = LNEncoder(n_inputs=6, image_shape=(1, 8, 8), n_bins=2)
        >>> model.predict_responses(np.zeros((3, 1, 8, 8), np.float32)).shape
        (3, 3, 2)
        """
        return predict_in_batches(
            optimize_for_inference(self), data, split, batch_size, self.device
        )


def predict_in_batches(
    encode: Callable[[torch.Tensor], torch.Tensor],
    data: NeuralDataset | np.ndarray | torch.Tensor,
    split: str = "test",
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Run ``encode`` (images -> responses) over a dataset split or an image array.

    Batches of ``batch_size`` images are moved to ``device`` and run without gradients.

    With a `NeuralDataset`, each distinct stimulus of the ``split`` trials is encoded once
    and the result is repeated for every trial that showed it, so row *i* belongs to trial
    ``data.trials(split)[i]``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> ds = NeuralDataset.from_arrays(np.zeros((3, 2), np.float32),
    ...                                np.ones((2, 1, 4, 4), np.float32), stimulus_id=[0, 1, 0])
    >>> predict_in_batches(lambda x: x.sum((1, 2, 3))[:, None, None], ds, "train")[:, 0, 0]
    array([16., 16., 16.], dtype=float32)
    """
    if isinstance(data, NeuralDataset):
        ids = data.stimulus_id[data.trials(split)]
        unique, inverse = np.unique(ids, return_inverse=True)
        images = np.asarray(data.stimuli[unique] if len(unique) else data.stimuli[:0])
        return predict_in_batches(encode, images, split, batch_size, device)[inverse]
    image_tensor = torch.as_tensor(np.asarray(data), dtype=torch.float32)
    with torch.inference_mode():
        out = [encode(x.to(device)).float().cpu() for x in image_tensor.split(batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0,), np.float32)


def energy_centres(energy: torch.Tensor) -> np.ndarray:
    """Centres ``[n, 2]`` (x, y) of non-negative maps ``[n, H, W]``, normalised coordinates.

    Each map is blurred with a 3x3 box to find its peak; the centre is the energy-weighted
    mean of the 3x3 pixels around the peak (sub-pixel), pixel *k* of *n* sitting at
    ``-1 + (2k + 1) / n`` (the ``grid_sample`` and simulator convention).

    Examples
    --------
    >>> import torch
    >>> energy = torch.zeros(1, 8, 8)
    >>> energy[0, 2, 6] = 1.0
    >>> energy_centres(energy).round(3).tolist()
    [[0.625, -0.375]]
    """
    n, height, width = energy.shape
    blurred = F.avg_pool2d(energy[:, None], 3, stride=1, padding=1)[:, 0]
    peak = blurred.flatten(1).argmax(1)
    rows, cols = peak // width, peak % width
    padded = F.pad(energy, (1, 1, 1, 1))
    offsets = torch.arange(-1, 2, dtype=energy.dtype)
    centres = np.zeros((n, 2))
    for i in range(n):
        patch = padded[i, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3]
        total = patch.sum().clamp_min(1e-30)
        col = float(cols[i]) + float((patch.sum(0) * offsets).sum() / total)
        row = float(rows[i]) + float((patch.sum(1) * offsets).sum() / total)
        centres[i] = (-1 + (2 * col + 1) / width, -1 + (2 * row + 1) / height)
    return centres


def mean_unit_correlation(predicted: torch.Tensor, recorded: torch.Tensor) -> torch.Tensor:
    """Mean over units (and bins) of the Pearson r over the batch; 0 for constant columns.

    ``predicted`` and ``recorded`` are ``[B, ...]``; every trailing position is a unit.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(50, 4, 1)
    >>> round(float(mean_unit_correlation(2 * x + 1, x)), 6)
    1.0
    """
    a = predicted.flatten(1) - predicted.flatten(1).mean(0)
    b = recorded.flatten(1) - recorded.flatten(1).mean(0)
    denom = a.norm(dim=0) * b.norm(dim=0)
    r = torch.where(denom > 0, (a * b).sum(0) / denom.clamp_min(1e-12), torch.zeros_like(denom))
    return r.mean()
