"""The MEI-guided decoder: MonkeySee's generator read in through an encoder's MEIs."""

import numpy as np
import pytest
import torch

from conftest import make_toy_dataset
from neuralsight.data import NeuralDataModule
from neuralsight.models.blocks.inverse_rf import MEIReadIn
from neuralsight.models.decoders import MonkeySee
from neuralsight.models.encoders import LNEncoder
from neuralsight.models.losses import discriminator_loss, generator_adversarial_loss, ssim_loss
from neuralsight.train import fit

SIZE = 32
TINY = {"base_channels": 4, "discriminator_channels": 4, "feature_weight": 0.0, "mei_steps": 10}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def recording():
    return make_toy_dataset(n_stimuli=120, n_units=10, n_bins=1, size=SIZE, smooth=True)


@pytest.fixture(scope="module")
def encoder_path(recording, tmp_path_factory):
    """An LN encoder trained on the toy recording's training pairs, saved as a checkpoint."""
    folder = tmp_path_factory.mktemp("encoder")
    dm = NeuralDataModule(dataset=recording, batch_size=32, seed=0)
    encoder = LNEncoder(dm.n_inputs, dm.image_shape, loss="mse", lr=1e-2)
    fit(encoder, dm, max_epochs=3, out_dir=folder, name="ln", progress=False, accelerator="cpu")
    return folder / "checkpoints" / "ln.ckpt"


def mei_decoder(dm, encoder_path, **options) -> MonkeySee:
    settings = TINY | {"adversarial_weight": 0.0, "pixel_weight": 1.0}
    settings |= {"mei_encoder": str(encoder_path), "mei_encoder_kind": "ln"} | options
    return MonkeySee(dm.n_inputs, dm.image_shape, mapping="mei", **settings)


def test_the_mei_decoder_beats_its_shuffle_control(recording, encoder_path):
    errors = {}
    for control in ("none", "shuffle"):
        dm = NeuralDataModule(dataset=recording, batch_size=16, control=control, seed=0)
        model = mei_decoder(dm, encoder_path, lr=5e-3)
        fit(model, dm, max_epochs=15, progress=False, accelerator="cpu")
        test = recording.trials("test")
        errors[control] = float(
            ((model.reconstruct(recording) - recording.stimuli[test]) ** 2).mean()
        )
    assert errors["none"] < 0.8 * errors["shuffle"]


def test_the_meis_are_the_encoders_and_travel_in_the_checkpoint(recording, encoder_path, tmp_path):
    dm = NeuralDataModule(dataset=recording, batch_size=32, seed=0)
    model = mei_decoder(
        dm, encoder_path, ssim_weight=1.0, adversarial_weight=0.01, adversarial_loss="least_squares"
    )
    fit(model, dm, max_epochs=1, out_dir=tmp_path, name="mei", progress=False, accelerator="cpu")
    readin = model.input_map
    assert isinstance(readin, MEIReadIn) and bool(readin.ready)
    patterns, energy = readin.maps[:, :1].flatten(1), readin.maps[:, 1].flatten(1)
    torch.testing.assert_close(patterns.pow(2).mean(1).sqrt(), torch.ones(10))
    torch.testing.assert_close(energy.amax(1), torch.ones(10))
    encoder = LNEncoder.load_from_checkpoint(encoder_path, weights_only=True)
    filters = encoder.filters.detach().flatten(1)
    correlation = torch.corrcoef(torch.cat([patterns, filters]))[:10, 10:]
    assert bool((correlation.diagonal() > 0.5).all())
    moved = tmp_path / "elsewhere.ckpt"
    (tmp_path / "checkpoints" / "mei.ckpt").rename(moved)
    encoder_path.rename(encoder_path.with_suffix(".away"))
    try:
        loaded = MonkeySee.load_from_checkpoint(moved, weights_only=True, vgg_weights="random")
    finally:
        encoder_path.with_suffix(".away").rename(encoder_path)
    np.testing.assert_allclose(
        loaded.reconstruct(recording), model.reconstruct(recording), atol=1e-5
    )


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"mei_encoder": None}, ValueError, "mapping 'mei' needs mei_encoder"),
        ({"mei_encoder": "missing.ckpt"}, FileNotFoundError, "missing.ckpt: expected a LNEncoder"),
        ({"electrode_codes": 2}, ValueError, "'mei' does not"),
        ({"adversarial_loss": "hinge"}, ValueError, "adversarial_loss must be one of"),
    ],
)
def test_bad_mei_settings_are_refused(recording, encoder_path, options, error, message):
    dm = NeuralDataModule(dataset=recording, batch_size=32, seed=0)
    with pytest.raises(error, match=message):
        model = mei_decoder(dm, encoder_path, **options)
        fit(model, dm, max_epochs=1, progress=False, accelerator="cpu")


def test_an_encoder_of_other_units_is_refused(recording, encoder_path):
    fewer = make_toy_dataset(n_stimuli=60, n_units=7, n_bins=1, size=SIZE, smooth=True)
    dm = NeuralDataModule(dataset=fewer, batch_size=32, seed=0)
    with pytest.raises(ValueError, match=r"predicts 10 units .* reads 7 units"):
        fit(mei_decoder(dm, encoder_path), dm, max_epochs=1, progress=False, accelerator="cpu")


def test_a_read_in_without_meis_refuses_to_paint():
    readin = MEIReadIn(n_units=2, image_shape=(1, 4, 4))
    with pytest.raises(RuntimeError, match="no MEIs yet"):
        readin(torch.ones(1, 2, 1))
    with pytest.raises(ValueError, match=r"shape \(2, 1, 4, 4\)"):
        readin.set_meis(torch.ones(3, 1, 4, 4))


@pytest.mark.parametrize(
    ("kind", "perfect", "fooled"),
    [("bce", (20.0, -20.0), 20.0), ("least_squares", (1.0, 0.0), 1.0)],
)
def test_adversarial_losses_reach_their_known_values(kind, perfect, fooled):
    real, fake = (torch.full((1, 1, 2, 2), v) for v in perfect)
    assert float(discriminator_loss(real, fake, kind)) < 1e-6
    assert float(generator_adversarial_loss(torch.full((1, 1, 2, 2), fooled), kind)) < 1e-6
    assert float(generator_adversarial_loss(fake, kind)) > 0.4


def test_ssim_loss_is_zero_for_equal_images_and_gives_gradients():
    target = torch.rand(2, 3, SIZE, SIZE)
    pred = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    loss = ssim_loss(pred, target)
    loss.backward()
    assert float(loss.detach()) > 0.1 and pred.grad is not None and bool(pred.grad.abs().sum() > 0)
    assert float(ssim_loss(target, target)) < 1e-6
