"""Feature-space metrics: AlexNet layer correlation and two-way identification.

These are the high-level metrics of MonkeySee (Le et al., NeurIPS 2024, Table 1) and of
much of the image-reconstruction literature:

- **Layer correlation.** Reconstructions and true images go through torchvision's AlexNet
  (resized to 224 x 224 with antialiasing, grey images repeated to three channels,
  ImageNet-normalised). For each layer, the Pearson r between the flattened features of a
  reconstruction and those of its own true image is computed per image and averaged.
  Layers are read after their ReLU (``conv1``..``conv5``, ``fc6``, ``fc7``) and ``fc8`` is
  the logits; see `ALEXNET_LAYERS` for the torchvision node of each.
- **Two-way identification.** For reconstruction *i*, every other true image *j* is a
  distractor; the score is the fraction of distractors whose features correlate *less*
  with the reconstruction than the features of the true image *i* do (ties count half),
  averaged over *i*. Chance is 0.5, perfect is 1.0. It is computed in pixel space and on
  `TWOWAY_LAYERS` (AlexNet layers 2 and 5, as in the paper). Reconstructions of one
  stimulus should be given once (average repeats first): a duplicate true image is a
  distractor that can only tie.

The network's weights come from `neuralsight.pretrained.load_pretrained` (a weights folder,
the hub cache or torchvision); the result records their provenance under ``"weights"``
(``"random"`` weights give numbers that cannot be compared with published ones). Layers
that the weights do not cover (``fc6``-``fc8`` with a file of AlexNet's convolutions only)
are not computed on random weights: they are listed under ``"unavailable"`` instead.
Forward passes are batched, in inference mode.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from neuralsight.metrics.image import ImageBatch, check_pair, pearson_rows
from neuralsight.pretrained import Pretrained, load_pretrained

ALEXNET_LAYERS: dict[str, str] = {
    "conv1": "features.1",
    "conv2": "features.4",
    "conv3": "features.7",
    "conv4": "features.9",
    "conv5": "features.11",
    "fc6": "classifier.2",
    "fc7": "classifier.5",
    "fc8": "classifier.6",
}
"""Layer name -> torchvision AlexNet node whose output is read (after ReLU; fc8 = logits)."""

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
"""The AlexNet layers with a spatial output (MonkeySee's Table 1 reports these)."""

TWOWAY_LAYERS: tuple[str, ...] = ("conv2", "conv5")
"""AlexNet layers on which two-way identification is computed by default."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ALEXNET_INPUT_SIZE = 224


def _check_layers(layers: Sequence[str]) -> None:
    unknown = [layer for layer in layers if layer not in ALEXNET_LAYERS]
    if unknown:
        raise ValueError(
            f"unknown AlexNet layer(s) {unknown}; expected names from {list(ALEXNET_LAYERS)}"
        )


def layer_is_covered(pretrained: Pretrained, layer: str) -> bool:
    """True when every parameter that AlexNet's ``layer`` depends on came from the weights.

    A layer depends on every layer with parameters up to its node in `ALEXNET_LAYERS`.

    Examples
    --------
    >>> layer_is_covered(load_pretrained("alexnet", weights="random"), "fc8")
    True
    """
    order = [name for name, _ in pretrained.network.named_modules()]
    position = order.index(ALEXNET_LAYERS[layer])
    with_parameters = [
        name
        for name, module in pretrained.network.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    return all(pretrained.covers(name) for name in with_parameters if order.index(name) <= position)


def default_device() -> torch.device:
    """The first CUDA device when one is available, else the CPU.

    Examples
    --------
    >>> default_device().type in ("cpu", "cuda")
    True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def imagenet_preprocess(images: torch.Tensor, size: int = ALEXNET_INPUT_SIZE) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` images in [0, 1] to ``size``, make them RGB and normalise them.

    Examples
    --------
    >>> import torch
    >>> tuple(imagenet_preprocess(torch.rand(2, 1, 28, 28)).shape)
    (2, 3, 224, 224)
    """
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    elif images.shape[1] != 3:
        raise ValueError(
            f"images must have 1 or 3 channels at axis 1, found shape {tuple(images.shape)}"
        )
    if images.shape[-2:] != (size, size):
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device)
    return (images - mean[:, None, None]) / std[:, None, None]


class AlexNetFeatures:
    """Flattened AlexNet layer features of image batches, with the weights' provenance.

    Parameters
    ----------
    network
        A torchvision ``AlexNet`` (its weights are not changed).
    weights
        Provenance of the network's weights (``"imagenet"``, ``"random"``, ``"file:..."``).
    layers
        Names from `ALEXNET_LAYERS` to read.
    device
        Where to run; the first GPU when available by default.
    input_size
        Side images are resized to: 224 as AlexNet was trained (and as published numbers
        use); smaller values (at least 64) only for quick checks.
    unavailable
        Layers asked for that the weights do not cover: not read, reported by
        `feature_metrics`.

    Examples
    --------
    >>> import torch
    >>> extractor = AlexNetFeatures.from_pretrained(weights="random", device="cpu")
    >>> features = extractor(torch.rand(2, 3, 32, 32))
    >>> tuple(features["conv5"].shape)
    (2, 43264)
    """

    def __init__(
        self,
        network: nn.Module,
        weights: str,
        layers: Sequence[str] = tuple(ALEXNET_LAYERS),
        device: str | torch.device | None = None,
        input_size: int = ALEXNET_INPUT_SIZE,
        unavailable: Sequence[str] = (),
    ) -> None:
        _check_layers(layers)
        if not layers:
            raise ValueError(
                f"no AlexNet layer to read: the weights ({weights}) cover none of "
                f"{list(unavailable)}"
            )
        if input_size < 64:
            raise ValueError(
                f"input_size must be at least 64 pixels for AlexNet, found {input_size}"
            )
        self.weights = weights
        self.layers = tuple(layers)
        self.unavailable = tuple(unavailable)
        self.input_size = input_size
        self.device = torch.device(device) if device is not None else default_device()
        network = network.eval().requires_grad_(False)
        return_nodes = {ALEXNET_LAYERS[layer]: layer for layer in self.layers}
        self.extractor = create_feature_extractor(network, return_nodes=return_nodes)
        self.extractor.to(self.device).eval()

    @classmethod
    def from_pretrained(
        cls,
        weights: str | os.PathLike | None = "auto",
        layers: Sequence[str] = tuple(ALEXNET_LAYERS),
        device: str | torch.device | None = None,
        input_size: int = ALEXNET_INPUT_SIZE,
    ) -> AlexNetFeatures:
        """Build from `load_pretrained` (``weights`` follows its policy).

        Layers that the weights do not cover go to `unavailable` instead of `layers`.

        Examples
        --------
        >>> AlexNetFeatures.from_pretrained(weights="random", device="cpu").weights
        'random'
        """
        _check_layers(layers)
        pretrained = load_pretrained("alexnet", weights=weights)
        covered = [layer for layer in layers if layer_is_covered(pretrained, layer)]
        missing = [layer for layer in layers if layer not in covered]
        return cls(
            pretrained.network,
            pretrained.weights,
            layers=covered,
            device=device,
            input_size=input_size,
            unavailable=missing,
        )

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features ``{layer: [B, D]}`` (float32, on `device`) of images ``[B, C, H, W]``."""
        batch = imagenet_preprocess(images.to(self.device, torch.float32), self.input_size)
        outputs = self.extractor(batch)
        return {layer: outputs[layer].flatten(1).float() for layer in self.layers}


def standardise_rows(features: torch.Tensor) -> torch.Tensor:
    """Centre each row of ``[N, D]`` and scale it to unit norm (constant rows become 0).

    The dot product of two standardised rows is their Pearson r.

    Examples
    --------
    >>> import torch
    >>> z = standardise_rows(torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]))
    >>> z.norm(dim=1).round(decimals=6).tolist()
    [1.0, 0.0]
    """
    centred = features - features.mean(dim=1, keepdim=True)
    norm = centred.norm(dim=1, keepdim=True)
    return centred / torch.where(norm > 0, norm, torch.ones_like(norm))


def twoway_identification(
    pred_features: torch.Tensor, target_features: torch.Tensor, chunk: int = 1024
) -> float:
    """Two-way identification accuracy from ``[N, D]`` features of reconstructions and true images.

    For each reconstruction *i*: the fraction of distractors *j ≠ i* with
    ``r(pred_i, target_j) < r(pred_i, target_i)`` (ties count 0.5), averaged over *i*.
    Returns NaN for fewer than two images.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(5, 10)
    >>> twoway_identification(x, x)
    1.0
    """
    if pred_features.shape != target_features.shape or pred_features.ndim != 2:
        raise ValueError(
            "pred and target features must both have shape [N, D], found "
            f"{tuple(pred_features.shape)} and {tuple(target_features.shape)}"
        )
    n = pred_features.shape[0]
    if n < 2:
        return float("nan")
    pred_z = standardise_rows(pred_features.float())
    target_z = standardise_rows(target_features.float()).to(pred_z.device)
    wins = 0.0
    for start in range(0, n, chunk):
        corr = pred_z[start : start + chunk] @ target_z.T
        rows = torch.arange(corr.shape[0], device=corr.device)
        own = corr[rows, start + rows][:, None]
        below = (corr < own).sum() + 0.5 * (corr == own).sum() - 0.5 * corr.shape[0]
        wins += float(below)
    return wins / (n * (n - 1))


def _batches(pred: torch.Tensor, target: torch.Tensor, batch_size: int) -> Iterable:
    for start in range(0, pred.shape[0], batch_size):
        yield pred[start : start + batch_size], target[start : start + batch_size]


def _check_twoway_layers(twoway_layers: Sequence[str], extractor: AlexNetFeatures) -> None:
    """Raise a ValueError naming the two-way layers that ``extractor`` neither reads nor
    reports as unavailable."""
    known = extractor.layers + extractor.unavailable
    missing = [layer for layer in twoway_layers if layer not in known]
    if missing:
        raise ValueError(
            f"twoway_layers {missing} are not read by the extractor (layers {extractor.layers})"
        )


def feature_metrics(
    pred: ImageBatch,
    target: ImageBatch,
    extractor: AlexNetFeatures | None = None,
    weights: str | os.PathLike | None = "auto",
    twoway_layers: Sequence[str] = TWOWAY_LAYERS,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, float | int | str | list[str]]:
    """AlexNet layer correlations and two-way identification of reconstructions.

    Parameters
    ----------
    pred, target
        Reconstructions and their true images, ``[N, C, H, W]`` in [0, 1], same shape.
    extractor
        A ready `AlexNetFeatures` (reuse one across calls); built from ``weights`` and
        ``device`` when omitted.
    weights
        Passed to `load_pretrained` when ``extractor`` is None.
    twoway_layers
        Layers on which two-way identification is computed (it is always computed on
        pixels too). Their features are kept for all N images: N x D floats per layer.
    batch_size
        Images per forward pass.
    device
        Where the network runs when ``extractor`` is None (first GPU if available).
    progress
        Show a progress bar over the batches.

    Returns
    -------
    dict
        ``corr_<layer>`` for each extractor layer, ``twoway_pixel`` and
        ``twoway_<layer>`` (fractions, chance 0.5), ``n_images`` and ``weights``; where the
        weights do not cover some layers, ``unavailable`` lists them (no ``corr_`` or
        ``twoway_`` value is given for them).

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(4, 1, 16, 16)
    >>> out = feature_metrics(x, x, weights="random", device="cpu")
    >>> round(out["corr_conv1"], 4), out["twoway_conv5"], out["weights"]
    (1.0, 1.0, 'random')
    """
    pred_t, target_t = check_pair(pred, target)
    extractor = extractor or AlexNetFeatures.from_pretrained(weights=weights, device=device)
    _check_twoway_layers(twoway_layers, extractor)
    correlations: dict[str, list[torch.Tensor]] = {layer: [] for layer in extractor.layers}
    kept: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
        layer: ([], []) for layer in twoway_layers if layer in extractor.layers
    }
    batches = track(
        _batches(pred_t, target_t, batch_size),
        total=math.ceil(pred_t.shape[0] / batch_size),
        description="AlexNet features",
        disable=not progress,
    )
    for pred_batch, target_batch in batches:
        both = extractor(torch.cat([pred_batch, target_batch]))
        n = pred_batch.shape[0]
        for layer, features in both.items():
            correlations[layer].append(pearson_rows(features[:n], features[n:]).cpu())
            if layer in kept:
                kept[layer][0].append(standardise_rows(features[:n]).cpu())
                kept[layer][1].append(standardise_rows(features[n:]).cpu())
    result: dict[str, float | int | str | list[str]] = {
        f"corr_{layer}": float(torch.cat(values).mean()) for layer, values in correlations.items()
    }
    result["twoway_pixel"] = twoway_identification(pred_t.flatten(1), target_t.flatten(1))
    for layer, (pred_parts, target_parts) in kept.items():
        result[f"twoway_{layer}"] = twoway_identification(
            torch.cat(pred_parts), torch.cat(target_parts)
        )
    result["n_images"] = int(pred_t.shape[0])
    result["weights"] = extractor.weights
    if extractor.unavailable:
        result["unavailable"] = list(extractor.unavailable)
    return result
