"""FLIG: one flow-based invertible model that both decodes and encodes (Zhou et al., 2023).

Zhou, Du, Li, Wang, Liu, He, "Neural Encoding and Decoding With a Flow-Based Invertible
Generative Model", IEEE TCDS 15(2):724-736, 2023. The abstract fixes the design; the details
below are ours, each chosen for a reason given here.

**Stage 1, the convolutional autoencoder (CAE)** (`FeatureAutoencoder`): stride-2 3x3
convolutions (BatchNorm, ReLU) plus a linear path map an image to ``n_features`` numbers,
standardised by a BatchNorm without affine parameters, so the flow meets features of zero
mean and unit variance, as it meets z-scored responses on the other side; a linear map plus
an upsampling conv stack map them back. Any image size works. The linear paths start at the
principal components of the training images (``cae_init="pca"``) and the conv paths at
zero, so stage 1 starts from the PCA reconstruction and trains on from there.

**Stage 2, the flow** (`neuralsight.models.blocks.flow.MatchedFlow`): FrEIA GLOW coupling
blocks and permutations, an exact bijection between CAE features ``f`` and scaled responses
``r``. **Dimension matching**: each side is padded with latent dimensions up to ``D =
n_features + n_inputs`` (the features with ``n_inputs`` latents, the responses with
``n_features``), so each direction has room for what the other side does not determine
(response noise when decoding, image detail the cells ignore when encoding), and the ridge
start below is exact. Latents are drawn from N(0, 1) when sampling (``sample=True``, and in
the global losses) and are zeros otherwise, so `forward` / `decode` / `encode` are
deterministic by default, in any mode; zero is the mode of the latent prior. The flow
starts (``flow_init="ridge"``) as the affine bijection whose two directions are the ridge
regressions features -> responses and responses -> features (`MatchedFlow.set_linear`),
and its couplings, which start as the identity, learn the nonlinear rest. Started at the
identity instead, 10 epochs on 3,000 simulated retinal responses left decoding below the
ridge baseline (PixCorr 0.60-0.66 against 0.72).

**Losses** (each weight a parameter, 0 switches the term off; `loss_terms`):

- stage 1: ``reconstruction``, MSE of the CAE's reconstruction.
- local constraints (a paired sample maps onto its own partner): ``local_encode``, MSE
  between ``flow(f)`` and ``r``; ``local_decode``, MSE between ``flow^-1(r)`` and ``f``; and
  ``image``, MSE between the decoded image ``CAE_dec(flow^-1(r))`` and the stimulus (the
  local constraint measured where it matters, in pixels, through the frozen CAE decoder).
- global constraints (the mapped distribution matches the target distribution), by the
  maximum mean discrepancy (`neuralsight.models.blocks.flow.mmd`): ``global_encode``
  between ``flow([f, u])`` and ``[r, v]`` and ``global_decode`` between ``flow^-1([r, v])``
  and ``[f, u]``, with latent paddings ``u, v ~ N(0, 1)``. Matched jointly, the latent
  outputs also become standard normal and independent of the paired side (Ardizzone et
  al., ICLR 2019). The paper trains adversarially; we chose MMD because it needs no extra
  networks and no alternating optimisation (one optimiser under Lightning's automatic
  optimisation), is stable on the small data sets of fMRI (90 training trials for the 69
  digits, where a discriminator memorises the data at once), and is a proper distance
  between distributions under the characteristic Gaussian kernel. Its weakness, low power
  with small batches in high dimension, is why the local terms carry the training and the
  global ones regularise it.

**Training in one command**: epochs ``[0, cae_epochs)`` train the CAE alone; from then on
the CAE is frozen (eval mode, no gradients) and the flow trains on the local and global
terms. One Adam optimiser holds both parameter groups; a group without gradients is
skipped. ``cae_epochs=0`` keeps the PCA start as the CAE (stage 1 is then the PCA fit).
As one stage's parameters get no gradients, distributed training needs
``strategy: ddp_find_unused_parameters_true``; the data-driven starts are computed on every
process and rank 0's are broadcast.

**Measured** (``benchmarks/flig_retina.py``, ``benchmarks/results/flig_retina.json``: 3,000
simulated 32x32 natural crops, 300 subunit ganglion cells; every choice made on the
validation split, the numbers below on crops of held-out photographs). The ridge start alone
decodes at the pixel ridge's level with 256 principal components (512 or 1,024 decoded worse
on validation: the whitened trailing components are noise that weighs on the choice of the
ridge strength; 128, worse too). Training the CAE on reconstruction (2 epochs at lr 1e-4 or
1e-5) lowered the PixCorr its features decode at (0.611 -> 0.599 / 0.606 on validation), so
``configs/flig_retina.yaml`` keeps the PCA start (``cae_epochs: 0``). Training the flow
trades decoding against encoding, through the one bijection: at ``flow_lr`` 1e-4 or 3e-4 the
decoded SSIM fell 0.01-0.02 on validation within 1-2 epochs while the encoding r rose; turning
the decode terms off raised the encoding further and dropped the decoding; a 10x heavier
image term, a 10x heavier global term or a narrower flow did not avoid the trade. The
config's 4 epochs at ``flow_lr`` 1e-5 keep SSIM and raise PixCorr: test SSIM / PixCorr / MSE
0.429 / 0.717 / 0.0144 against ridge's 0.425 / 0.715 / 0.0145 (0.427 / 0.716 / 0.0145 at the
ridge start), encoding r 0.63 (LN encoder 0.70, CNN encoder 0.83). The same config trained
8 epochs at ``flow_lr`` 3e-4 encodes at r 0.79 and decodes at 0.435 / 0.712 / 0.0181.

**Both directions**: `forward` (= `decode` of scaled responses) gives images; `encode`
gives responses ``[B, n_units, n_bins]`` in recorded units (the z-scoring undone, so
predicted spike counts may dip below zero); `predict_responses` batches it like the
encoders'. Spike counts (retina) and fMRI voxels (the 69-digits layout) differ only in
``n_inputs``; with thousands of voxels the flow runs at that dimension.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from neuralsight.data.dataset import NeuralDataset
from neuralsight.distributed import sync_from_rank_zero
from neuralsight.models.blocks.flow import MatchedFlow, mmd
from neuralsight.models.decoders.base import Decoder, Scaling
from neuralsight.models.decoders.ridge import fit_linear_layer
from neuralsight.models.encoders.base import (
    mean_unit_correlation,
    predict_in_batches,
)
from neuralsight.models.inference import optimize_for_inference
from neuralsight.models.registry import DECODERS, ENCODERS

Stage = Literal["cae", "flow"]
PCA_IMAGES = 4096
EXACT_PCA_MAX = 2048
"""`FeatureAutoencoder.init_pca` decomposes exactly up to this many images or pixels."""
FLOW_TERMS = ("local_encode", "local_decode", "image", "global_encode", "global_decode")


def _halvings(size: tuple[int, int], depth: int) -> list[tuple[int, int]]:
    """Spatial sizes after each stride-2 3x3 convolution (padding 1): ``ceil(n / 2)``."""
    sizes = [size]
    for _ in range(depth):
        height, width = sizes[-1]
        sizes.append(((height + 1) // 2, (width + 1) // 2))
    return sizes


def _principal_components(centred: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` singular values ``[k]`` and right singular vectors ``[P, k]`` of ``[N, P]``.

    An exact SVD when ``min(N, P) <= EXACT_PCA_MAX``; otherwise a randomized one
    (``torch.svd_lowrank``, oversampled by 32, 6 power iterations) under a fixed seed, so
    the result never depends on the global random state. (A randomized SVD with no
    oversampling, as used before, gets the trailing components wrong and differently on
    every call: on 32x32 natural crops with 256 components, two such starts of the same
    FLIG decoded validation images at SSIM 0.493 and 0.485.)

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(50, 6, dtype=torch.float64)
    >>> s, v = _principal_components(x - x.mean(0), 3)
    >>> bool(torch.allclose(s, torch.linalg.svdvals(x - x.mean(0))[:3]))
    True
    """
    if min(centred.shape) <= EXACT_PCA_MAX:
        _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
        return singular[:k], vh[:k].T
    devices = [centred.device] if centred.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        q = min(k + 32, *centred.shape)
        _, singular, components = torch.svd_lowrank(centred, q=q, niter=6)
    return singular[:k], components[:, :k]


class FeatureAutoencoder(nn.Module):
    """FLIG's stage 1: image <-> standardised feature vector.

    Each side has a linear path beside the convolutional one: the encoder adds a linear
    projection of the pixels to the conv stack's output, and the decoder adds a linear map
    from the features to the pixels to the upsampling conv stack's output, whose last
    layer starts at zero (a refinement). With `init_pca` the features start as a PCA code,
    which responses predict nearly linearly. Measured on 32x32 natural crops with 256
    features: a purely convolutional CAE trained 10 epochs reconstructed test images at
    PixCorr 0.72 and ridge-predicted features decoded at 0.61 (ridge on pixels: 0.72); the
    PCA start reconstructs at 0.95 and its ridge-predicted features decode at 0.72.

    Parameters
    ----------
    image_shape
        ``(channels, height, width)``.
    n_features
        Length of the feature vector.
    channels
        Channels of the stride-2 convolutions (one halving each).

    Examples
    --------
    >>> import torch
    >>> cae = FeatureAutoencoder((1, 28, 28), n_features=16, channels=(8, 16)).eval()
    >>> f = cae.encode(torch.rand(2, 1, 28, 28))
    >>> f.shape, cae.decode(f).shape
    (torch.Size([2, 16]), torch.Size([2, 1, 28, 28]))
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_features: int = 128,
        channels: Sequence[int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        if not channels or n_features < 1:
            raise ValueError(
                f"FeatureAutoencoder needs n_features >= 1 and at least one conv channel, "
                f"found n_features={n_features}, channels={list(channels)}"
            )
        self.image_shape = tuple(image_shape)
        image_channels, height, width = image_shape
        n_pixels = image_channels * height * width
        sizes = _halvings((height, width), len(channels))
        layers: list[nn.Module] = []
        for c_in, c_out in zip((image_channels, *channels), channels, strict=False):
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        self.convs = nn.Sequential(*layers)
        bottleneck = (channels[-1], *sizes[-1])
        self.project = nn.Linear(int(np.prod(bottleneck)), n_features)
        self.linear_in = nn.Linear(n_pixels, n_features, bias=False)
        self.normalise = nn.BatchNorm1d(n_features, affine=False)
        up: list[nn.Module] = [
            nn.Linear(n_features, int(np.prod(bottleneck))),
            nn.Unflatten(1, bottleneck),
            nn.ReLU(inplace=True),
        ]
        widths = [*reversed(channels), channels[0]]
        for i, size in enumerate(reversed(sizes[:-1])):
            up += [
                nn.Upsample(size=size, mode="bilinear", align_corners=False),
                nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(inplace=True),
            ]
        last = nn.Conv2d(channels[0], image_channels, 3, padding=1)
        assert last.bias is not None  # a Conv2d with bias
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        up.append(last)
        self.refine = nn.Sequential(*up)
        self.linear_out = nn.Linear(n_features, n_pixels)

    @torch.no_grad()
    def init_pca(self, images: torch.Tensor) -> None:
        """Start the linear paths at the principal components of ``images`` ``[N, C, H, W]``.

        The conv paths are zeroed, so encode-decode starts as the PCA reconstruction with
        ``min(n_features, N - 1, n_pixels)`` components (features beyond them are 0). The
        components are exact and deterministic (`_principal_components`).

        Examples
        --------
        >>> import torch
        >>> images = torch.rand(64, 1, 8, 8)
        >>> cae = FeatureAutoencoder((1, 8, 8), n_features=64, channels=(4,))
        >>> cae.init_pca(images)
        >>> bool((cae.eval()(images) - images).abs().max() < 1e-3)
        True
        """
        flat = images.flatten(1).double()
        n_features = self.linear_in.out_features
        k = min(n_features, len(flat) - 1, flat.shape[1])
        mean = flat.mean(0)
        singular, components = _principal_components(flat - mean, k)
        variance = singular.square() / (len(flat) - 1)
        weights_in = flat.new_zeros(n_features, flat.shape[1])
        weights_in[:k] = components.T
        scale = flat.new_ones(n_features)
        scale[:k] = variance.clamp_min(1e-12)
        weights_out = flat.new_zeros(flat.shape[1], n_features)
        weights_out[:, :k] = components * variance.sqrt()
        running_mean, running_var = self.normalise.running_mean, self.normalise.running_var
        assert running_mean is not None and running_var is not None  # track_running_stats
        self.linear_in.weight.copy_(weights_in)
        running_mean.copy_(weights_in @ mean)
        running_var.copy_(scale)
        self.linear_out.weight.copy_(weights_out)
        self.linear_out.bias.copy_(mean)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` -> standardised features ``[B, n_features]``.

        Standardised by batch statistics in training (running statistics for a batch of
        one, which has none) and by the running statistics in eval mode.
        """
        features = self.project(self.convs(images).flatten(1)) + self.linear_in(images.flatten(1))
        norm = self.normalise
        assert norm.momentum is not None  # BatchNorm1d's default; never set to None here
        return nn.functional.batch_norm(
            features,
            norm.running_mean,
            norm.running_var,
            training=self.training and len(features) > 1,
            momentum=norm.momentum,
            eps=norm.eps,
        )

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``[B, n_features]`` -> images ``[B, C, H, W]`` (about [0, 1], unclipped)."""
        linear = self.linear_out(features).reshape(-1, *self.image_shape)
        return linear + self.refine(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> features -> reconstructed images."""
        return self.decode(self.encode(images))


@DECODERS.register("flig")
@ENCODERS.register("flig")
class FLIG(Decoder):
    """FLIG: CAE + cross-modal normalizing flow; decodes responses and encodes images.

    Parameters
    ----------
    n_inputs
        ``n_units * n_bins`` (linked from the DataModule).
    image_shape
        ``(channels, height, width)``.
    n_bins
        Time bins per unit (``n_inputs`` must be a multiple); shapes `encode`'s output.
    n_features, cae_channels
        CAE feature length and conv channels (see `FeatureAutoencoder`).
    flow_init
        ``"ridge"``: when the flow stage starts, set the flow to the exact affine bijection
        whose two directions are ridge regressions between features and scaled responses
        (strengths chosen on the validation split; `MatchedFlow.set_linear`); the
        couplings then learn the nonlinear rest. ``"identity"``: couplings alone, starting
        as a permutation.
    flow_blocks, flow_hidden, flow_clamp
        Flow depth, coupling-subnet width and log-scale clamp (see `build_flow`).
    cae_epochs
        Epochs of stage 1 (CAE alone) before the flow trains (0: keep the PCA start).
    cae_init
        ``"pca"``: when training starts, set the CAE's linear paths to the principal
        components of up to ``PCA_IMAGES`` training images (`FeatureAutoencoder.init_pca`);
        ``"random"``: PyTorch's initialisation.
    reconstruction_weight, local_encode_weight, local_decode_weight, image_weight,
    global_encode_weight, global_decode_weight
        Loss weights (module docstring); 0 switches a term off.
    lr, flow_lr
        Adam learning rates of the CAE and of the flow.
    scaling
        Response scaling (z-score by default).
    seed
        Seed of the flow's permutations.

    Examples
    --------
    >>> import torch
    >>> model = FLIG(n_inputs=20, image_shape=(1, 16, 16), n_features=8,
    ...              cae_channels=(4, 8), flow_blocks=2, flow_hidden=16).eval()
    >>> model(torch.rand(3, 20, 1)).shape, model.encode(torch.rand(3, 1, 16, 16)).shape
    (torch.Size([3, 1, 16, 16]), torch.Size([3, 20, 1]))
    """

    cae_ready: torch.Tensor
    flow_ready: torch.Tensor

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        n_bins: int = 1,
        n_features: int = 128,
        cae_channels: Sequence[int] = (32, 64, 128),
        flow_init: Literal["ridge", "identity"] = "ridge",
        flow_blocks: int = 6,
        flow_hidden: int = 256,
        flow_clamp: float = 2.0,
        cae_epochs: int = 2,
        cae_init: Literal["pca", "random"] = "pca",
        reconstruction_weight: float = 1.0,
        local_encode_weight: float = 1.0,
        local_decode_weight: float = 1.0,
        image_weight: float = 10.0,
        global_encode_weight: float = 1.0,
        global_decode_weight: float = 1.0,
        lr: float = 1e-4,
        flow_lr: float = 3e-4,
        scaling: Scaling = "zscore",
        seed: int = 0,
    ) -> None:
        super().__init__(n_inputs, image_shape, scaling)
        if n_bins < 1 or n_inputs % n_bins:
            raise ValueError(
                f"n_inputs (n_units * n_bins) must be a multiple of n_bins, "
                f"found n_inputs={n_inputs}, n_bins={n_bins}"
            )
        self.save_hyperparameters()
        self.weights = {
            "reconstruction": float(reconstruction_weight),
            **{t: float(getattr(self.hparams, f"{t}_weight")) for t in FLOW_TERMS},
        }
        _check_weights(self.weights, cae_epochs)
        if cae_init not in ("pca", "random"):
            raise ValueError(f"cae_init must be 'pca' or 'random', found {cae_init!r}")
        self.n_bins = int(n_bins)
        self.cae = FeatureAutoencoder(self.image_shape, n_features, tuple(cae_channels))
        if flow_init not in ("ridge", "identity"):
            raise ValueError(f"flow_init must be 'ridge' or 'identity', found {flow_init!r}")
        self.register_buffer("cae_ready", torch.tensor(cae_init == "random"))
        self.register_buffer("flow_ready", torch.tensor(flow_init == "identity"))
        self.flow = MatchedFlow(
            n_features,
            self.n_inputs,
            extra_dims=min(n_features, self.n_inputs),
            linear=flow_init == "ridge",
            n_blocks=flow_blocks,
            hidden=flow_hidden,
            clamp=flow_clamp,
            seed=seed,
        )

    def on_fit_start(self) -> None:
        """Start the CAE at the principal components of the training images (once)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if bool(self.cae_ready) or datamodule is None:
            return
        images, count = [], 0
        for _, batch in datamodule.train_dataloader():
            images.append(batch)
            count += len(batch)
            if count >= PCA_IMAGES:
                break
        self.cae.init_pca(torch.cat(images)[:PCA_IMAGES].to(self.device))
        self.cae_ready.fill_(True)
        sync_from_rank_zero(self.cae, self.trainer)

    def on_train_epoch_start(self) -> None:
        """When the flow stage begins, set the flow to the ridge maps (once)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.stage == "flow" and not bool(self.flow_ready) and datamodule is not None:
            self.init_flow_ridge(datamodule.train_dataloader(), datamodule.val_dataloader())
            sync_from_rank_zero(self.flow, self.trainer)

    def init_flow_ridge(self, train_batches: Iterable, val_batches: Iterable) -> None:
        """Set the flow to the ridge regressions between CAE features and scaled responses.

        ``train_batches`` and ``val_batches`` (re-iterable, e.g. DataLoaders: each is read
        twice) yield ``(responses, images)``; the CAE encodes the images in eval mode. See
        `MatchedFlow.set_linear`.
        """
        self.cae.eval()

        def pairs(batches: Iterable, decode: bool):
            for responses, images in batches:
                with torch.no_grad():
                    features = self.cae.encode(images.to(self.device))
                scaled = self.scaler(responses.to(self.device))
                yield (scaled, features) if decode else (features, scaled)

        n_features = self.hparams["n_features"]
        encoder = nn.Linear(n_features, self.n_inputs).to(self.device)
        decoder = nn.Linear(self.n_inputs, n_features).to(self.device)
        alphas = [
            fit_linear_layer(layer, pairs(train_batches, decode), pairs(val_batches, decode))
            for layer, decode in ((encoder, False), (decoder, True))
        ]
        self.flow.set_linear(encoder.weight.T, encoder.bias, decoder.weight.T, decoder.bias)
        self.flow_ready.fill_(True)
        rank_zero_info(
            f"FLIG: flow set to ridge maps (alpha encode={alphas[0]:g}, decode={alphas[1]:g})"
        )

    @property
    def stage(self) -> Stage:
        """``"cae"`` during the first ``cae_epochs`` epochs of training, then ``"flow"``."""
        return "cae" if self.current_epoch < self.hparams["cae_epochs"] else "flow"

    def decode(self, features: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Scaled responses ``[B, n_inputs]`` -> images: flow inverse, then CAE decoder."""
        return self.cae.decode(self.flow.inverse(features, sample))

    def forward(self, responses: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Responses ``[B, n_units, n_bins]`` -> images ``[B, C, H, W]``.

        Deterministic unless ``sample`` (latent padding drawn from N(0, 1)).
        """
        return self.decode(self.scaler(responses), sample)

    def encode(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Images ``[B, C, H, W]`` -> responses ``[B, n_units, n_bins]`` in recorded units.

        CAE encoder, then the flow; the response scaling is undone.

        Examples
        --------
        >>> import torch
        >>> model = FLIG(n_inputs=6, image_shape=(1, 8, 8), n_bins=2, n_features=4,
        ...              cae_channels=(4,), flow_blocks=1, flow_hidden=8).eval()
        >>> model.encode(torch.rand(5, 1, 8, 8)).shape
        torch.Size([5, 3, 2])
        """
        scaled = self.flow(self.cae.encode(images), sample)
        responses = scaled * self.scaler.scale + self.scaler.offset
        return responses.reshape(len(images), -1, self.n_bins)

    def predict_responses(
        self,
        data: NeuralDataset | np.ndarray | torch.Tensor,
        split: str = "test",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Encode images, batched, without gradients, through an eval-mode copy.

        ``data`` is a `NeuralDataset` (one row per trial of ``split``) or images
        ``[N, C, H, W]``; returns float32 ``[N, n_units, n_bins]``, as the encoders'
        `neuralsight.models.encoders.Encoder.predict_responses` does.

        Examples
        --------
        >>> import numpy as np
        >>> model = FLIG(n_inputs=4, image_shape=(1, 8, 8), n_features=4, cae_channels=(4,),
        ...              flow_blocks=1, flow_hidden=8)
        >>> model.predict_responses(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 4, 1)
        """
        fast = optimize_for_inference(self)
        return predict_in_batches(fast.encode, data, split, batch_size, self.device)

    def loss_terms(
        self, responses: torch.Tensor, images: torch.Tensor, stage: Stage
    ) -> dict[str, torch.Tensor]:
        """The unweighted loss terms of ``stage`` whose weight is not 0.

        Examples
        --------
        >>> import torch
        >>> model = FLIG(n_inputs=6, image_shape=(1, 8, 8), n_features=4, cae_channels=(4,),
        ...              flow_blocks=1, flow_hidden=8, global_decode_weight=0)
        >>> sorted(model.loss_terms(torch.rand(5, 6, 1), torch.rand(5, 1, 8, 8), "flow"))
        ['global_encode', 'image', 'local_decode', 'local_encode']
        """
        mse = nn.functional.mse_loss
        if stage == "cae":
            return {"reconstruction": mse(self.cae(images), images)}
        on = {name for name in FLOW_TERMS if self.weights[name] > 0}
        with torch.no_grad():
            features = self.cae.encode(images)
        scaled = self.scaler(responses)
        terms: dict[str, torch.Tensor] = {}
        if "local_encode" in on:
            terms["local_encode"] = mse(self.flow(features), scaled)
        if on & {"local_decode", "image"}:
            decoded = self.flow.inverse(scaled)
            if "local_decode" in on:
                terms["local_decode"] = mse(decoded, features)
            if "image" in on:
                terms["image"] = mse(self.cae.decode(decoded), images)
        if "global_encode" in on:
            mapped = self.flow.forward_full(self.flow.pad_x(features, sample=True))
            terms["global_encode"] = mmd(mapped, self.flow.pad_y(scaled, sample=True))
        if "global_decode" in on:
            mapped = self.flow.inverse_full(self.flow.pad_y(scaled, sample=True))
            terms["global_decode"] = mmd(mapped, self.flow.pad_x(features, sample=True))
        return terms

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """In the flow stage keep the CAE frozen: eval mode (fixed BatchNorm), no gradients."""
        frozen = self.stage == "flow"
        self.cae.requires_grad_(not frozen)
        if frozen:
            self.cae.eval()

    def training_loss(self, responses: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the current stage's terms, each logged as ``train_<term>``."""
        terms = self.loss_terms(responses, images, self.stage)
        for name, value in terms.items():
            self.log(f"train_{name}", value, batch_size=len(images))
        total = sum(self.weights[name] * value for name, value in terms.items())
        assert isinstance(total, torch.Tensor)  # never empty: _check_weights
        return total

    def validation_step(self, batch, batch_idx: int) -> None:
        """Log the decoding metrics, the CAE reconstruction error and the encoding error and r."""
        super().validation_step(batch, batch_idx)
        responses, images = batch
        scaled = self.scaler(responses)
        encoded = self.flow(self.cae.encode(images))
        self.log("val_cae_mse", nn.functional.mse_loss(self.cae(images), images))
        self.log("val_encode_mse", nn.functional.mse_loss(encoded, scaled))
        self.log("val_encode_r", mean_unit_correlation(encoded, scaled))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with one learning rate for the CAE and one for the flow."""
        return torch.optim.Adam(
            [
                {"params": self.cae.parameters(), "lr": self.hparams["lr"]},
                {"params": self.flow.parameters(), "lr": self.hparams["flow_lr"]},
            ]
        )


def _check_weights(weights: dict[str, float], cae_epochs: int) -> None:
    negative = {name: w for name, w in weights.items() if w < 0}
    if negative:
        raise ValueError(f"FLIG loss weights must be >= 0, found {negative}")
    if cae_epochs < 0:
        raise ValueError(f"cae_epochs must be >= 0, found {cae_epochs}")
    if cae_epochs > 0 and weights["reconstruction"] == 0:
        raise ValueError(
            f"reconstruction_weight is 0 but cae_epochs={cae_epochs}: stage 1 would have no "
            "loss; set cae_epochs=0 to skip it"
        )
    if not any(weights[name] > 0 for name in FLOW_TERMS):
        raise ValueError(
            "FLIG needs at least one flow loss weight > 0 among "
            f"{[f'{name}_weight' for name in FLOW_TERMS]}"
        )
