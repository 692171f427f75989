"""AlexNet layer correlation and two-way identification, with random (seeded) weights."""

import math

import numpy as np
import pytest
import torch
import torchvision

from neuralsight.metrics.features import (
    ALEXNET_LAYERS,
    AlexNetFeatures,
    feature_metrics,
    imagenet_preprocess,
    twoway_identification,
)


@pytest.fixture(scope="module")
def extractor():
    """Random-weight AlexNet at a reduced input size, to keep the tests fast on a CPU."""
    return AlexNetFeatures.from_pretrained(weights="random", device="cpu", input_size=96)


def images(n, channels=3, size=32, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_identical_images_correlate_perfectly_on_every_layer(extractor):
    x = images(6)
    out = feature_metrics(x, x, extractor=extractor, batch_size=4)
    for layer in ALEXNET_LAYERS:
        assert out[f"corr_{layer}"] == pytest.approx(1.0, abs=1e-9)
    assert out["twoway_pixel"] == 1.0
    assert out["twoway_conv2"] == 1.0
    assert out["twoway_conv5"] == 1.0
    assert out["weights"] == "random"
    assert out["n_images"] == 6


def test_random_reconstructions_identify_at_chance(extractor):
    target = images(20, seed=1)
    pred = images(20, seed=2)
    out = feature_metrics(pred, target, extractor=extractor)
    for key in ("twoway_pixel", "twoway_conv2", "twoway_conv5"):
        assert 0.35 <= out[key] <= 0.65, (key, out[key])


def test_noisier_reconstructions_correlate_less(extractor):
    target = images(4, channels=1, size=28, seed=3)
    noise = torch.rand(target.shape, generator=torch.Generator().manual_seed(4))
    slightly = 0.9 * target + 0.1 * noise
    mostly = 0.2 * target + 0.8 * noise
    good = feature_metrics(slightly, target, extractor=extractor)
    bad = feature_metrics(mostly, target, extractor=extractor)
    assert good["corr_conv1"] > bad["corr_conv1"]
    assert good["corr_fc7"] > bad["corr_fc7"]


def test_twoway_in_pixel_space_is_near_chance_for_many_random_images():
    generator = torch.Generator().manual_seed(5)
    pred, target = (
        torch.rand(200, 64, generator=generator),
        torch.rand(200, 64, generator=generator),
    )
    assert twoway_identification(pred, target) == pytest.approx(0.5, abs=0.03)
    assert twoway_identification(target, target) == 1.0


def test_twoway_counts_ties_as_half_and_needs_two_images():
    constant = torch.ones(5, 10)
    assert twoway_identification(constant, constant) == 0.5
    assert math.isnan(twoway_identification(torch.rand(1, 10), torch.rand(1, 10)))


def test_preprocessing_makes_grey_images_rgb_at_224():
    batch = imagenet_preprocess(torch.full((2, 1, 28, 28), 0.5))
    assert batch.shape == (2, 3, 224, 224)
    assert batch[0, 0, 0, 0] == pytest.approx((0.5 - 0.485) / 0.229, abs=1e-5)


def test_shape_mismatch_and_unknown_layers_are_clear_errors(extractor):
    with pytest.raises(ValueError, match="same shape"):
        feature_metrics(images(2), images(3), extractor=extractor)
    with pytest.raises(ValueError, match=r"unknown AlexNet layer\(s\) \['conv9'\]"):
        AlexNetFeatures.from_pretrained(weights="random", layers=("conv9",), device="cpu")
    with pytest.raises(ValueError, match=r"twoway_layers \['conv5'\]"):
        only_conv2 = AlexNetFeatures.from_pretrained(
            weights="random", layers=("conv2",), device="cpu"
        )
        feature_metrics(images(2), images(2), extractor=only_conv2)


def test_weights_of_the_convolutions_only_leave_fc_layers_unavailable(tmp_path):
    network = torchvision.models.alexnet(weights=None)
    state = {k: v.numpy() for k, v in network.state_dict().items() if k.startswith("features.")}
    np.savez(tmp_path / "alexnet_features.npz", **state)
    partial = AlexNetFeatures.from_pretrained(weights=tmp_path, device="cpu", input_size=96)
    assert partial.layers == ("conv1", "conv2", "conv3", "conv4", "conv5")
    assert partial.unavailable == ("fc6", "fc7", "fc8")
    direct = AlexNetFeatures(network, "direct", layers=partial.layers, device="cpu", input_size=96)
    x = images(3, seed=6)
    for layer, values in partial(x).items():
        assert torch.equal(values, direct(x)[layer]), layer
    target = images(16, seed=7)
    shuffled = target[torch.randperm(16, generator=torch.Generator().manual_seed(8))]
    perfect = feature_metrics(target, target, extractor=partial)
    chance = feature_metrics(shuffled, target, extractor=partial)
    assert perfect["unavailable"] == ["fc6", "fc7", "fc8"] and "corr_fc6" not in perfect
    assert perfect["weights"].startswith("imagenet:alexnet_features.npz#")
    assert perfect["twoway_conv2"] == perfect["twoway_conv5"] == 1.0
    for key in ("twoway_conv2", "twoway_conv5"):
        assert 0.3 <= chance[key] <= 0.7, (key, chance[key])
