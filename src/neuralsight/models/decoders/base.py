"""The common surface of every decoder: responses in, images out, as a `LightningModule`.

A decoder is built from plain keyword arguments (so a YAML config can build it), takes
``responses [batch, n_units, n_bins]`` in `forward` and returns images ``[batch, C, H, W]`` in
[0, 1]. Responses are scaled by statistics of the training split (z-score or min-max), held
in buffers so they travel with the checkpoint; they are taken from the DataModule when
training starts. `reconstruct` batches a whole dataset through the fast inference path.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from neuralsight.data.dataset import NeuralDataset
from neuralsight.data.views import PairDataset
from neuralsight.metrics.image import image_metrics, pixcorr_per_image
from neuralsight.models.inference import optimize_for_inference

Scaling = Literal["zscore", "minmax"]
DecoderT = TypeVar("DecoderT", bound="Decoder")


class ResponseScaler(nn.Module):
    """Flattens responses and scales each feature by training-split statistics.

    Examples
    --------
    >>> import torch
    >>> scaler = ResponseScaler(3, "zscore")
    >>> scaler.fit({"mean": torch.ones(3), "std": 2 * torch.ones(3), "min": 0, "max": 1})
    >>> scaler(torch.full((1, 3, 1), 5.0)).tolist()
    [[2.0, 2.0, 2.0]]
    """

    offset: torch.Tensor
    scale: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, n_inputs: int, mode: Scaling = "zscore") -> None:
        super().__init__()
        if mode not in ("zscore", "minmax"):
            raise ValueError(f"response scaling must be 'zscore' or 'minmax', found {mode!r}")
        self.mode = mode
        self.register_buffer("offset", torch.zeros(n_inputs))
        self.register_buffer("scale", torch.ones(n_inputs))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, stats: dict) -> None:
        """Set the offset and scale from ``{"mean", "std", "min", "max"}`` statistics."""
        if self.mode == "zscore":
            offset, scale = stats["mean"], stats["std"]
        else:
            offset = stats["min"]
            scale = torch.as_tensor(stats["max"]) - torch.as_tensor(stats["min"])
        self.offset.copy_(torch.as_tensor(offset, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.fitted.fill_(True)

    def forward(self, responses: torch.Tensor) -> torch.Tensor:
        """Responses ``[B, ...]`` flattened to ``[B, n_inputs]`` and scaled."""
        flat = responses.reshape(responses.shape[0], -1)
        if flat.shape[1] != self.offset.shape[0]:
            raise ValueError(
                f"responses have {flat.shape[1]} features (n_units * n_bins) per trial, "
                f"the decoder expects {self.offset.shape[0]}"
            )
        return (flat - self.offset) / self.scale


class Decoder(L.LightningModule):
    """Base class of decoders: scaling, MSE training, validation, and batched reconstruction.

    Subclasses implement `decode` (scaled responses ``[B, n_inputs]`` -> images) and may
    override `training_loss`.
    """

    def __init__(
        self, n_inputs: int, image_shape: tuple[int, int, int], scaling: Scaling = "zscore"
    ) -> None:
        super().__init__()
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be positive, found {n_inputs}")
        if len(image_shape) != 3 or image_shape[0] not in (1, 3):
            raise ValueError(
                f"image_shape must be (channels, height, width) with 1 or 3 channels, "
                f"found {tuple(image_shape)}"
            )
        self.n_inputs = int(n_inputs)
        channels, height, width = (int(s) for s in image_shape)
        self.image_shape = (channels, height, width)
        self.scaler = ResponseScaler(self.n_inputs, scaling)

    def setup(self, stage: str) -> None:
        """Fit the response scaling on the DataModule's training split, unless it is fitted."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if not bool(self.scaler.fitted) and datamodule is not None:
            self.scaler.fit(datamodule.response_stats())

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Scaled responses ``[B, n_inputs]`` -> images; each decoder implements it."""
        raise NotImplementedError

    def forward(self, responses: torch.Tensor) -> torch.Tensor:
        """Responses ``[B, n_units, n_bins]`` -> images ``[B, C, H, W]``."""
        return self.decode(self.scaler(responses))

    def training_loss(self, responses: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Mean squared error between the reconstruction and the stimulus."""
        return nn.functional.mse_loss(self(responses), images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        """The training loss of a batch (None in subclasses that step their own optimizer)."""
        responses, images = batch
        loss = self.training_loss(responses, images)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        """Log the MSE and PixCorr of the clipped reconstructions."""
        responses, images = batch
        recon = self(responses).clamp(0, 1)
        self.log("val_loss", nn.functional.mse_loss(recon, images), prog_bar=True)
        self.log("val_pixcorr", float(pixcorr_per_image(recon, images).mean()), prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        """Log every image metric of the clipped reconstructions."""
        responses, images = batch
        recon = self(responses).clamp(0, 1)
        for name, value in image_metrics(recon, images).items():
            self.log(f"test_{name}", value, batch_size=len(images))

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Clipped reconstructions of a batch of responses (or of ``(responses, images)``)."""
        responses = batch[0] if isinstance(batch, list | tuple) else batch
        return self(responses).clamp(0, 1)

    def optimize_for_inference(self: DecoderT) -> DecoderT:
        """An eval-mode copy for fast inference: BatchNorm folded, channels-last convs.

        See `neuralsight.models.inference.optimize_for_inference`; this decoder is left
        untouched. `reconstruct` runs through such a copy.

        Examples
        --------
        >>> import torch
        >>> from neuralsight.models.decoders import SID
        >>> model = SID(n_inputs=20, image_shape=(1, 32, 32))
        >>> fast = model.optimize_for_inference()
        >>> x = torch.rand(3, 20, 1)
        >>> bool((fast(x) - model.eval()(x)).abs().max() < 1e-4)
        True
        """
        return optimize_for_inference(self)

    @torch.inference_mode()
    def reconstruct(
        self,
        data: NeuralDataset | PairDataset | np.ndarray | torch.Tensor,
        split: str = "test",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Reconstruct images from responses, batched, without gradients, in eval mode.

        Runs the fast path of `optimize_for_inference` (the decoder itself is not changed).

        ``data`` is a `NeuralDataset` (its ``split`` trials are decoded), a `PairDataset`, or
        a responses array ``[n, n_units, n_bins]`` / ``[n, n_units * n_bins]``. Returns
        float32 images ``[n, C, H, W]`` in [0, 1]. A dataset with no trials in ``split`` is
        refused (a silent empty result would score as nothing at all).
        """
        if isinstance(data, NeuralDataset):
            trials = data.trials(split)
            if len(trials) == 0:
                raise ValueError(
                    f"the dataset {data.source!r} has no trials in split {split!r}; its splits: "
                    f"{data.summary()['splits']}"
                )
            data = PairDataset(data, trials)
        if isinstance(data, PairDataset):
            batches = (r for r, _ in DataLoader(data, batch_size=batch_size))
        else:
            responses = torch.as_tensor(np.asarray(data), dtype=torch.float32)
            batches = responses.split(batch_size)
        fast = self.optimize_for_inference()
        device = next(fast.parameters()).device
        out = [fast(r.to(device)).clamp(0, 1).float().cpu().contiguous() for r in batches]
        return torch.cat(out).numpy() if out else np.zeros((0, *self.image_shape), np.float32)
