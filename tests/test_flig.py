"""FLIG: both directions, switchable losses, deterministic decoding, training, fMRI layout."""

import json

import lightning as L
import numpy as np
import pytest
import scipy.io
import torch
from lightning.pytorch.cli import LightningCLI

from conftest import make_toy_dataset
from neuralsight.data import NeuralDataModule
from neuralsight.data.readers.fmri69 import read
from neuralsight.lightning_cli import NeuralSightCLI
from neuralsight.models.decoders import FLIG
from neuralsight.models.decoders.flig import FLOW_TERMS, FeatureAutoencoder
from neuralsight.train import make_trainer
from test_ddp import RecordWeights

SMALL = {"n_features": 8, "cae_channels": (4, 8), "flow_blocks": 2, "flow_hidden": 16}


def _trainer(max_epochs: int) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )


@pytest.mark.parametrize(("n_inputs", "n_features"), [(24, 8), (6, 16)])
def test_both_directions_have_the_right_shapes(n_inputs, n_features):
    model = FLIG(n_inputs, (1, 12, 12), n_bins=2, **(SMALL | {"n_features": n_features}))
    model.eval()
    assert model.flow.n_dims == n_inputs + n_features
    assert model(torch.rand(3, n_inputs // 2, 2)).shape == (3, 1, 12, 12)
    assert model.encode(torch.rand(3, 1, 12, 12)).shape == (3, n_inputs // 2, 2)
    assert model.predict_responses(np.random.default_rng(0).random((5, 1, 12, 12))).shape == (
        5,
        n_inputs // 2,
        2,
    )


@pytest.mark.parametrize("term", FLOW_TERMS)
def test_each_flow_loss_term_switches_off(term):
    torch.manual_seed(0)
    model = FLIG(12, (1, 8, 8), **(SMALL | {f"{term}_weight": 0.0}))
    responses, images = torch.rand(6, 12, 1), torch.rand(6, 1, 8, 8)
    terms = model.loss_terms(responses, images, "flow")
    assert set(terms) == set(FLOW_TERMS) - {term}
    assert all(torch.isfinite(v) and v >= 0 for v in terms.values())
    assert set(model.loss_terms(responses, images, "cae")) == {"reconstruction"}


def test_loss_weights_are_checked():
    with pytest.raises(ValueError, match="at least one flow loss weight"):
        FLIG(12, (1, 8, 8), **SMALL, **{f"{t}_weight": 0.0 for t in FLOW_TERMS})
    with pytest.raises(ValueError, match="stage 1 would have no loss"):
        FLIG(12, (1, 8, 8), **SMALL, reconstruction_weight=0.0)
    with pytest.raises(ValueError, match=r"must be >= 0, found \{'image': -1.0\}"):
        FLIG(12, (1, 8, 8), **SMALL, image_weight=-1.0)
    FLIG(12, (1, 8, 8), **SMALL, reconstruction_weight=0.0, cae_epochs=0)


def test_decoding_is_deterministic_in_eval_mode_and_samples_on_request():
    torch.manual_seed(0)
    model = FLIG(12, (1, 8, 8), **SMALL).eval()
    with torch.no_grad():
        for module in model.flow.modules():
            if isinstance(module, torch.nn.Sequential):
                torch.nn.init.normal_(module[2].weight, std=0.05)
        responses = torch.rand(4, 12, 1)
        first = model(responses)
        assert torch.equal(first, model(responses))
        assert not torch.allclose(model(responses, sample=True), first)
    assert np.allclose(model.reconstruct(responses.numpy()), first.clamp(0, 1).numpy(), atol=1e-5)


def _flow_losses(model: FLIG, dm: NeuralDataModule) -> dict[str, float]:
    model.eval()
    responses, images = zip(*[dm.train_set[i] for i in range(len(dm.train_set))], strict=True)
    with torch.no_grad():
        terms = model.loss_terms(torch.stack(responses), torch.stack(images), "flow")
    return {name: float(value) for name, value in terms.items()}


def _pca_started(dm: NeuralDataModule, **kwargs) -> FLIG:
    model = FLIG(dm.n_inputs, dm.image_shape, cae_epochs=0, **(SMALL | kwargs))
    model.scaler.fit(dm.response_stats())
    model.cae.init_pca(torch.as_tensor(dm.dataset.stimuli))
    model.cae_ready.fill_(True)
    return model


def test_a_short_fit_lowers_the_flow_losses():
    torch.manual_seed(0)
    ds = make_toy_dataset(n_stimuli=240, n_units=24, n_bins=1, size=8, smooth=True)
    dm = NeuralDataModule(dataset=ds, batch_size=16)
    model = _pca_started(dm, flow_init="identity", flow_lr=3e-3, n_features=16)
    before = _flow_losses(model, dm)
    _trainer(max_epochs=8).fit(model.train(), dm)
    after = _flow_losses(model, dm)
    for name in ("local_encode", "local_decode", "image"):
        assert after[name] < 0.7 * before[name], (name, before[name], after[name])


def test_the_ridge_start_beats_the_identity_start():
    ds = make_toy_dataset(n_stimuli=240, n_units=24, n_bins=1, size=8, smooth=True)
    dm = NeuralDataModule(dataset=ds, batch_size=32)
    identity = _flow_losses(_pca_started(dm, flow_init="identity"), dm)
    model = _pca_started(dm)
    model.init_flow_ridge(dm.train_dataloader(), dm.val_dataloader())
    assert bool(model.flow_ready)
    ridge = _flow_losses(model, dm)
    for name in ("local_encode", "local_decode", "image"):
        assert ridge[name] < 0.5 * identity[name], (name, identity[name], ridge[name])


def test_stage_one_lowers_the_reconstruction_loss():
    torch.manual_seed(0)
    ds = make_toy_dataset(n_stimuli=120, n_units=12, size=8, smooth=True)
    dm = NeuralDataModule(dataset=ds, batch_size=32)
    model = FLIG(dm.n_inputs, dm.image_shape, cae_init="random", cae_epochs=4, lr=3e-3, **SMALL)
    images = torch.as_tensor(ds.stimuli)
    start = float(torch.nn.functional.mse_loss(model.eval().cae(images), images))
    _trainer(max_epochs=4).fit(model, dm)
    end = float(torch.nn.functional.mse_loss(model.eval().cae(images), images))
    assert end < 0.5 * start


def test_state_dict_round_trip_keeps_both_directions(tmp_path):
    ds = make_toy_dataset(n_stimuli=60, n_units=12, size=8, smooth=True)
    dm = NeuralDataModule(dataset=ds, batch_size=16)
    model = FLIG(dm.n_inputs, dm.image_shape, cae_epochs=1, **SMALL)
    _trainer(max_epochs=2).fit(model, dm)
    torch.save(model.state_dict(), tmp_path / "flig.pt")
    clone = FLIG(dm.n_inputs, dm.image_shape, cae_epochs=1, **SMALL)
    clone.load_state_dict(torch.load(tmp_path / "flig.pt"))
    assert bool(clone.flow_ready) and bool(clone.cae_ready)
    np.testing.assert_allclose(clone.reconstruct(ds), model.reconstruct(ds), atol=1e-5)
    np.testing.assert_allclose(clone.predict_responses(ds), model.predict_responses(ds), atol=1e-4)


def test_the_whole_pipeline_runs_on_the_69_digits_layout(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    weights = rng.normal(size=(28 * 28, 200)) / 28
    bold = images.reshape(30, -1) / 255.0 @ weights + 0.1 * rng.normal(size=(30, 200))
    flat = np.stack([image.T.ravel() for image in images])
    path = tmp_path / "digit69_28x28.mat"
    scipy.io.savemat(
        path,
        {"fmriTrn": bold[:24], "fmriTest": bold[24:], "stimTrn": flat[:24], "stimTest": flat[24:]},
    )
    ds = read([path])
    dm = NeuralDataModule(dataset=ds, batch_size=8, val_fraction=0.2)
    model = FLIG(dm.n_inputs, dm.image_shape, cae_epochs=1, **(SMALL | {"n_features": 16}))
    _trainer(max_epochs=2).fit(model, dm)
    recon = model.reconstruct(ds, split="test")
    assert recon.shape == (6, 1, 28, 28) and np.isfinite(recon).all()
    predicted = model.predict_responses(ds, split="test")
    assert predicted.shape == (6, 200, 1) and np.isfinite(predicted).all()


@pytest.mark.parametrize("config", ["configs/flig_retina.yaml", "configs/flig_fmri69.yaml"])
def test_flig_configs_instantiate_through_the_cli(config, tmp_path):
    path = make_toy_dataset(n_stimuli=20, n_units=10, n_bins=1, size=28).save(tmp_path / "t.h5")
    cli: LightningCLI = NeuralSightCLI(
        model_class=FLIG,
        datamodule_class=NeuralDataModule,
        subclass_mode_model=True,
        args=["--config", config, "--data.path", str(path)],
        run=False,
    )
    assert isinstance(cli.model, FLIG)
    assert cli.model.n_inputs == 10 and cli.model.image_shape == (1, 28, 28)


def test_data_driven_starts_agree_across_ddp_processes(tmp_path):
    ds = make_toy_dataset(n_stimuli=96, n_units=10, size=8, smooth=True)
    dm = NeuralDataModule(dataset=ds, batch_size=8)
    model = FLIG(dm.n_inputs, dm.image_shape, cae_epochs=1, **SMALL)
    trainer = make_trainer(
        max_epochs=2,
        progress=False,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn_find_unused_parameters_true",
        callbacks=[RecordWeights(str(tmp_path))],
        limit_val_batches=0,
    )
    trainer.fit(model, dm)
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert records[0]["hash"] == records[1]["hash"]


@pytest.mark.parametrize("exact_max", [2048, 4])
def test_the_pca_start_is_exact_and_ignores_the_global_random_state(monkeypatch, exact_max):
    monkeypatch.setattr("neuralsight.models.decoders.flig.EXACT_PCA_MAX", exact_max)
    images = torch.rand(40, 1, 6, 6)
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        cae = FeatureAutoencoder((1, 6, 6), n_features=5, channels=(4,))
        cae.init_pca(images)
        weights.append(cae.linear_out.weight.abs())
    torch.testing.assert_close(weights[0], weights[1])
    flat = images.flatten(1).double()
    variances = torch.linalg.svdvals(flat - flat.mean(0))[:5].square() / 39
    torch.testing.assert_close(weights[0].double().square().sum(0), variances, rtol=1e-3, atol=0)
