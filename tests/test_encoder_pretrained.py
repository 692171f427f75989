"""The pretrained-core encoder, the choice of its layer, and most exciting inputs (MEIs)."""

import functools

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.lightning_cli import NeuralSightCLI
from neuralsight.metrics.encoding import per_unit_correlation
from neuralsight.models import ENCODERS
from neuralsight.models.encoders import (
    CNNEncoder,
    LNEncoder,
    PretrainedCoreEncoder,
    choose_layer,
    energy_centres,
    most_exciting_input,
    most_exciting_inputs,
)
from neuralsight.train import fit

SIZE = 16
TINY = {"weights": "random", "feature_size": 64, "layer": "conv2"}
train = functools.partial(fit, progress=False, accelerator="cpu", logger=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gaussian_fields(centres: np.ndarray, sigma: float = 0.15, size: int = SIZE) -> np.ndarray:
    """Unit-norm Gaussian fields ``[n, size * size]`` centred at ``centres`` ``[n, 2]``."""
    grid = -1 + (2 * np.arange(size) + 1) / size
    gx, gy = np.meshgrid(grid, grid)
    d2 = (gx[None] - centres[:, :1, None]) ** 2 + (gy[None] - centres[:, 1:, None]) ** 2
    fields = np.exp(-d2 / (2 * sigma**2)).reshape(len(centres), -1)
    return fields / np.linalg.norm(fields, axis=1, keepdims=True)


def toy_cells(n: int = 300, n_units: int = 6, seed: int = 0) -> tuple[NeuralDataset, np.ndarray]:
    """Poisson cells driven by the contrast in a Gaussian field: rate ``1 + 2 g + 8 g^2``."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, SIZE, SIZE), dtype=np.float32)
    centres = rng.uniform(-0.5, 0.5, size=(n_units, 2))
    drive = (images[:, 0] - 0.5).reshape(n, -1) @ gaussian_fields(centres).T
    rate = 1.0 + 2.0 * drive + 8.0 * drive**2
    units = pd.DataFrame(
        {"unit_id": range(n_units), "area": "toy", "rf_x": centres[:, 0], "rf_y": centres[:, 1]}
    )
    split = np.where(np.arange(n) < n - 60, "train", "test")
    counts = rng.poisson(np.clip(rate, 0, None)).astype(np.float32)
    return NeuralDataset.from_arrays(counts, images, units=units, split=split), rate


def mei_centres(encoder, n_units: int, **options) -> np.ndarray:
    """Energy centres ``[n_units, 2]`` (normalised) of each unit's MEI's contrast."""
    meis = most_exciting_inputs(encoder, range(n_units), **options)
    return energy_centres(torch.as_tensor(((meis - 0.5) ** 2).sum(1)))


def random_ln(**arguments) -> LNEncoder:
    """An LN encoder with random filters (they start at zero, where every image is an MEI)."""
    model = LNEncoder(**arguments)
    with torch.no_grad():
        model.filters.normal_()
    return model


def errors_px(centres: np.ndarray, truth: np.ndarray, size: int = SIZE) -> np.ndarray:
    return np.hypot(*((centres - truth) * size / 2).T)


@pytest.mark.parametrize("readout", ["gaussian", "factorised"])
def test_the_pretrained_core_encoder_predicts_held_out_responses(readout):
    ds, rate = toy_cells()
    dm = NeuralDataModule(dataset=ds, batch_size=32, val_fraction=0.0)
    torch.manual_seed(0)
    model = PretrainedCoreEncoder(dm.n_inputs, dm.image_shape, readout=readout, **TINY)
    core_before = [p.clone() for p in model.core.parameters()]
    train(model, dm, max_epochs=6)
    r = per_unit_correlation(model.predict_responses(ds)[:, :, 0], rate[ds.trials("test")])
    assert r.mean() > 0.35 and r.min() > 0.15, r
    assert all(torch.equal(a, b) for a, b in zip(core_before, model.core.parameters(), strict=True))
    assert not any(p.requires_grad for p in model.core.parameters())


def test_the_core_stays_in_eval_mode_and_its_features_are_cached():
    model = PretrainedCoreEncoder(n_inputs=3, image_shape=(3, SIZE, SIZE), **TINY).train()
    assert model.training and not model.core.training
    images = torch.rand(4, 3, SIZE, SIZE)
    calls = []
    model.core.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    first = model.eval()(images)
    assert torch.equal(model(images), first) and calls == [4]
    model(torch.cat([images[:2], torch.rand(1, 3, SIZE, SIZE)]))
    assert calls == [4, 1]
    model(images.clone().requires_grad_(True)).sum().backward()
    assert calls == [4, 1, 4]


def test_the_checkpoint_loads_with_weights_only_and_keeps_the_provenance(tmp_path):
    ds, _ = toy_cells(n=80)
    dm = NeuralDataModule(dataset=ds, batch_size=16, val_fraction=0.0)
    model = train(PretrainedCoreEncoder(dm.n_inputs, dm.image_shape, **TINY), dm, max_epochs=1)
    path = tmp_path / "pretrained_core.ckpt"
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["core_weights"] == "random"
    assert any(key.startswith("core.") for key in checkpoint["state_dict"])
    restored = PretrainedCoreEncoder.load_from_checkpoint(path, weights_only=True)
    assert restored.core_weights == "random" and not restored.core.training
    np.testing.assert_allclose(restored.predict_responses(ds), model.predict_responses(ds))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"layer": "conv9"}, r"unknown AlexNet conv layer 'conv9'; expected one of"),
        ({"layer": "fc6"}, r"unknown AlexNet conv layer 'fc6'"),
        ({"feature_size": 32}, r"feature_size must be at least 64 pixels for AlexNet, found 32"),
        ({"readout": "dense"}, r"readout must be 'gaussian' or 'factorised', found 'dense'"),
        ({"init_positions": "centre"}, r"init_positions must be 'linear' or 'random'"),
    ],
)
def test_bad_arguments_raise_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        PretrainedCoreEncoder(n_inputs=2, image_shape=(1, SIZE, SIZE), **(TINY | arguments))


def test_the_encoder_is_registered():
    assert ENCODERS.get("pretrained_core") is PretrainedCoreEncoder


def test_choose_layer_keeps_the_best_validation_layer_and_never_reads_the_test_split():
    ds, _ = toy_cells(n=120)
    dm = NeuralDataModule(dataset=ds, batch_size=32, val_fraction=0.2)
    dm.test_dataloader = dm.predict_dataloader = None  # any use of the test split fails
    fit_once = functools.partial(train, max_epochs=1)
    choice = choose_layer(dm, fit_once, ("conv1", "conv2"), weights="random", feature_size=64)
    assert set(choice.val_r) == {"conv1", "conv2"} == set(choice.seconds)
    assert choice.layer == max(choice.val_r, key=choice.val_r.get)
    assert choice.model.hparams["layer"] == choice.layer and not choice.model.training


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"layers": ()}, "at least one candidate layer"), ({"val_fraction": 0.0}, "val_fraction")],
)
def test_choose_layer_needs_layers_and_a_validation_split(arguments, message):
    ds, _ = toy_cells(n=40)
    dm = NeuralDataModule(dataset=ds, val_fraction=arguments.get("val_fraction", 0.2))
    layers = arguments.get("layers", ("conv1",))
    with pytest.raises(ValueError, match=message):
        choose_layer(dm, functools.partial(train, max_epochs=1), layers, weights="random")


@pytest.mark.parametrize("centre", [(-0.5, -0.25), (0.0, 0.0), (0.375, 0.6), (0.7, -0.55)])
def test_the_mei_of_a_known_gaussian_field_lands_on_it(centre):
    model = LNEncoder(n_inputs=1, image_shape=(1, SIZE, SIZE))
    field = gaussian_fields(np.array([centre]), sigma=0.2)
    with torch.no_grad():
        model.filters.copy_(torch.as_tensor(field, dtype=torch.float32).view(1, 1, SIZE, SIZE))
    error = errors_px(mei_centres(model, 1, steps=30), np.array([centre]))
    assert error[0] < 0.5


def test_meis_of_a_trained_encoder_land_on_the_simulated_fields():
    ds, _ = toy_cells(n=400)
    dm = NeuralDataModule(dataset=ds, batch_size=32, val_fraction=0.0)
    torch.manual_seed(0)
    model = train(LNEncoder(dm.n_inputs, dm.image_shape, lr=0.02), dm, max_epochs=6)
    truth = ds.units[["rf_x", "rf_y"]].to_numpy()
    error = errors_px(mei_centres(model, ds.n_units, steps=40, jitter=1), truth)
    assert np.median(error) < 1.0 and error.max() < 2.0, error


@pytest.mark.parametrize(
    "build",
    [
        lambda: random_ln(n_inputs=2, image_shape=(3, SIZE, SIZE)),
        lambda: CNNEncoder(n_inputs=2, image_shape=(3, SIZE, SIZE), channels=4, kernels=(3,)),
        lambda: PretrainedCoreEncoder(n_inputs=2, image_shape=(3, SIZE, SIZE), **TINY),
    ],
    ids=["ln", "cnn", "pretrained_core"],
)
def test_meis_are_seeded_contrast_limited_and_excite_the_unit(build):
    torch.manual_seed(0)
    model = build().train()
    options = {"steps": 15, "contrast": 0.1, "jitter": 1}
    mei = most_exciting_input(model, 1, seed=3, **options)
    assert model.training and all(p.grad is None for p in model.parameters())
    np.testing.assert_array_equal(mei, most_exciting_input(model, 1, seed=3, **options))
    assert mei.shape == (3, SIZE, SIZE) and mei.min() >= 0 and mei.max() <= 1
    assert np.sqrt(((mei - 0.5) ** 2).mean()) == pytest.approx(0.1, rel=0.05)
    noise = np.clip(0.5 + 0.1 * np.random.default_rng(0).normal(size=mei.shape), 0, 1)
    with torch.no_grad():
        responses = model.eval()(torch.as_tensor(np.stack([mei, noise]), dtype=torch.float32))
    assert responses[0, 1, 0] > responses[1, 1, 0]


def test_meis_made_together_each_excite_their_own_unit_most():
    torch.manual_seed(0)
    model = random_ln(n_inputs=3, image_shape=(1, SIZE, SIZE))
    meis = most_exciting_inputs(model, [2, 0], steps=30)
    assert meis.shape == (2, 1, SIZE, SIZE)
    with torch.no_grad():
        responses = model(torch.as_tensor(meis))[:, :, 0]
    assert responses[0, 2] > responses[1, 2] and responses[1, 0] > responses[0, 0]
    np.testing.assert_allclose(meis[1], most_exciting_input(model, 0, steps=30, seed=1), atol=0.2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"unit": 5}, "units must index the encoder's 2 units, found \\[5\\]"),
        ({"time_bin": 1}, "time_bin must index the encoder's 1 bins"),
        ({"contrast": 0.0}, "contrast > 0"),
        ({"steps": 0}, "steps >= 1"),
    ],
)
def test_mei_arguments_are_checked(arguments, message):
    model = LNEncoder(n_inputs=2, image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=message):
        most_exciting_input(model, **({"unit": 0} | arguments))


def test_the_v4_config_builds_a_factorised_encoder_through_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((12, 3, SIZE, SIZE), dtype=np.float32)
    responses = rng.poisson(2.0, (12, 5)).astype(np.float32)
    path = NeuralDataset.from_arrays(responses, images).save(tmp_path / "v4.h5")
    overrides = ["--data.path", str(path), "--model.init_args.weights", "random"]
    cli = NeuralSightCLI(
        model_class=L.LightningModule,
        datamodule_class=NeuralDataModule,
        subclass_mode_model=True,
        args=["--config", "configs/encoder_pretrained_core_v4.yaml", *overrides],
        run=False,
    )
    assert isinstance(cli.model, PretrainedCoreEncoder)
    assert (cli.model.hparams["readout"], cli.model.hparams["layer"]) == ("factorised", "conv2")
    assert cli.model.n_units == 5
