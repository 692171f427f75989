"""An encoder on a frozen ImageNet AlexNet: one conv layer's features, a learned readout per unit.

The goal-driven models of Yamins et al. (2014) and Cadena et al. (PLoS Comput Biol 2019):
the features of a network trained for object recognition, read at one layer, predict
responses in V1, V4 and IT better than models trained on the neural data alone where that
data is small. Here:

- **Core**: torchvision's AlexNet, cut after the ReLU of ``layer`` (``conv1``..``conv5``),
  weights from `neuralsight.pretrained.load_pretrained` (``"auto"``, ``"imagenet"``,
  ``"random"``, a folder or a file; provenance in `PretrainedCoreEncoder.core_weights`),
  frozen (no gradients) and always in eval mode. Images are resized to ``feature_size``,
  made RGB and ImageNet-normalised by `neuralsight.metrics.features.imagenet_preprocess`,
  as the feature metrics do.
- **Normalisation**: a BatchNorm without affine parameters per feature channel (Cadena et
  al. put one between the network and the readout): AlexNet's channels differ in scale by
  orders of magnitude.
- **Readout**: `GaussianReadout` (a learned position on the feature map and channel
  weights, started at the unit's linear receptive field, as `CNNEncoder`'s) or
  `FactorisedReadout` (Klindt et al. 2017, a spatial mask times channel weights).

Because the core is frozen, its features of an image never change: they are kept in memory
by image content (a hash of the pixels) up to ``feature_cache_mb`` megabytes, so every epoch
after the first reads the cache instead of running AlexNet. Images that need a gradient
(`neuralsight.models.encoders.mei.most_exciting_input`) always go through the network.

The core's weights are part of the state dict (about 10 MB up to ``conv5``), so a checkpoint
holds everything and loads with ``weights_only=True``; its provenance travels in the
checkpoint under ``"core_weights"``. Loading builds the core first from the ``weights`` it
was trained with: where those files are absent, pass ``weights="random"`` to
``load_from_checkpoint`` (the checkpoint's tensors replace them, and the provenance read
back is the original one).

`choose_layer` trains one encoder per candidate layer and keeps the one with the best
validation correlation (the DataModule's validation split, carved from the training
images; the test images are never looked at).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.metrics.encoding import per_unit_correlation
from neuralsight.metrics.features import (
    ALEXNET_LAYERS,
    CONV_LAYERS,
    imagenet_preprocess,
    layer_is_covered,
)
from neuralsight.models.encoders.base import EncoderLoss
from neuralsight.models.encoders.cnn import FactorisedReadout, GaussianReadout, ReadoutEncoder
from neuralsight.models.registry import ENCODERS
from neuralsight.pretrained import load_pretrained

MIN_FEATURE_SIZE = 64
"""Smallest side AlexNet's five conv layers still give a feature map at (3 x 3 at conv5)."""

CHECKPOINT_KEY = "core_weights"
"""Where a checkpoint keeps the provenance of the core's weights."""


def alexnet_core(weights: str | os.PathLike | None, layer: str) -> tuple[nn.Sequential, str]:
    """AlexNet's ``features`` up to the ReLU of conv ``layer``, frozen, and its provenance.

    Raises a ValueError for a layer that is not a conv layer, or that the weights do not
    cover (a file holding only some of the layers).

    Examples
    --------
    >>> core, provenance = alexnet_core("random", "conv2")
    >>> len(core), provenance, core.training
    (5, 'random', False)
    """
    if layer not in CONV_LAYERS:
        raise ValueError(f"unknown AlexNet conv layer {layer!r}; expected one of {CONV_LAYERS}")
    pretrained = load_pretrained("alexnet", weights=weights)
    if not layer_is_covered(pretrained, layer):
        raise ValueError(f"the AlexNet weights {pretrained.weights} do not cover {layer}")
    end = int(ALEXNET_LAYERS[layer].rsplit(".", 1)[1]) + 1
    features = list(pretrained.network.get_submodule("features").children())
    core = nn.Sequential(*features[:end])
    return core.eval().requires_grad_(False), pretrained.weights


class FeatureCache:
    """A frozen core's features of images, kept by image content up to a size in bytes.

    Copies (`copy.deepcopy`, as `predict_responses` makes) share the one cache: the
    features of an image do not depend on anything a copy could change.

    Examples
    --------
    >>> import torch
    >>> cache = FeatureCache(limit_bytes=1 << 20)
    >>> calls = []
    >>> def double(x):
    ...     calls.append(len(x))
    ...     return 2 * x
    >>> images = torch.rand(3, 1, 4, 4)
    >>> torch.equal(cache(images, double), cache(images, double)), calls
    (True, [3])
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = int(limit_bytes)
        self.used_bytes = 0
        self.store: dict[bytes, torch.Tensor] = {}

    def __deepcopy__(self, memo: dict) -> FeatureCache:
        return self

    def __call__(
        self, images: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``compute(images)``, from the cache where it holds them."""
        host = images.detach().cpu().contiguous()
        keys = [hashlib.blake2b(x.numpy().tobytes(), digest_size=16).digest() for x in host]
        missing = [i for i, key in enumerate(keys) if key not in self.store]
        fresh = dict(zip(missing, compute(images[missing]), strict=True)) if missing else {}
        for i, features in fresh.items():
            size = features.numel() * features.element_size()
            if self.used_bytes + size <= self.limit_bytes and keys[i] not in self.store:
                self.store[keys[i]] = features.detach().cpu().clone()
                self.used_bytes += size
        rows = [fresh[i] if i in fresh else self.store[key] for i, key in enumerate(keys)]
        return torch.stack([row.to(images.device) for row in rows])


@ENCODERS.register("pretrained_core")
class PretrainedCoreEncoder(ReadoutEncoder):
    """Frozen ImageNet AlexNet read at one conv layer + a readout per unit.

    Parameters
    ----------
    n_inputs
        ``n_units * n_bins`` (linked from the DataModule).
    image_shape
        ``(channels, height, width)`` of the stimuli (1 or 3 channels).
    n_bins
        Time bins per unit.
    layer
        AlexNet conv layer read (``"conv1"``..``"conv5"``), after its ReLU.
    weights
        AlexNet's weights, as `neuralsight.pretrained.load_pretrained` takes them.
    feature_size
        Side images are resized to before AlexNet (224 as it was trained; at least 64).
    readout
        ``"gaussian"`` (`GaussianReadout`) or ``"factorised"`` (`FactorisedReadout`).
        Measured on the ten Cowley V4 sessions (``benchmarks/real_encoding.py``, layer
        chosen on validation, 20 epochs): factorised median r 0.579 against 0.449 for
        the Gaussian readout, higher on 10/10 sessions; it reads conv2 best, where the
        Gaussian readout's single point reads it worst.
    init_positions
        ``"linear"``: the readout starts at the units' linear receptive fields when
        training starts; ``"random"``: Gaussian positions uniform in ``init_mu_range``,
        factorised masks uniform.
    init_mu_range, init_sigma
        Gaussian readout initialisation (see `GaussianReadout`).
    position_lr_scale
        Learning rate of the readout's positions (or masks) relative to ``lr``. The core
        cannot move under them, so they learn at the full rate by default.
    readout_l1
        L1 penalty on the readout's channel weights (and masks).
    feature_cache_mb
        Megabytes of core features kept by image content (0: none kept).
    loss
        ``"poisson"`` (spike counts, default) or ``"mse"`` (z-scored responses).
    lr, weight_decay
        AdamW settings (the core has no trainable parameters).
    seed
        Seed of the Gaussian readout's initial positions.

    Examples
    --------
    >>> import torch
    >>> model = PretrainedCoreEncoder(n_inputs=4, image_shape=(3, 32, 32), weights="random",
    ...                               layer="conv2", feature_size=64).eval()
    >>> model(torch.rand(2, 3, 32, 32)).shape, model.core_weights, model.feature_shape
    (torch.Size([2, 4, 1]), 'random', (192, 7, 7))
    """

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        n_bins: int = 1,
        layer: str = "conv3",
        weights: str = "auto",
        feature_size: int = 112,
        readout: Literal["gaussian", "factorised"] = "gaussian",
        init_positions: Literal["linear", "random"] = "linear",
        init_mu_range: float = 0.5,
        init_sigma: float = 0.05,
        position_lr_scale: float = 1.0,
        readout_l1: float = 1e-4,
        feature_cache_mb: float = 1024.0,
        loss: EncoderLoss = "poisson",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__(n_inputs, image_shape, n_bins, loss, lr, weight_decay)
        if readout not in ("gaussian", "factorised"):
            raise ValueError(f"readout must be 'gaussian' or 'factorised', found {readout!r}")
        if init_positions not in ("linear", "random"):
            raise ValueError(
                f"init_positions must be 'linear' or 'random', found {init_positions!r}"
            )
        if feature_size < MIN_FEATURE_SIZE:
            raise ValueError(
                f"feature_size must be at least {MIN_FEATURE_SIZE} pixels for AlexNet, "
                f"found {feature_size}"
            )
        self.save_hyperparameters()
        self.core, self.core_weights = alexnet_core(weights, layer)
        self.feature_size = int(feature_size)
        with torch.no_grad():
            probe = self.core(torch.zeros(1, 3, self.feature_size, self.feature_size))
        channels, height, width = probe.shape[1:]
        self.feature_shape = (int(channels), int(height), int(width))
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.register_buffer("positions_ready", torch.tensor(init_positions == "random"))
        self.readout = (
            GaussianReadout(self.n_units, channels, self.n_bins, init_mu_range, init_sigma, seed)
            if readout == "gaussian"
            else FactorisedReadout(self.n_units, channels, height, width, self.n_bins)
        )
        self.cache = FeatureCache(int(feature_cache_mb * 2**20))

    def train(self, mode: bool = True) -> PretrainedCoreEncoder:
        """Set the training mode of everything but the core, which stays in eval mode."""
        super().train(mode)
        self.core.eval()
        return self

    def _core_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.core(imagenet_preprocess(images, self.feature_size))

    def core_features(self, images: torch.Tensor) -> torch.Tensor:
        """AlexNet's ``layer`` features ``[B, C, h, w]`` of images ``[B, C, H, W]`` in [0, 1].

        Cached by image content, except for images that need a gradient.
        """
        if images.requires_grad and torch.is_grad_enabled():
            return self._core_features(images)
        with torch.no_grad():
            return self.cache(images, self._core_features)

    def drive(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised core features read out per unit, ``[B, n_units, n_bins]``."""
        return self.readout(self.norm(self.core_features(images)))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record where the core's weights came from."""
        checkpoint[CHECKPOINT_KEY] = self.core_weights

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Take back the provenance of the core's weights (the state dict holds them)."""
        self.core_weights = str(checkpoint.get(CHECKPOINT_KEY, self.core_weights))


@dataclass
class LayerChoice:
    """What `choose_layer` found: the best layer, its trained encoder, every layer's score.

    Attributes
    ----------
    layer
        The layer with the highest mean validation correlation.
    model
        The encoder trained on it (eval mode).
    val_r
        ``{layer: mean per-unit Pearson r on the validation split}``.
    seconds
        ``{layer: seconds spent training and validating}``.
    """

    layer: str
    model: PretrainedCoreEncoder
    val_r: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def validation_correlation(model: nn.Module, batches: Iterable) -> float:
    """Mean over units (and bins) of the Pearson r between predictions and responses.

    ``batches`` yields ``(responses, images)``, e.g. a DataModule's validation loader.

    Examples
    --------
    >>> import torch
    >>> images = torch.rand(10, 1, 2, 2)
    >>> responses = images.sum((1, 2, 3))[:, None, None]
    >>> validation_correlation(lambda x: 3 * x.sum((1, 2, 3))[:, None, None],
    ...                        [(responses, images)])
    1.0
    """
    predicted, recorded = [], []
    with torch.inference_mode():
        for responses, images in batches:
            predicted.append(model(images).flatten(1).double().cpu())
            recorded.append(responses.flatten(1).double().cpu())
    r = per_unit_correlation(torch.cat(predicted).numpy(), torch.cat(recorded).numpy())
    return float(np.round(r.mean(), 12))


def choose_layer(
    datamodule: NeuralDataModule,
    fit: Callable[[PretrainedCoreEncoder, NeuralDataModule], Any],
    layers: Sequence[str] = ("conv2", "conv3", "conv4", "conv5"),
    **encoder_kwargs: Any,
) -> LayerChoice:
    """Train a `PretrainedCoreEncoder` per layer; keep the best on the validation split.

    Parameters
    ----------
    datamodule
        Its training split trains each encoder, its validation split (carved from the
        training images by ``val_fraction``) scores it; its test split is never used.
    fit
        Trains an encoder on the DataModule, e.g. ``neuralsight.train.fit`` with the
        epochs and devices bound (models do not build Trainers).
    layers
        Candidate AlexNet conv layers.
    **encoder_kwargs
        The other arguments of every encoder (``weights``, ``feature_size``, ...).

    Examples
    --------
    >>> import functools, numpy as np
    >>> from neuralsight.data import NeuralDataset
    >>> from neuralsight.train import fit
    >>> rng = np.random.default_rng(0)
    >>> ds = NeuralDataset.from_arrays(rng.poisson(2, (40, 3)).astype("float32"),
    ...                                rng.random((40, 3, 16, 16), dtype=np.float32))
    >>> dm = NeuralDataModule(dataset=ds, batch_size=8, val_fraction=0.25)
    >>> train = functools.partial(fit, max_epochs=1, progress=False, accelerator="cpu")
    >>> choice = choose_layer(dm, train, ("conv2", "conv3"), weights="random", feature_size=64)
    >>> sorted(choice.val_r), choice.layer in ("conv2", "conv3")
    (['conv2', 'conv3'], True)
    """
    if not layers:
        raise ValueError("choose_layer needs at least one candidate layer")
    datamodule.setup("fit")
    if not len(datamodule.val_set):
        raise ValueError(
            "choose_layer needs a validation split: give the DataModule val_fraction > 0"
        )
    val_r: dict[str, float] = {}
    seconds: dict[str, float] = {}
    best: PretrainedCoreEncoder | None = None
    for layer in layers:
        start = time.perf_counter()
        model = PretrainedCoreEncoder(
            datamodule.n_inputs, datamodule.image_shape, layer=layer, **encoder_kwargs
        )
        fit(model, datamodule)
        val_r[layer] = validation_correlation(model.eval(), datamodule.val_dataloader())
        seconds[layer] = round(time.perf_counter() - start, 2)
        if best is None or val_r[layer] > val_r[best.hparams["layer"]]:
            best = model
    assert best is not None  # layers is not empty
    return LayerChoice(best.hparams["layer"], best, val_r, seconds)
