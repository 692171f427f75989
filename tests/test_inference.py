"""The fast inference path: BatchNorm folded exactly, channels-last, the model left alone."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from neuralsight.models.decoders import SID, ImprovedSID, RidgeDecoder
from neuralsight.models.inference import fold_batchnorm, optimize_for_inference


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so folding really changes weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
            elif isinstance(module, nn.Conv2d) and not module.weight.abs().sum():
                module.weight.normal_(0.0, 0.1, generator=generator)  # ImprovedSID's zero output
    return model


def _models() -> dict[str, nn.Module]:
    return {
        "sid_sigmoid": SID(n_inputs=30, image_shape=(1, 32, 32)),
        "sid_batchnorm": SID(n_inputs=30, image_shape=(1, 32, 32), output="batchnorm"),
        "improved_sid": ImprovedSID(n_inputs=30, image_shape=(1, 32, 32), base_channels=8),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_folded_model_equals_the_unfolded_one(name):
    model = _randomise(_models()[name])
    fast = model.optimize_for_inference()
    responses = torch.randn(5, 30, 1)
    with torch.inference_mode():
        expected = model.eval()(responses)
        found = fast(responses)
    assert float((found - expected).abs().max()) < 1e-4
    assert float(expected.std()) > 1e-3  # the comparison is not between constants


@pytest.mark.parametrize("name", list(_models()))
def test_no_batchnorm_left_and_convs_are_channels_last(name):
    fast = _models()[name].optimize_for_inference()
    assert not fast.training
    assert not any(isinstance(m, _BatchNorm) for m in fast.modules())
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_folding_keeps_module_structure():
    fast = SID(n_inputs=30, image_shape=(1, 32, 32)).optimize_for_inference()
    block = fast.autoencoder.encoder[1]
    assert [type(m).__name__ for m in block] == ["Conv2d", "Identity", "ReLU", "Dropout"]
    assert block[0].bias is not None
    assert [type(m).__name__ for m in fast.converter.net][:3] == ["Linear", "Identity", "ReLU"]


def test_a_training_model_is_left_untouched():
    model = _randomise(SID(n_inputs=30, image_shape=(1, 32, 32))).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = list(model.modules())
    fast = model.optimize_for_inference()
    assert model.training and all(m.training for m in model.modules())
    assert list(model.modules()) == modules
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert all(p.is_contiguous() for p in model.parameters())
    assert not set(map(id, fast.parameters())) & set(map(id, model.parameters()))


def test_reconstruct_uses_the_fast_path_and_keeps_the_mode():
    model = _randomise(SID(n_inputs=30, image_shape=(1, 32, 32))).train()
    responses = np.random.default_rng(0).normal(size=(6, 30, 1)).astype(np.float32)
    recon = model.reconstruct(responses, batch_size=4)
    assert model.training
    assert recon.flags["C_CONTIGUOUS"] and recon.shape == (6, 1, 32, 32)
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(responses)).clamp(0, 1).numpy()
    np.testing.assert_allclose(recon, expected, atol=1e-4)


def test_ridge_has_nothing_to_fold_and_stays_exact():
    model = RidgeDecoder(n_inputs=30, image_shape=(1, 8, 8))
    nn.init.normal_(model.linear.weight)
    responses = torch.randn(4, 30, 1)
    with torch.inference_mode():
        assert torch.equal(model.optimize_for_inference()(responses), model.eval()(responses))


def test_fold_batchnorm_skips_inexact_pairs_and_needs_eval_mode():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4, track_running_stats=False),  # batch statistics: not foldable
        nn.Linear(4, 6),
        nn.ReLU(),
        nn.BatchNorm1d(6),  # after a ReLU: not foldable
    )
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net)
    assert fold_batchnorm(net.eval()) == 0
    assert (
        optimize_for_inference(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))[1].__class__
        is nn.Identity
    )
