"""The feature-space decoder: its prior inverts AlexNet features, its ridge reads them out."""

import json

import imageio.v3 as imageio
import numpy as np
import pytest
import torch

from conftest import linear_deadleaves_recording
from neuralsight.cli import main
from neuralsight.data import NeuralDataModule
from neuralsight.data.sources import make_stimuli
from neuralsight.models.decoders import FeatureDecoder
from neuralsight.models.decoders.feature import (
    alexnet_features,
    feature_shape,
    image_features,
    load_feature_prior,
    prior_targets,
)
from neuralsight.models.decoders.ridge import RidgeSolver
from neuralsight.train import (
    feature_prior_checkpoint,
    fit,
    recorded_weights_source,
    train_feature_prior,
)

SIZE, N_UNITS = 16, 40
PRIOR = {"weights": "random", "feature_size": 64, "width": 16, "progress": False}


def scenes(n: int, seed: int) -> np.ndarray:
    return make_stimuli("deadleaves", n, size=SIZE, channels=1, seed=seed)


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prior")
    train_feature_prior(scenes(400, seed=1), epochs=8, out_dir=folder, **PRIOR)
    return feature_prior_checkpoint(folder)


@pytest.fixture(scope="module")
def thumbnail_prior_path(tmp_path_factory):
    """The same prior, also reading a 4x4 thumbnail."""
    folder = tmp_path_factory.mktemp("thumbnail_prior")
    train_feature_prior(scenes(400, seed=1), epochs=8, low_res=4, out_dir=folder, **PRIOR)
    return feature_prior_checkpoint(folder)


def test_feature_shape_is_the_layer_output_at_the_input_size():
    table = [
        ("conv5", 224, (256, 13, 13)),
        ("conv2", 224, (192, 27, 27)),
        ("conv5", 64, (256, 3, 3)),
    ]
    for layer, size, expected in table:
        assert feature_shape(alexnet_features("random", layer, size)) == expected


def test_prior_inverts_features_better_than_the_mean_image(prior_path):
    prior = load_feature_prior(prior_path)
    held_out = scenes(64, seed=3)
    features = image_features(alexnet_features("random", "conv5", 64), held_out)
    with torch.no_grad():
        inverted = prior.inverter(features).numpy()
    assert prior.hparams["weights_provenance"] == "random"
    assert ((inverted - held_out) ** 2).mean() < 0.8 * held_out.var()


@pytest.mark.parametrize("prior", ["prior_path", "thumbnail_prior_path"])
def test_feature_decoder_beats_its_shuffle_control(prior, request):
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    errors = {}
    for control in ("none", "shuffle"):
        dm = NeuralDataModule(dataset=ds, batch_size=50, control=control, seed=0)
        path = request.getfixturevalue(prior)
        model = FeatureDecoder(dm.n_inputs, dm.image_shape, prior=str(path))
        fit(model, dm, max_epochs=1, progress=False, accelerator="cpu")
        test = ds.trials("test")
        errors[control] = float(((model.reconstruct(ds) - ds.stimuli[test]) ** 2).mean())
    assert errors["none"] < 0.9 * errors["shuffle"]
    assert np.isfinite(float(model.alpha))


def test_the_thumbnail_is_the_area_mean_of_the_image():
    images = torch.rand(3, 1, SIZE, SIZE)
    extractor = alexnet_features("random", "conv5", 64)
    n_features = int(np.prod(feature_shape(extractor)))
    targets = prior_targets(extractor, images, low_res=4)
    thumbnails = targets[:, n_features:].reshape(3, 1, 4, 4)
    assert torch.allclose(targets[:, :n_features], image_features(extractor, images))
    assert torch.allclose(thumbnails[:, :, 1, 2], images[:, :, 4:8, 8:12].mean((-2, -1)))


def test_a_prior_with_a_thumbnail_keeps_the_layout_that_features_alone_lose(
    prior_path, thumbnail_prior_path
):
    """Trained the same way, the prior that also reads a 4x4 thumbnail inverts held-out
    scenes with a lower pixel error than the one that reads conv5 features alone."""
    held_out = scenes(64, seed=3)
    priors = {0: load_feature_prior(prior_path), 4: load_feature_prior(thumbnail_prior_path)}
    errors = {}
    for low_res, prior in priors.items():
        inputs = prior_targets(alexnet_features("random", "conv5", 64), held_out, low_res)
        with torch.no_grad():
            errors[low_res] = float(((prior.inverter(inputs).numpy() - held_out) ** 2).mean())
    assert errors[4] < 0.92 * errors[0]


def test_the_prior_command_trains_a_checkpoint_the_decoder_reads(tmp_path, capsys):
    images = tmp_path / "images" / "scenes"
    images.mkdir(parents=True)
    for k, scene in enumerate(scenes(14, seed=4)):
        imageio.imwrite(images / f"{k}.png", (scene[0] * 255).astype(np.uint8))
    command = ["prior", "--root", str(tmp_path / "images"), "--n", "12", "--size", str(SIZE)]
    options = ["--channels", "1", "--low-res", "4", "--width", "8", "--epochs", "1"]
    assert main([*command, *options, "--weights", "random", "--out", str(tmp_path / "p")]) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["low_res"] == 4 and said["weights_provenance"] == "random"
    model = FeatureDecoder(N_UNITS, (1, SIZE, SIZE), prior=said["checkpoint"])
    assert model.linear.out_features == 256 * 13 * 13 + 4 * 4


def test_feature_decoder_refuses_a_prior_of_other_images(prior_path):
    with pytest.raises(ValueError, match=r"prior makes images of shape \(1, 16, 16\)"):
        FeatureDecoder(N_UNITS, (3, 32, 32), prior=str(prior_path))


def test_prior_refuses_too_few_images_and_unknown_layers():
    with pytest.raises(ValueError, match="images must be"):
        train_feature_prior(np.zeros((1, 1, 16, 16), np.float32), **PRIOR)
    with pytest.raises(ValueError, match="layer must be one of"):
        train_feature_prior(scenes(4, seed=0), layer="fc7", **PRIOR)
    for low_res in (-2, SIZE + 1):
        with pytest.raises(ValueError, match=f"low_res must be 0 .* found {low_res}"):
            train_feature_prior(scenes(4, seed=0), low_res=low_res, **PRIOR)


def test_matched_variance_gives_predictions_the_targets_variance():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(500, 5)))
    y = torch.cat([x @ torch.from_numpy(rng.normal(size=(5, 3))), torch.ones(500, 1).double()], 1)
    y[:, :3] += torch.from_numpy(rng.normal(size=(500, 3)))
    solver = RidgeSolver([1e3])
    solver.add(x, y)
    solver.solve()
    shrunk, _ = solver.weights(1e3)
    matched, bias = solver.weights(1e3, match_variance=True)
    variance = y[:, :3].var(0)
    assert bool(((x @ shrunk)[:, :3].var(0) < 0.9 * variance).all())
    assert torch.allclose((x @ matched)[:, :3].var(0), variance)
    assert torch.allclose(x @ matched[:, 3] + bias[3], torch.ones(500, dtype=torch.float64))


def test_the_v4_config_fits_through_the_command_line(prior_path, tmp_path):
    data = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS).save(tmp_path / "recording.h5")
    run = tmp_path / "run"
    overrides = ["--data.path", str(data), "--model.init_args.prior", str(prior_path)]
    config = ["fit", "--config", "configs/feature_ridge_v4.yaml", *overrides]
    assert main([*config, "--trainer.default_root_dir", str(run)]) == 0
    (checkpoint,) = run.rglob("last.ckpt")
    model = FeatureDecoder.load_from_checkpoint(checkpoint, weights_only=True)
    assert np.isfinite(float(model.alpha)) and model.low_res == 0


def test_one_strength_per_output_solves_each_output_at_its_own_strength():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(200, 4)))
    y = x @ torch.from_numpy(rng.normal(size=(4, 3))) + torch.from_numpy(rng.normal(size=(200, 3)))
    solver = RidgeSolver([0.1, 10.0, 1e3])
    solver.add(x, y)
    solver.solve()
    mixed, _ = solver.weights(torch.tensor([0.1, 10.0, 1e3], dtype=torch.float64))
    for column, alpha in enumerate((0.1, 10.0, 1e3)):
        assert torch.allclose(mixed[:, column], solver.weights(alpha)[0][:, column])
    solver.score(x[:50], y[:50])
    every = [solver.best_alpha(slice(k, k + 1)) for k in range(3)]
    assert solver.best_alpha() in every and solver.best_alpha(slice(0, 3)) == solver.best_alpha()


def test_the_thumbnail_gets_its_own_strength_when_asked(thumbnail_prior_path):
    prior = str(thumbnail_prior_path)
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    for strength in ("own", "shared"):
        dm = NeuralDataModule(dataset=ds, batch_size=50, seed=0)
        model = FeatureDecoder(
            dm.n_inputs, dm.image_shape, prior=prior, thumbnail_strength=strength
        )
        fit(model, dm, max_epochs=1, progress=False, accelerator="cpu")
        own = model.solver.best_alpha(slice(model.n_features, None))
        expected = own if strength == "own" else model.solver.best_alpha(slice(0, model.n_features))
        assert float(model.thumbnail_alpha) == expected
    with pytest.raises(ValueError, match="thumbnail_strength must be"):
        FeatureDecoder(N_UNITS, (1, SIZE, SIZE), prior=prior, thumbnail_strength="mine")


def test_the_prior_records_a_weights_folder_by_its_absolute_path(tmp_path, monkeypatch):
    """A decoder fitted from another folder must find the weights the prior was trained on."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    table = [("weights", str(tmp_path / "weights")), ("random", "random"), ("auto", "auto")]
    for given, recorded in table:
        assert recorded_weights_source(given) == recorded


def test_the_decoder_can_read_the_weights_from_elsewhere(prior_path):
    model = FeatureDecoder(N_UNITS, (1, SIZE, SIZE), prior=str(prior_path), weights="random")
    targets = model.targets(torch.rand(2, 1, SIZE, SIZE))
    assert model.feature_weights == "random" and targets.shape == (2, 256 * 3 * 3)
