"""Encoders: shapes, the Gaussian readout, training, LN vs CNN, RF centres, predictions files."""

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.lightning_cli import NeuralSightCLI
from neuralsight.metrics import (
    PredictionsError,
    ResponsePredictionWriter,
    load_response_predictions,
    save_response_predictions,
    score_encoder,
)
from neuralsight.metrics.encoding import per_unit_correlation
from neuralsight.models.encoders import CNNEncoder, GaussianReadout, LNEncoder

SIZE = 16


def _trainer(max_epochs: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def _cells(n_units: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``[n, 2]`` and unit-norm centre-surround filters ``[n, SIZE * SIZE]``."""
    centres = rng.uniform(-0.6, 0.6, size=(n_units, 2))
    grid = -1 + (2 * np.arange(SIZE) + 1) / SIZE
    gx, gy = np.meshgrid(grid, grid)
    d2 = (gx[None] - centres[:, :1, None]) ** 2 + (gy[None] - centres[:, 1:, None]) ** 2
    filters = np.exp(-d2 / (2 * 0.12**2)) - 0.5 * np.exp(-d2 / (2 * 0.25**2))
    filters = filters.reshape(n_units, -1)
    return centres, filters / np.linalg.norm(filters, axis=1, keepdims=True)


def toy_cells(
    n: int = 900, n_units: int = 16, quadratic: float = 20.0, seed: int = 0
) -> tuple[NeuralDataset, np.ndarray]:
    """Poisson cells with rate ``1 + 3 g + quadratic g^2``, ``g`` a centre-surround drive."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, SIZE, SIZE), dtype=np.float32)
    centres, filters = _cells(n_units, rng)
    drive = (images[:, 0] - 0.5).reshape(n, -1) @ filters.T
    rate = 1.0 + 3.0 * drive + quadratic * drive**2
    units = pd.DataFrame(
        {"unit_id": range(n_units), "area": "toy", "rf_x": centres[:, 0], "rf_y": centres[:, 1]}
    )
    split = np.where(np.arange(n) < n - 150, "train", "test")
    counts = rng.poisson(np.clip(rate, 0, None)).astype(np.float32)
    return NeuralDataset.from_arrays(counts, images, units=units, split=split), rate


@pytest.mark.parametrize("cls", [CNNEncoder, LNEncoder])
def test_output_shapes_and_input_checks(cls):
    model = cls(n_inputs=12, image_shape=(3, SIZE, SIZE), n_bins=3).eval()
    assert model(torch.rand(5, 3, SIZE, SIZE)).shape == (5, 4, 3)
    assert model.predict_responses(np.random.default_rng(0).random((7, 3, SIZE, SIZE))).shape == (
        7,
        4,
        3,
    )
    assert model.rf_positions().shape == (4, 2)
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, 16, 16\]"):
        model(torch.rand(5, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="multiple of n_bins, found n_inputs=10, n_bins=3"):
        cls(n_inputs=10, image_shape=(1, SIZE, SIZE), n_bins=3)


def test_poisson_output_is_a_positive_rate_and_mse_output_is_unscaled():
    poisson = LNEncoder(n_inputs=4, image_shape=(1, 8, 8))
    assert (poisson(torch.rand(3, 1, 8, 8)) > 0).all()
    mse = LNEncoder(n_inputs=4, image_shape=(1, 8, 8), loss="mse")
    mse.fit_response_stats({"mean": np.full(4, 7.0), "std": np.full(4, 2.0)})
    assert torch.allclose(mse(torch.rand(3, 1, 8, 8)), torch.full((3, 4, 1), 7.0))


def test_gaussian_readout_reads_at_its_position_in_simulator_coordinates():
    features = torch.zeros(1, 1, 8, 8)
    features[0, 0, 2, 6] = 1.0
    readout = GaussianReadout(n_units=1, n_channels=1).eval()
    with torch.no_grad():
        readout.mu.copy_(torch.tensor([[-1 + 13 / 8, -1 + 5 / 8]]))
        readout.weights.fill_(1.0)
    assert float(readout(features)) == pytest.approx(1.0)


def test_gradients_reach_the_readout_positions_and_spreads():
    torch.manual_seed(0)
    model = CNNEncoder(n_inputs=5, image_shape=(1, SIZE, SIZE), channels=4, kernels=(3,))
    loss = model(torch.rand(8, 1, SIZE, SIZE)).sum()
    loss.backward()
    assert model.readout.mu.grad.abs().sum(1).min() > 0
    assert model.readout.sigma.grad.abs().min() > 0
    model.eval()
    images = torch.rand(2, 1, SIZE, SIZE)
    assert torch.equal(model(images), model(images))


def test_a_short_fit_lowers_the_loss_and_the_linear_start_finds_the_centres():
    ds, _ = toy_cells(n=400, quadratic=0.0)
    dm = NeuralDataModule(dataset=ds, batch_size=32)
    torch.manual_seed(0)
    model = CNNEncoder(dm.n_inputs, dm.image_shape, channels=8, kernels=(5, 3))
    model.fit_response_stats(dm.response_stats())
    model.init_positions_from(dm.train_dataloader())
    truth = ds.units[["rf_x", "rf_y"]].to_numpy()
    error_px = np.hypot(*((model.rf_positions() - truth) * SIZE / 2).T)
    assert np.median(error_px) < 1.0
    responses, images = next(iter(dm.val_dataloader()))
    before = float(model.eval().response_loss(model(images), responses))
    _trainer(max_epochs=5).fit(model.train(), dm)
    after = float(model.eval().response_loss(model(images), responses))
    assert after < before


def test_the_cnn_beats_the_ln_model_on_nonlinear_cells():
    ds, rate = toy_cells()
    dm = NeuralDataModule(dataset=ds, batch_size=32)
    scores = {}
    for cls, kwargs in ((LNEncoder, {}), (CNNEncoder, {"channels": 8, "kernels": (5, 3)})):
        torch.manual_seed(0)
        model = cls(dm.n_inputs, dm.image_shape, **kwargs)
        _trainer(max_epochs=15).fit(model, dm)
        predicted = model.predict_responses(ds)[:, :, 0]
        scores[cls.__name__] = per_unit_correlation(predicted, rate[ds.trials("test")]).mean()
    assert scores["CNNEncoder"] > scores["LNEncoder"] + 0.15, scores


def _repeated(n_stimuli: int = 30, repeats: int = 4, n_units: int = 5, noise: float = 0.1):
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(n_stimuli, n_units)).astype(np.float32)
    stimulus_id = np.repeat(np.arange(n_stimuli), repeats)
    trials = signal[stimulus_id] + noise * rng.normal(size=(len(stimulus_id), n_units))
    ds = NeuralDataset.from_arrays(
        trials.astype(np.float32),
        np.zeros((n_stimuli, 1, 4, 4), np.float32),
        stimulus_id=stimulus_id,
        split=np.full(len(stimulus_id), "test"),
    )
    return ds, signal


def test_score_encoder_known_cases(tmp_path):
    ds, signal = _repeated()
    ids = np.arange(30)
    perfect = score_encoder(
        save_response_predictions(tmp_path / "p.npz", signal, ids), ds
    ).as_dict()
    assert perfect["mean_r"] > 0.99 and perfect["repeats"] == 4
    assert 0.9 < perfect["mean_feve"] < 1.1 and perfect["mean_ceiling"] > 0.99
    shuffled = signal[np.random.default_rng(1).permutation(30)]
    chance = score_encoder(
        save_response_predictions(tmp_path / "s.npz", shuffled, ids), ds
    ).as_dict()
    assert abs(chance["mean_r"]) < 0.3
    noise_ds, _ = _repeated(noise=1e3)
    pure_noise = score_encoder(tmp_path / "p.npz", noise_ds).as_dict()
    assert abs(pure_noise["mean_reliability"]) < 0.3


def test_single_presentations_are_compared_with_trial_values(tmp_path):
    ds, signal = _repeated(repeats=1)
    path = save_response_predictions(tmp_path / "p.npz", 2 * signal + 1, np.arange(30))
    result = score_encoder(path, ds).as_dict()
    assert result["repeats"] == 1 and "mean_feve" not in result
    assert result["mean_r"] > 0.99


def test_predictions_files_are_checked(tmp_path):
    ds, signal = _repeated()
    with pytest.raises(PredictionsError, match=r"field 'stimulus_id' must be \[N\] = \(30,\)"):
        save_response_predictions(tmp_path / "p.npz", signal, np.arange(29))
    path = save_response_predictions(tmp_path / "p.npz", signal[:, :3], np.arange(30))
    with pytest.raises(PredictionsError, match="do not fit the dataset"):
        score_encoder(path, ds)
    np.savez(tmp_path / "foreign.npz", responses=signal)
    with pytest.raises(PredictionsError, match=r"foreign\.npz: not a neuralsight predictions"):
        load_response_predictions(tmp_path / "foreign.npz")


def test_trainer_predict_writes_a_file_that_evaluates(tmp_path):
    ds, _ = toy_cells(n=200, quadratic=0.0)
    dm = NeuralDataModule(dataset=ds, batch_size=32)
    model = LNEncoder(dm.n_inputs, dm.image_shape)
    trainer = _trainer(max_epochs=2, callbacks=[ResponsePredictionWriter(tmp_path / "p.npz")])
    trainer.fit(model, dm)
    trainer.predict(model, dm, return_predictions=False)
    responses, ids, meta = load_response_predictions(tmp_path / "p.npz")
    assert responses.shape == (150, 16, 1) and meta["model"] == "LNEncoder"
    assert np.array_equal(ids, ds.stimulus_id[ds.trials("test")])
    assert score_encoder(tmp_path / "p.npz", ds).as_dict()["n_stimuli"] == 150


def test_the_encoder_config_instantiates(tmp_path):
    ds, _ = toy_cells(n=40, quadratic=0.0)
    path = ds.save(tmp_path / "toy.h5")
    cli = NeuralSightCLI(
        model_class=L.LightningModule,
        datamodule_class=NeuralDataModule,
        subclass_mode_model=True,
        args=["--config", "configs/encoder_cnn_retina.yaml", "--data.path", str(path)],
        run=False,
    )
    assert isinstance(cli.model, CNNEncoder)
    assert (cli.model.n_units, cli.model.n_bins, cli.model.image_shape) == (16, 1, (1, 16, 16))
