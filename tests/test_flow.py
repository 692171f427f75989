"""The FrEIA flow: exact invertibility, dimension matching, the linear start, and MMD."""

import numpy as np
import pytest
import torch

from neuralsight.models.blocks.flow import MatchedFlow, build_flow, mmd


def _randomise_couplings(flow: torch.nn.Module, std: float = 0.02, seed: int = 0) -> None:
    """Give the zero-initialised coupling outputs random weights: a non-trivial bijection."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in flow.modules():
            if isinstance(module, torch.nn.Sequential):
                for parameter in module[2].parameters():
                    parameter.copy_(std * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize(("x_dims", "y_dims", "extra"), [(40, 25, 0), (25, 300, 0), (40, 25, 25)])
def test_flow_is_invertible_to_1e4_both_ways_in_float32(x_dims, y_dims, extra):
    flow = MatchedFlow(x_dims, y_dims, extra_dims=extra, n_blocks=6, hidden=64)
    _randomise_couplings(flow)
    torch.manual_seed(1)
    x, y = torch.randn(64, flow.n_dims), torch.randn(64, flow.n_dims)
    forward = flow.forward_full(x)
    assert (forward - x).abs().mean() > 0.1, "the flow should not be a mere permutation"
    assert (flow.inverse_full(forward) - x).abs().max() < 1e-4
    assert (flow.forward_full(flow.inverse_full(y)) - y).abs().max() < 1e-4


def test_features_larger_than_responses_pad_the_response_side():
    flow = MatchedFlow(x_dims=10, y_dims=4, n_blocks=2, hidden=16)
    _randomise_couplings(flow)
    assert (flow.n_dims, flow.x_latent, flow.y_latent) == (10, 0, 6)
    x = torch.randn(8, 10)
    assert flow(x).shape == (8, 4) and flow.inverse(torch.randn(8, 4)).shape == (8, 10)
    padded_y = flow.forward_full(flow.pad_x(x))
    assert torch.allclose(flow.inverse_full(padded_y)[:, :10], x, atol=1e-5)


def test_responses_larger_than_features_pad_the_feature_side():
    flow = MatchedFlow(x_dims=3, y_dims=9, n_blocks=2, hidden=16)
    _randomise_couplings(flow)
    assert (flow.n_dims, flow.x_latent, flow.y_latent) == (9, 6, 0)
    y = torch.randn(8, 9)
    assert flow.inverse(y).shape == (8, 3) and flow(torch.randn(8, 3)).shape == (8, 9)
    assert torch.allclose(flow.forward_full(flow.inverse_full(y)), y, atol=1e-5)


def test_padding_is_zero_unless_sampling():
    flow = MatchedFlow(x_dims=3, y_dims=9, n_blocks=1, hidden=8)
    x = torch.randn(5, 3)
    assert torch.equal(flow.pad_x(x)[:, 3:], torch.zeros(5, 6))
    assert torch.equal(flow(x), flow(x))
    sampled = flow.pad_x(x, sample=True)
    assert torch.equal(sampled[:, :3], x) and sampled[:, 3:].abs().sum() > 0
    with pytest.raises(ValueError, match=r"'x' must have shape \[batch, 3\], found \(5, 4\)"):
        flow.pad_x(torch.randn(5, 4))


def test_set_linear_makes_both_directions_the_given_maps_exactly():
    torch.manual_seed(0)
    flow = MatchedFlow(4, 6, extra_dims=4, linear=True, n_blocks=3, hidden=8)
    enc_w, enc_b, dec_w, dec_b = (
        torch.randn(4, 6),
        torch.randn(6),
        torch.randn(6, 4),
        torch.randn(4),
    )
    flow.set_linear(enc_w, enc_b, dec_w, dec_b)
    x, y = torch.randn(16, 4), torch.randn(16, 6)
    assert torch.allclose(flow(x), x @ enc_w + enc_b, atol=1e-4)
    assert torch.allclose(flow.inverse(y), y @ dec_w + dec_b, atol=1e-4)
    full = torch.randn(16, 10)
    assert (flow.inverse_full(flow.forward_full(full)) - full).abs().max() < 1e-4


def test_set_linear_refuses_wrong_sizes_and_trained_couplings():
    flow = MatchedFlow(2, 3, linear=True, n_blocks=1, hidden=4)
    with pytest.raises(ValueError, match="n_dims = x_dims \\+ y_dims = 5"):
        flow.set_linear(torch.zeros(2, 3), torch.zeros(3), torch.zeros(3, 2), torch.zeros(2))
    flow = MatchedFlow(2, 3, extra_dims=2, linear=True, n_blocks=1, hidden=4)
    with pytest.raises(ValueError, match=r"'decode_weight' must be \(3, 2\)"):
        flow.set_linear(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 3), torch.zeros(2))
    _randomise_couplings(flow)
    with pytest.raises(ValueError, match="no longer the identity"):
        flow.set_linear(torch.zeros(2, 3), torch.zeros(3), torch.zeros(3, 2), torch.zeros(2))


def test_build_flow_is_seeded_and_leaves_numpy_global_state_alone():
    # FrEIA draws its permutations from NumPy's legacy global generator: check it is untouched.
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    first, second = build_flow(12, n_blocks=3, seed=7), build_flow(12, n_blocks=3, seed=7)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    x = torch.randn(4, 12)
    assert torch.equal(first(x)[0], second(x)[0])
    assert not torch.equal(first(x)[0], build_flow(12, n_blocks=3, seed=8)(x)[0])
    with pytest.raises(ValueError, match="n_dims must be at least 2, found 1"):
        build_flow(1)


def test_mmd_is_zero_for_equal_batches_and_grows_with_a_shift():
    torch.manual_seed(0)
    a, b = torch.randn(128, 5), torch.randn(128, 5)
    assert float(mmd(a, a)) == pytest.approx(0.0, abs=1e-6)
    same, shifted = float(mmd(a, b)), float(mmd(a, b + 1.0))
    assert 0 <= same < shifted
    with pytest.raises(ValueError, match="same d"):
        mmd(a, torch.randn(4, 3))
