"""Offline-aware pretrained networks: cache, state-dict paths, random fallback, no downloads."""

import logging
import warnings

import pytest
import torch
from torchvision.models import WeightsEnum

from neuralsight import pretrained
from neuralsight.pretrained import (
    PretrainedWeightsWarning,
    cache_path,
    load_pretrained,
    weights_file_name,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """An empty torch hub, downloads off, and any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("NEURALSIGHT_ALLOW_DOWNLOAD", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)


@pytest.fixture(scope="module")
def marked_state_dict(tmp_path_factory):
    """A random AlexNet state dict with a recognisable first bias, saved once per module."""
    network, _ = load_pretrained("alexnet", weights="random")
    state = network.state_dict()
    state["features.0.bias"] = torch.arange(64, dtype=torch.float32)
    path = tmp_path_factory.mktemp("weights") / "alexnet_marked.pth"
    torch.save(state, path)
    return path


def test_nothing_cached_gives_random_weights_and_a_loud_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=pretrained.__name__):
        with pytest.warns(PretrainedWeightsWarning, match="alexnet-owt-7be5be79.pth") as record:
            network, provenance = load_pretrained("alexnet")
    assert provenance == "random"
    message = str(record[0].message)
    assert str(cache_path("alexnet")) in message
    assert "NEURALSIGHT_ALLOW_DOWNLOAD=1" in message
    assert "RANDOM weights" in caplog.text
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())


def test_cache_path_follows_torch_home(tmp_path):
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert cache_path("vgg19") == expected
    assert weights_file_name("vgg19") == "vgg19-dcbb9e9d.pth"


def test_random_weights_are_silent_and_repeatable():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first, provenance = load_pretrained("alexnet", weights="random")
        second, _ = load_pretrained("alexnet", weights=None)
    assert provenance == "random"
    assert torch.equal(first.features[0].weight, second.features[0].weight)


def test_loads_a_state_dict_from_a_path(marked_state_dict):
    network, provenance = load_pretrained("alexnet", weights=str(marked_state_dict))
    assert provenance == f"file:{marked_state_dict.resolve()}"
    assert torch.equal(network.features[0].bias, torch.arange(64, dtype=torch.float32))
    assert not network.training


def test_cached_torchvision_file_counts_as_imagenet(marked_state_dict):
    target = cache_path("alexnet")
    target.parent.mkdir(parents=True)
    target.symlink_to(marked_state_dict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        network, provenance = load_pretrained("alexnet")
    assert provenance == "imagenet"
    assert torch.equal(network.features[0].bias, torch.arange(64, dtype=torch.float32))


def test_download_is_tried_only_when_allowed(monkeypatch, marked_state_dict):
    state = torch.load(marked_state_dict, weights_only=True)
    calls = []

    def fake_download(self, progress=True, check_hash=False):
        calls.append(self.url)
        return state

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake_download)
    with pytest.warns(PretrainedWeightsWarning):
        load_pretrained("alexnet")
    assert calls == []
    monkeypatch.setenv("NEURALSIGHT_ALLOW_DOWNLOAD", "1")
    _, provenance = load_pretrained("alexnet")
    assert provenance == "imagenet"
    assert calls == [pretrained.weights_url("alexnet")]


def test_strict_imagenet_raises_when_unavailable(monkeypatch):
    def failing_download(self, progress=True, check_hash=False):
        raise OSError("network unreachable")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", failing_download)
    with pytest.raises(RuntimeError, match=r"vgg19: ImageNet weights unavailable.*unreachable"):
        load_pretrained("vgg19", weights="imagenet")


def test_wrong_state_dict_names_the_file(tmp_path):
    path = tmp_path / "not_alexnet.pth"
    torch.save({"layer.weight": torch.zeros(2)}, path)
    with pytest.raises(RuntimeError, match=r"not_alexnet\.pth: not a torchvision alexnet"):
        load_pretrained("alexnet", weights=path)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        load_pretrained("alexnet", weights=tmp_path / "missing.pth")


def test_unknown_network_name():
    with pytest.raises(ValueError, match=r"unknown network name 'resnet'"):
        load_pretrained("resnet")  # type: ignore[arg-type]
