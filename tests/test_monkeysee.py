"""MonkeySee: inverse RF mapping, time windows, pix2pix networks, losses and GAN training."""

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml

from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.models.blocks.inverse_rf import (
    RANDOM_SIGMA,
    ElectrodeCodes,
    InverseRetinotopicMap,
    LearnedInverseRF,
    TimeWindows,
    compare_fields,
    gaussian_maps,
)
from neuralsight.models.blocks.pix2pix import PatchDiscriminator, Pix2PixGenerator
from neuralsight.models.decoders import MonkeySee
from neuralsight.models.decoders.monkeysee import unit_info
from neuralsight.models.losses import (
    VGGFeatureLoss,
    discriminator_loss,
    generator_adversarial_loss,
)

CONFIGS = sorted(Path(__file__).parents[1].glob("configs/monkeysee_*.yaml"))
TIMECOURSE_EDGES = np.arange(-100.5, 201.0)
SMALL = {"base_channels": 4, "discriminator_channels": 4, "vgg_input_size": None}


def _toy_dataset(n: int = 24, size: int = 32, edges=(25.0, 175.0), seed: int = 0) -> NeuralDataset:
    """12 units (two V1 arrays, one IT array) that linearly encode colour images."""
    rng = np.random.default_rng(seed)
    n_bins = len(edges) - 1
    stimuli = rng.random((n, 3, size, size), dtype=np.float32)
    weights = rng.normal(size=(3 * size * size, 12 * n_bins)).astype(np.float32) / size
    responses = (stimuli.reshape(n, -1) @ weights).reshape(n, 12, n_bins)
    units = pd.DataFrame(
        {
            "unit_id": np.arange(12),
            "area": ["V1"] * 8 + ["IT"] * 4,
            "array": np.repeat([0, 1, 2], 4),
            "rf_x": rng.uniform(-0.6, 0.6, 12),
            "rf_y": rng.uniform(-0.6, 0.6, 12),
            "rf_sigma": np.r_[np.full(8, 0.15), np.full(4, 0.5)],
        }
    )
    split = np.where(np.arange(n) < n - 4, "train", "test")
    return NeuralDataset.from_arrays(
        responses, stimuli, units=units, bin_edges_ms=edges, split=split
    )


def _model(ds: NeuralDataset, **kwargs) -> MonkeySee:
    options = {"feature_weight": 0.0, **SMALL, **kwargs}
    n_inputs = ds.n_units * ds.n_bins
    return MonkeySee(n_inputs=n_inputs, image_shape=ds.image_shape, **unit_info(ds), **options)


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


# ---------------------------------------------------------------------- inverse RF mapping


def test_a_unit_paints_its_response_at_its_receptive_field_centre():
    rf_x, rf_y = [0.3, -0.55], [-0.45, 0.7]
    mapping = InverseRetinotopicMap(rf_x, rf_y, [0.1, 0.1], ["a", "b"], (32, 48))
    out = mapping(torch.tensor([[[2.0], [-1.0]]]))
    assert out.shape == (1, 2, 32, 48)
    for channel, (x, y, sign) in enumerate(zip(rf_x, rf_y, (1, -1), strict=True)):
        expected = (int((y + 1) * 32 / 2), int((x + 1) * 48 / 2))
        flat = int((sign * out[0, channel]).argmax())
        assert divmod(flat, 48) == expected
    assert 1.8 < float(out[0, 0].max()) <= 2.0


def test_overlapping_units_of_one_group_are_averaged_and_groups_stay_apart():
    centre = 0.5625  # a pixel centre of a 16-pixel axis
    rf = [0.0, 0.0, centre]
    mapping = InverseRetinotopicMap(rf, rf, [0.2, 0.2, 0.1], [0, 0, 1], (16, 16))
    out = mapping(torch.tensor([[[2.0], [4.0], [7.0]]]))
    assert mapping.group_names == ["0", "1"]
    assert out[0, 0].max() == pytest.approx(3.0, abs=0.05)
    assert out[0, 1].max() == pytest.approx(7.0)
    assert float(out[0, 1, :4, :4].abs().max()) < 1e-3


def test_channels_are_group_major_with_each_groups_windows_in_order():
    mapping = InverseRetinotopicMap([-0.5, 0.5, 0.5], [0.0] * 3, [0.1] * 3, [1, 0, 1], (4, 4))
    values = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]] * 2)
    out = mapping(values)
    assert mapping.group_names == ["1", "0"]
    assert out.shape == (2, 4, 4, 4)
    left, right = out[1, :, 2, 1], out[1, :, 2, 3]
    assert left.tolist() == [1.0, 2.0, 0.0, 0.0]
    assert right.tolist() == [5.0, 6.0, 3.0, 4.0]


def test_pixel_paint_fills_one_pixel_and_rf_paint_spreads_over_the_field():
    pixel = InverseRetinotopicMap([0.1], [-0.3], [0.2], ["a"], (16, 16))
    out = pixel(torch.tensor([[[5.0]]]))[0, 0]
    assert int((out != 0).sum()) == 1 and out[5, 8] == 5.0
    gaussian = InverseRetinotopicMap([0.1], [-0.3], [0.2], ["a"], (16, 16), paint="rf")
    out = gaussian(torch.tensor([[[5.0]]]))[0, 0]
    assert int((out > 0.5).sum()) > 9 and float(out.max()) <= 5.0
    with pytest.raises(ValueError, match="paint must be one of"):
        InverseRetinotopicMap([0.1], [-0.3], [0.2], ["a"], (16, 16), paint="disc")
    with pytest.raises(ValueError, match="paint must be one of"):
        MonkeySee(n_inputs=1, image_shape=(3, 32, 32), paint="disc")


def test_units_without_receptive_field_are_left_out_of_the_fixed_mapping():
    mapping = InverseRetinotopicMap([0.0, np.nan], [0.0, 0.0], [0.1, 0.1], ["a", "a"], (8, 8))
    out = mapping(torch.tensor([[[1.0], [100.0]]]))
    assert mapping.n_unknown == 1 and float(out.max()) <= 1.0


def test_time_windows_average_the_paper_windows_per_area():
    windows = TimeWindows(["V1", "IT"], TIMECOURSE_EDGES, n_windows=5)
    times = torch.arange(-100.0, 201.0).expand(1, 2, -1)
    out = windows(times)
    assert out.shape == (1, 2, 5)
    assert out[0, 0, 0] == pytest.approx(13.0)  # V1, 0-27 ms: bins centred 0..26
    assert out[0, 1, 1] == pytest.approx(105.0)  # IT, 92-119 ms
    assert windows.bounds["V1"][4] == (104.0, 131.0)


def test_time_windows_refuse_single_bins_and_unknown_areas():
    with pytest.raises(ValueError, match="time-resolved"):
        TimeWindows(["V1"], [25.0, 175.0], n_windows=5)
    with pytest.raises(ValueError, match="RGC"):
        TimeWindows(["RGC"], TIMECOURSE_EDGES, n_windows=2)
    assert TimeWindows(["RGC"], [25.0, 175.0], n_windows=1)(torch.ones(2, 1, 1)).shape == (2, 1, 1)


def test_gradients_reach_centres_and_sizes_of_the_learned_layer():
    layer = LearnedInverseRF([0.1, -0.2], [0.0, 0.3], [0.2, 0.3], ["a", "b"], (16, 16))
    ramp = torch.linspace(-1, 1, 16)
    target = ramp[None, :] + 2 * ramp[:, None]
    loss = (layer(torch.tensor([[[1.0], [2.0]]])) * target).sum()
    loss.backward()
    for name in ("mu_x", "mu_y", "log_sigma"):
        grad = getattr(layer, name).grad
        assert grad is not None and bool((grad.abs() > 1e-6).all()), name


def test_learned_layer_starts_from_known_fields_and_reads_them_out():
    x, y, sigma = [0.2, np.nan, -0.4], [0.1, 0.5, 0.0], [0.15, 0.2, np.nan]
    fields = LearnedInverseRF(x, y, sigma, ["a", "a", "b"], (8, 8), seed=3).fields()
    assert fields["initialised"].tolist() == ["known", "random", "random"]
    assert fields.loc[0, ["rf_x", "rf_y", "rf_sigma"]].tolist() == pytest.approx([0.2, 0.1, 0.15])
    assert fields.loc[1:, "rf_sigma"].tolist() == pytest.approx([RANDOM_SIGMA] * 2)
    assert fields["group"].tolist() == ["a", "a", "b"]
    again = LearnedInverseRF(x, y, sigma, ["a", "a", "b"], (8, 8), seed=3).fields()
    pd.testing.assert_frame_equal(fields, again)
    distance = compare_fields(
        fields.iloc[:1], pd.DataFrame({"rf_x": [0.2], "rf_y": [0.4], "rf_sigma": [0.1]})
    )
    assert distance["distance_sigmas"].item() == pytest.approx(3.0)


def test_gaussian_maps_peak_at_one():
    maps = gaussian_maps(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.3]), 9, 9)
    assert float(maps.max()) == pytest.approx(1.0) and int(maps[0].argmax()) == 40


# ---------------------------------------------------------------------- networks and losses


@pytest.mark.parametrize("size", [32, 96])
def test_generator_output_shape_and_range(size):
    net = Pix2PixGenerator(15, 3, base_channels=4).eval()
    with torch.no_grad():
        out = net(10 * torch.randn(2, 15, size, size))
    assert out.shape == (2, 3, size, size)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_generator_refuses_sizes_not_divisible_by_32_and_has_inner_dropout():
    net = Pix2PixGenerator(2, 1, base_channels=4)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.randn(1, 2, 48, 48))
    dropouts = [any(isinstance(m, torch.nn.Dropout) for m in up) for up in net.up]
    assert dropouts == [True, True, False, False]


def test_patch_discriminator_scores_patches_of_condition_image_pairs():
    net = PatchDiscriminator(5, 3, base_channels=4)
    assert net(torch.randn(2, 5, 96, 96), torch.rand(2, 3, 96, 96)).shape == (2, 1, 10, 10)
    with pytest.raises(ValueError, match="at least 32"):
        net(torch.randn(1, 5, 16, 16), torch.rand(1, 3, 16, 16))


def test_vgg_feature_loss_is_zero_for_equal_images_and_lets_gradients_through():
    loss = VGGFeatureLoss(weights="random", input_size=64)
    target = torch.rand(2, 1, 32, 32)
    pred = torch.rand(2, 1, 32, 32, requires_grad=True)
    assert float(loss(target, target)) == 0.0
    value = loss(pred, target)
    value.backward()
    assert float(value.detach()) > 0 and float(pred.grad.abs().sum()) > 0
    assert loss.weights == "random" and not any(p.requires_grad for p in loss.parameters())


def test_adversarial_losses_reward_fooling_and_telling_apart():
    confident = torch.full((1, 1, 2, 2), 10.0)
    assert float(generator_adversarial_loss(confident)) < 1e-3
    assert float(generator_adversarial_loss(-confident)) > 5
    assert float(discriminator_loss(confident, -confident)) < 1e-3
    assert float(discriminator_loss(-confident, confident)) > 5


# ---------------------------------------------------------------------- the MonkeySee model


def test_gan_training_step_updates_generator_and_discriminator():
    ds = _toy_dataset()
    model = _model(ds, adversarial_weight=0.01, pixel_weight=0.5)
    generator, discriminator = _snapshot(model.generator), _snapshot(model.discriminator)
    _trainer(max_steps=1).fit(model, NeuralDataModule(dataset=ds, batch_size=8))
    assert _changed(generator, model.generator)
    assert _changed(discriminator, model.discriminator)
    assert bool(model.scaler.fitted)


@pytest.mark.parametrize("off", ["adversarial_weight", "feature_weight", "pixel_weight"])
def test_every_loss_term_can_be_switched_off(off):
    ds = _toy_dataset()
    weights = {"adversarial_weight": 0.01, "feature_weight": 1.0, "pixel_weight": 0.5}
    model = _model(ds, **(weights | {off: 0.0}), vgg_weights="random")
    images = torch.rand(2, *ds.image_shape)
    condition = model.condition(torch.from_numpy(ds.responses[:2]))
    terms = model.generator_losses(condition, model.generator(condition), images)
    names = {"adversarial", "feature", "pixel"} - {off.removesuffix("_weight")}
    assert set(terms) == names
    assert (model.discriminator is None) == (off == "adversarial_weight")
    assert (model.feature_loss is None) == (off == "feature_weight")


def test_without_adversarial_term_one_optimiser_trains_the_generator():
    ds = _toy_dataset()
    model = _model(ds, adversarial_weight=0.0)
    before = _snapshot(model.generator)
    _trainer(max_steps=1).fit(model, NeuralDataModule(dataset=ds, batch_size=8))
    assert model.discriminator is None and _changed(before, model.generator)


def test_all_loss_weights_zero_is_an_error():
    with pytest.raises(ValueError, match="at least one positive"):
        MonkeySee(8, (3, 32, 32), adversarial_weight=0, feature_weight=0, pixel_weight=0)


def test_units_come_from_the_datamodule_and_checkpoints_restore_the_model(tmp_path):
    ds = _toy_dataset()
    model = MonkeySee(12, ds.image_shape, mapping="end_to_end", vgg_weights="random", **SMALL)
    assert not model.built
    with pytest.raises(RuntimeError, match="not built"):
        model(torch.from_numpy(ds.responses[:2]))
    trainer = _trainer(max_steps=1)
    trainer.fit(model, NeuralDataModule(dataset=ds, batch_size=8))
    assert model.hparams.area == ds.units["area"].tolist()
    path = tmp_path / "monkeysee.ckpt"
    trainer.save_checkpoint(path)
    assert not any(k.startswith("feature_loss.") for k in torch.load(path)["state_dict"])
    restored = MonkeySee.load_from_checkpoint(path)
    responses = torch.from_numpy(ds.responses[:3])
    assert torch.allclose(restored.eval()(responses), model.eval()(responses), atol=1e-6)
    fields = restored.learned_fields()
    assert list(fields.columns[:2]) == ["area", "array"] and len(fields) == 12


def test_spatiotemporal_model_stacks_five_windows_per_area():
    ds = _toy_dataset(n=6, edges=TIMECOURSE_EDGES)
    model = _model(ds, mapping="spatiotemporal")
    condition = model.condition(torch.from_numpy(ds.responses[:2]))
    assert condition.shape == (2, 2 * 5, 32, 32)
    assert model.input_map.group_names == ["V1", "IT"]


def test_spatial_model_has_one_channel_per_array():
    ds = _toy_dataset(n=6)
    model = _model(ds, mapping="spatial")
    assert model.generator.down[0][0].in_channels == 3
    assert model.input_map.group_names == ["V1:0", "V1:1", "IT:2"]


def test_dense_baseline_trains_and_reconstructs():
    ds = _toy_dataset()
    model = _model(ds, mapping="dense", dense_channels=2)
    _trainer(max_steps=1).fit(model, NeuralDataModule(dataset=ds, batch_size=8))
    recon = model.reconstruct(ds, split="test")
    assert recon.shape == (4, 3, 32, 32) and recon.min() >= 0 and recon.max() <= 1
    assert model.discriminator is not None  # reconstruct leaves the model whole


def test_electrode_codes_paint_each_response_times_its_own_learned_vector():
    codes = ElectrodeCodes(n_units=2, codes=3, seed=1)
    with torch.no_grad():
        codes.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [1.0, 3.0, 0.0]]))
    mapping = InverseRetinotopicMap([-0.5, 0.5], [0.0, 0.0], [0.1, 0.1], ["a", "a"], (8, 8))
    with torch.no_grad():
        out = mapping(codes(torch.tensor([[[2.0], [4.0]]])))
    assert out.shape == (1, 3, 8, 8)
    assert out[0, :, 4, 2].tolist() == [2.0, -4.0, 1.0]  # x = -0.5: column 2
    assert out[0, :, 4, 6].tolist() == [4.0, 12.0, 0.0]
    assert float(out[0].abs().sum()) == 23.0  # nothing painted elsewhere


@pytest.mark.parametrize("mapping", ["spatial", "end_to_end"])
def test_electrode_codes_start_from_the_plain_painting_and_learn(mapping):
    ds = _toy_dataset()
    plain, coded = _model(ds, mapping=mapping), _model(ds, mapping=mapping, electrode_codes=2)
    responses = torch.from_numpy(ds.responses[:2])
    assert coded.generator.down[0][0].in_channels == 3 * 2
    with torch.no_grad():
        start, paper = coded.condition(responses), plain.condition(responses)
    assert torch.allclose(start[:, ::2], paper, atol=1e-6)
    before = _snapshot(coded.codes)
    _trainer(max_steps=1).fit(coded, NeuralDataModule(dataset=ds, batch_size=8))
    assert _changed(before, coded.codes)


def test_electrode_codes_are_refused_for_the_dense_baseline_and_below_zero():
    ds = _toy_dataset(n=6)
    with pytest.raises(ValueError, match="'dense' does not"):
        _model(ds, mapping="dense", electrode_codes=2)
    with pytest.raises(ValueError, match="integer >= 0"):
        _model(ds, electrode_codes=-1)


def test_learned_fields_need_the_end_to_end_model():
    with pytest.raises(ValueError, match="end_to_end"):
        _model(_toy_dataset(n=6)).learned_fields()


def test_receptive_fields_in_degrees_are_refused():
    ds = _toy_dataset(n=6)
    ds.meta["rf_units"] = "degrees"
    with pytest.raises(ValueError, match="normalised"):
        unit_info(ds)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_build_the_model(path):
    config = yaml.safe_load(path.read_text())
    section = config["model"]
    assert section["class_path"] == "neuralsight.models.decoders.MonkeySee"
    init_args = section.get("init_args", {}) | {"vgg_weights": "random"}
    model = MonkeySee(n_inputs=960, image_shape=(3, 96, 96), **init_args)
    name = path.stem.removeprefix("monkeysee_")
    assert model.hparams.mapping == {"baseline": "dense"}.get(name, name)
    assert config["data"]["path"].endswith(".h5")


def test_vgg_feature_loss_runs_on_vgg16_at_vgg19s_named_depths_where_only_vgg16_exists(
    tmp_path,
):
    network = torchvision.models.vgg16(weights=None)
    state = {k: v.numpy() for k, v in network.state_dict().items() if k.startswith("features.")}
    np.savez(tmp_path / "vgg16_features.npz", **state)
    loss = VGGFeatureLoss(weights=tmp_path, input_size=None)
    assert loss.network == "vgg16" and loss.cuts == (8, 15, 20, 25, 29)
    assert loss.weights.startswith("imagenet:vgg16_features.npz#")
    kinds = [type(loss.features[k - 1]).__name__ for k in loss.cuts]
    assert kinds == ["Conv2d"] * 5
    with pytest.raises(ValueError, match=r"between 1 and 30 for vgg16"):
        VGGFeatureLoss(weights=tmp_path, cuts=(35,))
