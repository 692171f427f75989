"""MonkeySee (Le et al., NeurIPS 2024): V1/V4/IT multi-unit activity to natural images.

Responses go through four stages:

1. **Time windows** (`TimeWindows`): per-area window means of time-resolved responses. The
   "spatiotemporal" model takes 5 windows of 27 ms per area, V1 from 0 ms, V4 from 33 ms, IT
   from 66 ms after onset, shifted in +26 ms steps; the other models one window per area
   (the reference's spatial windows: 133 ms from the same starts). Responses with a single
   bin (``mode="window"`` data) are used as they are.
2. **Scaling**: each (unit, window) feature is z-scored on the training split (statistics
   computed after windowing, as the reference z-scores window means).
3. **Mapping** into image-like channels, by ``mapping``:

   - ``"spatial"``: fixed inverse retinotopic mapping (`InverseRetinotopicMap`): each
     electrode painted at its known receptive field (RF), one channel per array (15 for
     the TVSD's 7 + 4 + 4 arrays): on the pixel nearest the RF centre (``paint="pixel"``,
     the reference code's) or as the RF Gaussian (``"rf"``);
   - ``"spatiotemporal"``: the same, one channel per area and time window (3 x 5 = 15);
   - ``"end_to_end"``: a learned Gaussian RF per electrode (`LearnedInverseRF`),
     initialised from the known RFs where present, one channel per array;
   - ``"dense"``: the paper's baseline without RF mapping: a dense layer from all window
     responses to ``dense_channels`` channels at image size;
   - ``"mei"`` (not in the paper; after MEIcoder, Sobotka et al., NeurIPS 2025): each unit's
     response painted through its most exciting input (`MEIReadIn`), computed when
     training starts from a trained encoder (``mei_encoder``, a checkpoint path) by
     `most_exciting_inputs` and kept in the model's checkpoints. It needs no RFs.

   With ``electrode_codes=k`` (an extension, 0 by default) the painting mappings first
   multiply each electrode's response by a learned ``k``-vector of its own
   (`ElectrodeCodes`) and paint ``k`` channels per group, so that the generator can tell
   apart neighbouring electrodes whose tuning differs.

4. **Generator** (`Pix2PixGenerator`, U-Net, sigmoid output in [0, 1]) trained against a
   conditional PatchGAN (`PatchDiscriminator`) on (mapped input, image) pairs, with
   ``adversarial_weight`` (0.01) x adversarial + ``feature_weight`` (1.0) x VGG feature
   loss + ``pixel_weight`` (0.5) x L1 (+ ``ssim_weight`` x negative log SSIM, 0 in the
   paper; ``adversarial_loss="least_squares"`` for a least-squares GAN); Adam, lr 2e-4, beta1 0.5, one optimiser per network,
   in Lightning's manual optimisation (the discriminator steps first, then the generator,
   as in the reference). A weight of 0 skips its term; with ``adversarial_weight=0`` the
   discriminator is not built at all.

The units table and time bins a model needs (area, array, RFs, bin edges) come from the
DataModule's dataset when training starts, or as keyword arguments (``area``, ``array``,
``rf_x``, ``rf_y``, ``rf_sigma``, ``bin_edges_ms``), so a YAML config can build the model
either way; once known they are stored in the hyperparameters, so a checkpoint restores the
model by itself. RFs are in normalised image coordinates ([-1, 1], y down, as
`neuralsight.simulate.cortex`).

Departures from the reference code (MXNet): ``paint="rf"`` paints RF Gaussians rather than
single pixels (an option; the default paints pixels); the discriminator sees the current
fakes rather than a 50-image history buffer; the innermost two decoder levels of the
generator use dropout 0.5 (the reference builds none).
The VGG network of the feature loss is VGG19, or VGG16 at the same named depths where only
VGG16's ImageNet weights are present (`VGGFeatureLoss`); it is not saved in checkpoints (it
is reloaded from ``vgg_weights``); which network and weights were used is
``model.feature_loss.network`` and ``model.feature_loss.weights``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from neuralsight.data.dataset import NeuralDataset
from neuralsight.models.blocks.inverse_rf import (
    PAINTS,
    ElectrodeCodes,
    InverseRetinotopicMap,
    LearnedInverseRF,
    MEIReadIn,
    TimeWindows,
)
from neuralsight.models.blocks.pix2pix import PatchDiscriminator, Pix2PixGenerator
from neuralsight.models.decoders.base import Decoder, ResponseScaler, Scaling
from neuralsight.models.encoders.mei import most_exciting_inputs
from neuralsight.models.losses import (
    ADVERSARIAL_LOSSES,
    VGG_INPUT_SIZE,
    AdversarialLoss,
    VGGFeatureLoss,
    discriminator_loss,
    generator_adversarial_loss,
    ssim_loss,
)
from neuralsight.models.registry import DECODERS, load_encoder

MappingKind = Literal["spatial", "spatiotemporal", "end_to_end", "dense", "mei"]
MAPPINGS = ("spatial", "spatiotemporal", "end_to_end", "dense", "mei")
UNPAINTED = ("dense", "mei")
"""Mappings that do not paint electrodes at their RFs (no electrode codes)."""
UNIT_FIELDS = ("area", "array", "rf_x", "rf_y", "rf_sigma", "bin_edges_ms")
SPATIOTEMPORAL_WINDOWS = {"n_windows": 5, "window_ms": 27.0}
SPATIAL_WINDOWS = {"n_windows": 1, "window_ms": 133.0}
TRAINING_ONLY = ("discriminator", "feature_loss")


def unit_info(dataset: NeuralDataset) -> dict[str, list | None]:
    """What MonkeySee needs from a dataset: per-unit area, array and RF, and the bin edges.

    Returns plain lists (``None`` for a column the units table lacks), ready to be passed
    to `MonkeySee` as keyword arguments.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((2, 3), np.float32), np.zeros((2, 1, 4, 4), np.float32))
    >>> info = unit_info(ds)
    >>> info["area"], info["rf_x"], info["bin_edges_ms"]
    (['unknown', 'unknown', 'unknown'], None, [0.0, 1.0])
    """
    rf_units = str(dataset.meta.get("rf_units", ""))
    units = dataset.units
    if "degree" in rf_units and "rf_x" in units.columns:
        raise ValueError(
            f"{dataset.source or 'dataset'}: MonkeySee needs receptive fields in normalised "
            f"image coordinates [-1, 1]; meta['rf_units'] says {rf_units!r}. Convert rf_x, "
            "rf_y, rf_sigma (divide by half the image width in degrees, y pointing down)"
        )

    def column(name: str, kind: type) -> list | None:
        if name not in units.columns:
            return None
        return [kind(v) for v in units[name].tolist()]

    return {
        "area": column("area", str),
        "array": column("array", str),
        "rf_x": column("rf_x", float),
        "rf_y": column("rf_y", float),
        "rf_sigma": column("rf_sigma", float),
        "bin_edges_ms": [float(e) for e in dataset.bin_edges_ms],
    }


def _feature_stats(blocks: Iterator[torch.Tensor], n_features: int) -> dict[str, np.ndarray]:
    """``mean``, ``std``, ``min``, ``max`` per feature of streamed ``[n, features]`` blocks."""
    total = torch.zeros(n_features, dtype=torch.float64)
    total_sq = torch.zeros(n_features, dtype=torch.float64)
    low = torch.full((n_features,), float("inf"), dtype=torch.float64)
    high = torch.full((n_features,), float("-inf"), dtype=torch.float64)
    n = 0
    for block in blocks:
        block = block.double().cpu()
        total += block.sum(0)
        total_sq += block.square().sum(0)
        low, high = (
            torch.minimum(low, block.min(0).values),
            torch.maximum(high, block.max(0).values),
        )
        n += len(block)
    mean = total / max(n, 1)
    std = (total_sq / max(n, 1) - mean**2).clamp_min(0).sqrt()
    constant = ~(high - low > 1e-8)
    return {
        "mean": mean.float().numpy(),
        "std": torch.where(std > 1e-8, std, 1.0).float().numpy(),
        "min": low.float().numpy(),
        "max": torch.where(constant, low + 1.0, high).float().numpy(),
    }


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


@DECODERS.register("monkeysee")
class MonkeySee(Decoder):
    """MonkeySee: inverse receptive-field mapping + pix2pix generator and PatchGAN.

    Parameters
    ----------
    n_inputs
        ``n_units * n_bins``.
    image_shape
        ``(channels, height, width)``; height and width divisible by ``2 ** depth`` (32).
    mapping
        ``"spatial"``, ``"spatiotemporal"``, ``"end_to_end"``, ``"dense"`` or ``"mei"`` (see
        the module docstring).
    adversarial_weight, feature_weight, pixel_weight
        Loss weights (0.01, 1.0, 0.5 in the paper); 0 switches a term off.
    ssim_weight
        Weight of the negative log SSIM (`ssim_loss`; 0, the paper's, switches it off).
    adversarial_loss
        ``"bce"`` (the paper's, on logits) or ``"least_squares"`` (`ADVERSARIAL_LOSSES`).
    lr, beta1
        Adam learning rate and first-moment decay of both networks.
    base_channels, depth, dropout
        Generator width, number of stride-2 levels, dropout of its innermost two decoder
        levels.
    discriminator_channels, discriminator_layers
        PatchGAN width and number of stride-2 layers (3: 70 x 70 patches).
    n_windows, window_ms
        Time windows per area and their width; ``None``: 5 x 27 ms for ``"spatiotemporal"``,
        1 x 133 ms otherwise.
    window_step_ms
        Shift between consecutive windows.
    window_starts_ms
        Start of each area's first window after onset; ``None``: V1 0, V4 33, IT 66 ms.
    dense_channels
        Channels the ``"dense"`` mapping produces at image size.
    vgg_weights
        Weights of the feature loss's VGG19 (or VGG16 where only its weights exist; see
        `VGGFeatureLoss`): ``"auto"``, ``"imagenet"``, ``"random"``, a folder or a file.
    vgg_input_size
        Side images are resized to for the VGG network (224); ``None`` keeps their size.
    rf_seed
        Seed of the random initial RFs of ``"end_to_end"`` units without a known RF.
    area, array, rf_x, rf_y, rf_sigma, bin_edges_ms
        Per-unit area, array, RF (normalised image coordinates, NaN where unknown) and the
        bin edges (ms); ``None``: taken from the DataModule's dataset in `setup`.
    scaling
        Response scaling (``"zscore"`` or ``"minmax"``), fitted after windowing.
    paint
        How the fixed mappings paint an electrode: ``"pixel"`` (nearest pixel to its RF
        centre, the reference code's) or ``"rf"`` (its RF Gaussian); see
        `neuralsight.models.blocks.inverse_rf.PAINTS`.
    electrode_codes
        0 (the paper's): each electrode's response is painted as it is. ``k >= 1``: it is
        first multiplied by a learned ``k``-vector of its own (`ElectrodeCodes`), painted
        into ``k`` channels per group, so the generator can tell apart the electrodes of a
        neighbourhood (an extension; not used with ``"dense"`` or ``"mei"``).
    mei_encoder, mei_encoder_kind
        The ``"mei"`` mapping's trained encoder: a checkpoint path and its registered kind
        (`neuralsight.models.ENCODERS`); read once, when training starts, for the MEIs.
    mei_codes, mei_steps
        Learned codes per unit of the MEI read-in (`MEIReadIn`) and gradient-ascent steps per
        MEI (`most_exciting_inputs`, seeded by ``rf_seed``).

    Notes
    -----
    Each batch steps both optimisers, and Lightning counts every optimiser step in
    ``max_steps``: ``max_steps=2 * n`` trains on ``n`` batches (``n`` without the
    discriminator). Limit training by epochs where possible.

    Examples
    --------
    >>> import torch
    >>> model = MonkeySee(
    ...     n_inputs=4, image_shape=(3, 32, 32), mapping="spatial", feature_weight=0.0,
    ...     base_channels=8, area=["V1"] * 4, array=[0, 0, 1, 1], rf_x=[-0.5, -0.4, 0.4, 0.5],
    ...     rf_y=[0.0] * 4, rf_sigma=[0.2] * 4, bin_edges_ms=[25.0, 175.0],
    ... ).eval()
    >>> model(torch.rand(2, 4, 1)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        n_inputs: int,
        image_shape: tuple[int, int, int],
        mapping: MappingKind = "spatial",
        adversarial_weight: float = 0.01,
        feature_weight: float = 1.0,
        pixel_weight: float = 0.5,
        lr: float = 2e-4,
        beta1: float = 0.5,
        base_channels: int = 64,
        depth: int = 5,
        dropout: float = 0.5,
        discriminator_channels: int = 64,
        discriminator_layers: int = 3,
        n_windows: int | None = None,
        window_ms: float | None = None,
        window_step_ms: float = 26.0,
        window_starts_ms: dict[str, float] | None = None,
        dense_channels: int = 3,
        vgg_weights: str | None = "auto",
        vgg_input_size: int | None = VGG_INPUT_SIZE,
        rf_seed: int = 0,
        area: list[str] | None = None,
        array: list[int | str] | None = None,
        rf_x: list[float] | None = None,
        rf_y: list[float] | None = None,
        rf_sigma: list[float] | None = None,
        bin_edges_ms: list[float] | None = None,
        scaling: Scaling = "zscore",
        paint: str = "pixel",
        electrode_codes: int = 0,
        ssim_weight: float = 0.0,
        adversarial_loss: AdversarialLoss = "bce",
        mei_encoder: str | None = None,
        mei_encoder_kind: str = "pretrained_core",
        mei_codes: int = 8,
        mei_steps: int = 100,
    ) -> None:
        super().__init__(n_inputs, image_shape, scaling)
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {list(MAPPINGS)}, found {mapping!r}")
        if paint not in PAINTS:
            raise ValueError(f"paint must be one of {list(PAINTS)}, found {paint!r}")
        if not (isinstance(electrode_codes, int) and electrode_codes >= 0):
            raise ValueError(f"electrode_codes must be an integer >= 0, found {electrode_codes!r}")
        if electrode_codes and mapping in UNPAINTED:
            raise ValueError(
                f"electrode_codes needs a mapping that paints at RFs; {mapping!r} does not"
            )
        if adversarial_loss not in ADVERSARIAL_LOSSES:
            raise ValueError(
                f"adversarial_loss must be one of {list(ADVERSARIAL_LOSSES)}, found "
                f"{adversarial_loss!r}"
            )
        weights = {
            "adversarial_weight": adversarial_weight,
            "feature_weight": feature_weight,
            "pixel_weight": pixel_weight,
            "ssim_weight": ssim_weight,
        }
        if any(not w >= 0 for w in weights.values()) or not any(weights.values()):
            raise ValueError(
                f"loss weights must be non-negative with at least one positive, found {weights}"
            )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.feature_loss = (
            VGGFeatureLoss(vgg_weights, input_size=vgg_input_size) if feature_weight else None
        )
        self.generator: Pix2PixGenerator | None = None
        self.discriminator: PatchDiscriminator | None = None
        if area is not None and bin_edges_ms is not None:
            self._build()

    # ------------------------------------------------------------------ building

    @property
    def built(self) -> bool:
        """True once the units are known and the networks exist."""
        return self.generator is not None

    def _window_settings(self) -> dict[str, Any]:
        defaults = (
            SPATIOTEMPORAL_WINDOWS
            if self.hparams["mapping"] == "spatiotemporal"
            else (SPATIAL_WINDOWS)
        )
        return {
            "starts_ms": self.hparams["window_starts_ms"],
            "width_ms": _default(self.hparams["window_ms"], defaults["window_ms"]),
            "step_ms": self.hparams["window_step_ms"],
            "n_windows": _default(self.hparams["n_windows"], defaults["n_windows"]),
        }

    def _build(self) -> None:
        hp = self.hparams
        n_units, n_bins = len(hp["area"]), len(hp["bin_edges_ms"]) - 1
        if n_units * n_bins != self.n_inputs:
            raise ValueError(
                f"n_inputs ({self.n_inputs}) must equal n_units * n_bins = {n_units} * {n_bins} "
                "(lengths of 'area' and 'bin_edges_ms' - 1)"
            )
        self.windows = TimeWindows(hp["area"], hp["bin_edges_ms"], **self._window_settings())
        self.scaler = ResponseScaler(n_units * self.windows.n_windows, hp["scaling"])
        self.input_map = self._make_input_map(n_units)
        self.codes = (
            ElectrodeCodes(n_units, hp["electrode_codes"], seed=hp["rf_seed"])
            if hp["electrode_codes"]
            else nn.Identity()
        )
        in_channels = self._input_channels()
        channels = self.image_shape[0]
        self.generator = Pix2PixGenerator(
            in_channels, channels, hp["base_channels"], hp["depth"], hp["dropout"]
        )
        if hp["adversarial_weight"]:
            self.discriminator = PatchDiscriminator(
                in_channels, channels, hp["discriminator_channels"], hp["discriminator_layers"]
            )

    def _groups(self) -> list[str]:
        hp = self.hparams
        if hp["mapping"] == "spatiotemporal" or hp["array"] is None:
            return list(hp["area"])
        return [f"{a}:{k}" for a, k in zip(hp["area"], hp["array"], strict=True)]

    def _receptive_fields(self, required: bool) -> list[list[float]]:
        hp = self.hparams
        missing = [name for name in ("rf_x", "rf_y", "rf_sigma") if hp[name] is None]
        if missing and required:
            raise ValueError(
                f"mapping {hp['mapping']!r} needs receptive fields; units lack {missing} "
                "(give them as arguments or in the dataset's units table)"
            )
        nan = [float("nan")] * len(hp["area"])
        return [
            nan if hp[name] is None else list(hp[name]) for name in ("rf_x", "rf_y", "rf_sigma")
        ]

    def _make_input_map(self, n_units: int) -> nn.Module:
        hp = self.hparams
        size = self.image_shape[1:]
        if hp["mapping"] == "dense":
            features = n_units * self.windows.n_windows
            return nn.Sequential(
                nn.Flatten(),
                nn.Linear(features, hp["dense_channels"] * size[0] * size[1]),
                nn.Unflatten(1, (hp["dense_channels"], *size)),
            )
        if hp["mapping"] == "mei":
            return MEIReadIn(
                n_units,
                self.image_shape,
                self.windows.n_windows,
                hp["mei_codes"],
                seed=hp["rf_seed"],
            )
        if hp["mapping"] == "end_to_end":
            rf_x, rf_y, rf_sigma = self._receptive_fields(required=False)
            return LearnedInverseRF(rf_x, rf_y, rf_sigma, self._groups(), size, seed=hp["rf_seed"])
        rf_x, rf_y, rf_sigma = self._receptive_fields(True)
        mapping = InverseRetinotopicMap(
            rf_x, rf_y, rf_sigma, self._groups(), size, paint=hp["paint"]
        )
        if mapping.n_unknown:
            warnings.warn(
                f"MonkeySee: {mapping.n_unknown} of {n_units} units have no known receptive "
                "field and are left out of the inverse retinotopic mapping",
                stacklevel=3,
            )
        return mapping

    def _input_channels(self) -> int:
        if self.hparams["mapping"] == "dense":
            return self.hparams["dense_channels"]
        if isinstance(self.input_map, MEIReadIn):
            return self.input_map.channels
        codes = max(self.hparams["electrode_codes"], 1)
        assert isinstance(self.input_map, InverseRetinotopicMap | LearnedInverseRF)  # not dense
        return self.input_map.n_groups * self.windows.n_windows * codes

    def _require_built(self) -> None:
        if not self.built:
            raise RuntimeError(
                "MonkeySee is not built yet: its units are unknown. Fit it with a DataModule, "
                "or give area, bin_edges_ms (and rf_x, rf_y, rf_sigma) as arguments"
            )

    def setup(self, stage: str) -> None:
        """Build from the DataModule's units if needed, fit the scaler on windowed responses
        and, when fitting, make the MEIs of an ``"mei"`` read-in that has none (a checkpoint
        restored for prediction brings its own, without the encoder's file)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if not self.built:
            if datamodule is None:
                self._require_built()
            assert datamodule is not None  # _require_built raised: nothing to build from
            self.hparams.update(unit_info(datamodule.dataset))
            self._build()
        if not bool(self.scaler.fitted) and datamodule is not None:
            self.scaler.fit(self._window_stats(datamodule))
        if stage == "fit" and isinstance(self.input_map, MEIReadIn) and not self.input_map.ready:
            self._set_meis()

    def _set_meis(self) -> None:
        """The ``"mei"`` read-in's MEIs, from ``mei_encoder``, resized to the images."""
        hp = self.hparams
        if hp["mei_encoder"] is None:
            raise ValueError("mapping 'mei' needs mei_encoder, a trained encoder's checkpoint")
        encoder = load_encoder(hp["mei_encoder"], hp["mei_encoder_kind"])
        n_units = len(hp["area"])
        if encoder.n_units != n_units or encoder.image_shape[0] != self.image_shape[0]:
            raise ValueError(
                f"{hp['mei_encoder']}: the encoder predicts {encoder.n_units} units from "
                f"{encoder.image_shape[0]}-channel images; this decoder reads {n_units} units "
                f"of {self.image_shape[0]}-channel images"
            )
        meis = torch.from_numpy(
            most_exciting_inputs(encoder, steps=hp["mei_steps"], seed=hp["rf_seed"])
        )
        resized = F.interpolate(meis, size=self.image_shape[1:], mode="bilinear", antialias=True)
        readin = self.input_map
        assert isinstance(readin, MEIReadIn)  # mapping "mei"
        readin.set_meis(resized.to(readin.maps.device))

    def _window_stats(self, datamodule, block: int = 1024) -> dict[str, np.ndarray]:
        pairs = datamodule.train_set
        n_units = len(self.hparams["area"])
        device = self.windows.weights.device

        def blocks() -> Iterator[torch.Tensor]:
            for start in range(0, len(pairs), block):
                rows = pairs.responses_block(np.arange(start, min(start + block, len(pairs))))
                responses = torch.from_numpy(rows).to(device).reshape(len(rows), n_units, -1)
                yield self.windows(responses).flatten(1)

        return _feature_stats(blocks(), self.scaler.offset.numel())

    # ------------------------------------------------------------------ forward

    def condition(self, responses: torch.Tensor) -> torch.Tensor:
        """The generator's input (mapped channels) for responses ``[B, n_units, n_bins]``."""
        self._require_built()
        n_units = len(self.hparams["area"])
        if responses[0].numel() != self.n_inputs:
            raise ValueError(
                f"responses have {responses[0].numel()} values (n_units * n_bins) per trial, "
                f"MonkeySee expects {self.n_inputs}"
            )
        windowed = self.windows(responses.reshape(len(responses), n_units, -1))
        scaled = self.scaler(windowed).reshape(windowed.shape)
        return self.input_map(self.codes(scaled))

    def forward(self, responses: torch.Tensor) -> torch.Tensor:
        """Responses -> painted condition maps -> generated images ``[B, C, H, W]``."""
        condition = self.condition(responses)
        assert self.generator is not None  # condition() checked that the model is built
        return self.generator(condition)

    # ------------------------------------------------------------------ training

    def generator_losses(
        self, condition: torch.Tensor, fake: torch.Tensor, images: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The weighted generator loss terms that are switched on (weight > 0)."""
        hp, terms = self.hparams, {}
        if hp["adversarial_weight"]:
            assert self.discriminator is not None  # built when adversarial_weight > 0
            scores = self.discriminator(condition, fake)
            terms["adversarial"] = hp["adversarial_weight"] * generator_adversarial_loss(
                scores, hp["adversarial_loss"]
            )
        if hp["feature_weight"]:
            assert self.feature_loss is not None  # built when feature_weight > 0
            terms["feature"] = hp["feature_weight"] * self.feature_loss(fake, images)
        if hp["pixel_weight"]:
            terms["pixel"] = hp["pixel_weight"] * F.l1_loss(fake, images)
        if hp["ssim_weight"]:
            terms["ssim"] = hp["ssim_weight"] * ssim_loss(fake, images)
        return terms

    def _discriminator_step(self, optimizer, condition, fake, images) -> None:
        assert self.discriminator is not None  # there is a discriminator optimizer
        loss = discriminator_loss(
            self.discriminator(condition, images),
            self.discriminator(condition, fake),
            self.hparams["adversarial_loss"],
        )
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        self.log("train_d_loss", loss, batch_size=len(images))

    def training_step(self, batch, batch_idx: int) -> None:
        """One discriminator step, then one generator step (manual optimisation)."""
        responses, images = batch
        optimizers = self.optimizers()
        opt_g, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        condition = self.condition(responses)
        assert self.generator is not None  # condition() checked that the model is built
        fake = self.generator(condition)
        if opt_d is not None:
            self._discriminator_step(opt_d, condition.detach(), fake.detach(), images)
        with self.toggled_optimizer(opt_g):
            terms = self.generator_losses(condition, fake, images)
            loss = torch.stack(list(terms.values())).sum()
            opt_g.zero_grad()
            self.manual_backward(loss)
            opt_g.step()
        for name, value in terms.items():
            self.log(f"train_g_{name}", value, batch_size=len(images))
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))

    def configure_optimizers(self):
        """Adam for the generator (with the mapping), and for the discriminator if any."""
        self._require_built()
        betas = (self.hparams["beta1"], 0.999)
        params = [
            *self.generator.parameters(),
            *self.codes.parameters(),
            *self.input_map.parameters(),
        ]
        opt_g = torch.optim.Adam(params, lr=self.hparams["lr"], betas=betas)
        if self.discriminator is None:
            return opt_g
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams["lr"], betas=betas
        )
        return [opt_g, opt_d]

    # ------------------------------------------------------------------ checkpoints, inference

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the frozen VGG network out of checkpoints (it is reloaded from ``vgg_weights``)."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("feature_loss.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the frozen VGG network back into the state dict (it was left out on saving)."""
        if self.feature_loss is not None:
            own = self.feature_loss.state_dict(prefix="feature_loss.")
            checkpoint["state_dict"].update(own)

    def optimize_for_inference(self) -> MonkeySee:
        """An eval-mode copy for fast inference, without the discriminator and the VGG network."""
        self._require_built()
        modules = dict(self._modules)
        for name in TRAINING_ONLY:
            if name in self._modules:
                self._modules[name] = None
        try:
            return super().optimize_for_inference()
        finally:
            self._modules.clear()
            self._modules.update(modules)

    def learned_fields(self) -> pd.DataFrame:
        """The learned RFs of an ``"end_to_end"`` model, one row per unit.

        Columns ``area``, ``array`` (where known), ``rf_x``, ``rf_y``, ``rf_sigma``
        (normalised image coordinates), ``group`` (its input channel) and ``initialised``
        (``"known"`` or ``"random"``). Compare with true RFs with
        `neuralsight.models.blocks.inverse_rf.compare_fields`.
        """
        self._require_built()
        if self.hparams["mapping"] != "end_to_end":
            raise ValueError(
                f"learned_fields needs mapping='end_to_end', this model's is "
                f"{self.hparams['mapping']!r}"
            )
        assert isinstance(self.input_map, LearnedInverseRF)  # mapping "end_to_end"
        table = self.input_map.fields()
        table.insert(0, "area", list(self.hparams["area"]))
        if self.hparams["array"] is not None:
            table.insert(1, "array", list(self.hparams["array"]))
        return table
