"""Decoding by inverting an encoder through the feature decoder's generator (InvEnc)."""

import functools

import numpy as np
import pytest
import torch

from conftest import linear_deadleaves_recording
from neuralsight.data import NeuralDataModule
from neuralsight.data.sources import make_stimuli
from neuralsight.metrics import score_decoder
from neuralsight.models import DECODERS
from neuralsight.models.decoders import EncoderInversionDecoder, FeatureDecoder
from neuralsight.models.encoders import PretrainedCoreEncoder
from neuralsight.train import feature_prior_checkpoint, fit, train_feature_prior

SIZE, N_UNITS = 16, 40
PRIOR = {"weights": "random", "feature_size": 64, "width": 16, "progress": False}
ENCODER = {"weights": "random", "feature_size": 64, "layer": "conv2", "readout": "factorised"}
train = functools.partial(fit, progress=False, accelerator="cpu", logger=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scenes(n: int, seed: int) -> np.ndarray:
    return make_stimuli("deadleaves", n, size=SIZE, channels=1, seed=seed)


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prior")
    train_feature_prior(scenes(400, seed=1), epochs=8, low_res=4, out_dir=folder, **PRIOR)
    return str(feature_prior_checkpoint(folder))


def encoder_checkpoint(dm: NeuralDataModule, folder) -> str:
    """A tiny pretrained-core encoder trained on ``dm``'s training pairs; its checkpoint."""
    torch.manual_seed(0)
    encoder = PretrainedCoreEncoder(dm.n_inputs, dm.image_shape, loss="mse", **ENCODER)
    train(encoder, dm, max_epochs=8, out_dir=folder, name="encoder")
    return str(folder / "checkpoints" / "encoder.ckpt")


@pytest.fixture(scope="module")
def fitted(prior_path, tmp_path_factory):
    """``{control: (decoder, its checkpoint)}`` on the linear recording."""
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    models = {}
    for control in ("none", "shuffle"):
        dm = NeuralDataModule(dataset=ds, batch_size=50, control=control, seed=0)
        folder = tmp_path_factory.mktemp(f"inversion_{control}")
        encoder = encoder_checkpoint(dm, folder)
        model = EncoderInversionDecoder(
            dm.n_inputs,
            dm.image_shape,
            prior=prior_path,
            encoder=encoder,
            steps=30,
            lr=0.1,
            anchor_weight=1.0,
        )
        train(model, dm, max_epochs=1, out_dir=folder, name="inversion")
        models[control] = model, folder / "checkpoints" / "inversion.ckpt"
    return models


def test_the_search_lowers_its_objective(fitted):
    model, _ = fitted["none"]
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    responses = torch.as_tensor(ds.responses[ds.trials("test")])
    with torch.inference_mode():
        z, trace = model.invert(model.scaler(responses), return_trace=True)
    assert trace.shape == (model.steps + 1,) and z.shape == (50, model.linear.out_features)
    assert float(trace[-1]) < 0.8 * float(trace[0])


def test_inversion_beats_its_shuffle_control(fitted):
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    truth = ds.stimuli[ds.trials("test")]
    errors = {c: float(((m.reconstruct(ds) - truth) ** 2).mean()) for c, (m, _) in fitted.items()}
    assert errors["none"] < 0.9 * errors["shuffle"]


def test_it_is_the_feature_decoder_without_steps_and_scores_through_score_decoder(
    fitted, prior_path
):
    model, _ = fitted["none"]
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    plain = FeatureDecoder(model.n_inputs, model.image_shape, prior=prior_path)
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith(("encoder.", "z_"))}
    )
    model.steps, steps = 0, model.steps
    try:
        same = np.allclose(model.reconstruct(ds), plain.reconstruct(ds), atol=1e-6)
    finally:
        model.steps = steps
    assert same
    assert DECODERS.get("encoder_inversion") is EncoderInversionDecoder
    assert np.isfinite(score_decoder(model, ds, features="pixels").image["mse"])


def test_a_checkpoint_gives_back_the_same_reconstructions(fitted):
    model, path = fitted["none"]
    ds = linear_deadleaves_recording(size=SIZE, n_units=N_UNITS)
    restored = EncoderInversionDecoder.load_from_checkpoint(path, weights_only=True)
    assert np.allclose(restored.reconstruct(ds), model.reconstruct(ds), atol=1e-5)


def test_bad_encoders_are_refused_with_their_file(fitted, prior_path, tmp_path):
    encoder = fitted["none"][0].hparams["encoder"]
    missing = tmp_path / "no_encoder.ckpt"
    with pytest.raises(FileNotFoundError, match=r"no_encoder\.ckpt"):
        EncoderInversionDecoder(N_UNITS, (1, SIZE, SIZE), prior=prior_path, encoder=str(missing))
    with pytest.raises(ValueError, match=r"encoder.ckpt: the encoder predicts 40 .* reads 39"):
        EncoderInversionDecoder(N_UNITS - 1, (1, SIZE, SIZE), prior=prior_path, encoder=encoder)
    with pytest.raises(ValueError, match="anchor_weight must be"):
        EncoderInversionDecoder(
            N_UNITS, (1, SIZE, SIZE), prior=prior_path, encoder=encoder, anchor_weight=-1
        )
