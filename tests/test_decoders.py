"""Decoders: ridge recovers a linear code, SID's layers match the paper, training lowers loss."""

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import make_toy_dataset
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.models.decoders import SID, ImprovedSID, ResponseScaler, RidgeDecoder


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def test_ridge_recovers_a_linear_code_on_held_out_stimuli():
    ds = make_toy_dataset(n_stimuli=400, n_units=80, n_bins=1, size=6)
    dm = NeuralDataModule(dataset=ds, batch_size=64)
    model = RidgeDecoder(n_inputs=dm.n_inputs, image_shape=dm.image_shape)
    _trainer(max_epochs=1).fit(model, dm)
    recon = model.reconstruct(ds, split="test")
    truth = ds.stimuli[ds.stimulus_id[ds.trials("test")]]
    assert np.abs(recon - truth).mean() < 0.05
    assert float(model.alpha) in model.alphas.tolist()


def test_ridge_without_validation_warns_and_still_fits():
    ds = make_toy_dataset(n_stimuli=120, n_units=40, size=4)
    dm = NeuralDataModule(dataset=ds, batch_size=32, val_fraction=0.0)
    model = RidgeDecoder(n_inputs=dm.n_inputs, image_shape=dm.image_shape)
    with pytest.warns(UserWarning, match="no validation data"):
        _trainer(max_epochs=1).fit(model, dm)
    assert not torch.isnan(model.alpha)
    assert model.linear.weight.abs().sum() > 0


def test_sid_layers_follow_the_reference():
    model = SID(n_inputs=300, image_shape=(1, 64, 64))
    converter = model.converter.net
    assert [type(m).__name__ for m in converter] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
        "Sigmoid",
    ]
    assert converter[0].out_features == 512 and converter[3].p == 0.5
    assert converter[4].out_features == 64 * 64
    convs = [m for m in model.autoencoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (64, 7, 2),
        (128, 5, 2),
        (256, 3, 2),
        (256, 3, 2),
        (256, 3, 1),
        (128, 3, 1),
        (64, 5, 1),
        (1, 7, 1),
    ]
    dropouts = [m.p for m in model.autoencoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.25] * 6
    bottleneck = model.autoencoder.encoder(torch.rand(2, 1, 64, 64))
    assert bottleneck.shape == (2, 256, 4, 4)
    assert model.hparams.scaling == "minmax"


def test_sid_rejects_sizes_it_cannot_halve_four_times():
    with pytest.raises(ValueError, match="divisible by 16"):
        SID(n_inputs=5, image_shape=(1, 24, 24)).eval()(torch.rand(1, 5, 1))


@pytest.mark.parametrize(
    ("make_model", "ratio"),
    [
        (lambda n, shape: SID(n_inputs=n, image_shape=shape), 0.9),
        (
            lambda n, shape: ImprovedSID(n_inputs=n, image_shape=shape, base_channels=8, depth=2),
            0.5,
        ),
    ],
)
def test_short_training_lowers_the_training_loss(make_model, ratio):
    torch.manual_seed(0)
    ds = make_toy_dataset(n_stimuli=96, n_units=40, n_bins=1, size=16, smooth=True)
    dm = NeuralDataModule(dataset=ds, batch_size=16)
    model = make_model(dm.n_inputs, dm.image_shape)
    dm.setup()
    model.scaler.fit(dm.response_stats())
    responses, images = next(iter(DataLoader(dm.train_set, batch_size=32)))
    model.eval()
    before = torch.nn.functional.mse_loss(model(responses), images).item()
    model.train()
    _trainer(max_epochs=8).fit(model, dm)
    model.eval()
    after = torch.nn.functional.mse_loss(model(responses), images).item()
    assert after < ratio * before


def test_scaler_rejects_the_wrong_number_of_features():
    with pytest.raises(ValueError, match="decoder expects 4"):
        ResponseScaler(4)(torch.zeros(2, 3, 1))
    with pytest.raises(ValueError, match="scaling must be"):
        ResponseScaler(4, "robust")


def test_decoder_rejects_bad_image_shape():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        RidgeDecoder(n_inputs=3, image_shape=(2, 4, 4))


def test_checkpoint_restores_scaler_and_weights(tmp_path):
    ds = make_toy_dataset(n_stimuli=60, n_units=10, size=4)
    dm = NeuralDataModule(dataset=ds, batch_size=16)
    model = RidgeDecoder(n_inputs=dm.n_inputs, image_shape=dm.image_shape)
    trainer = _trainer(max_epochs=1)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "ridge.ckpt")
    restored = RidgeDecoder.load_from_checkpoint(tmp_path / "ridge.ckpt")
    np.testing.assert_allclose(restored.reconstruct(ds), model.reconstruct(ds), atol=1e-6)
    assert bool(restored.scaler.fitted)


def test_reconstructing_an_empty_split_is_refused():
    ds = NeuralDataset.from_arrays(
        np.random.default_rng(0).random((20, 8), dtype=np.float32),
        np.zeros((20, 1, 4, 4), np.float32),
    )
    model = RidgeDecoder(8, (1, 4, 4))
    with pytest.raises(ValueError, match="no trials in split 'test'"):
        model.reconstruct(ds)


def test_improved_sid_averages_its_refiners_and_trains_each_alone():
    torch.manual_seed(0)
    model = ImprovedSID(n_inputs=12, image_shape=(1, 16, 16), base_channels=4, refiners=3)
    for refiner in model.refiners:
        torch.nn.init.normal_(refiner.out.weight, std=0.1)
    responses, images = torch.rand(5, 12, 1), torch.rand(5, 1, 16, 16)
    model.eval()
    coarse = model.intermediate(model.scaler(responses))
    each = [coarse + refiner(coarse) for refiner in model.refiners]
    expected = torch.stack(each).mean(0)
    torch.testing.assert_close(model(responses), expected)
    assert not torch.allclose(each[0], each[1]), "refiners should start apart"
    fast = model.optimize_for_inference()
    torch.testing.assert_close(fast(responses), model(responses), atol=1e-5, rtol=1e-5)
    model.train()
    model.training_loss(responses, images).backward()
    assert all(r.out.weight.grad.abs().sum() > 0 for r in model.refiners)
    with pytest.raises(ValueError, match="'refiners' must be a positive integer, found 0"):
        ImprovedSID(n_inputs=12, image_shape=(1, 16, 16), refiners=0)
