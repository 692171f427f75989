"""Pretrained networks: weights folders and .npz files, partial networks, provenance, cache,
random fallback, no downloads."""

import logging
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models import WeightsEnum

from neuralsight import pretrained
from neuralsight.pretrained import (
    PretrainedWeightsWarning,
    cache_path,
    file_sha256,
    first_available,
    load_pretrained,
    weights_file_name,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """An empty torch hub, downloads off, and any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("NEURALSIGHT_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.delenv("NEURALSIGHT_WEIGHTS", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)


@pytest.fixture(scope="module")
def marked_state_dict(tmp_path_factory):
    """A random AlexNet state dict with a recognisable first bias, saved once per module."""
    state = load_pretrained("alexnet", weights="random").network.state_dict()
    state["features.0.bias"] = torch.arange(64, dtype=torch.float32)
    path = tmp_path_factory.mktemp("weights") / "alexnet_marked.pth"
    torch.save(state, path)
    return path


def test_nothing_cached_gives_random_weights_and_a_loud_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=pretrained.__name__):
        with pytest.warns(PretrainedWeightsWarning, match="alexnet-owt-7be5be79.pth") as record:
            loaded = load_pretrained("alexnet")
    network, provenance = loaded.network, loaded.weights
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
        first = load_pretrained("alexnet", weights="random")
        second = load_pretrained("alexnet", weights=None)
    assert first.weights == "random" and first.covers("classifier.6")
    assert torch.equal(first.network.features[0].weight, second.network.features[0].weight)


def test_loads_a_state_dict_from_a_path(marked_state_dict):
    loaded = load_pretrained("alexnet", weights=str(marked_state_dict))
    digest = file_sha256(marked_state_dict)[:12]
    assert loaded.weights == f"file:{marked_state_dict.resolve()}#{digest}"
    assert torch.equal(loaded.network.features[0].bias, torch.arange(64, dtype=torch.float32))
    assert not loaded.network.training


def test_cached_torchvision_file_counts_as_imagenet(marked_state_dict):
    target = cache_path("alexnet")
    target.parent.mkdir(parents=True)
    target.symlink_to(marked_state_dict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_pretrained("alexnet")
    digest = file_sha256(marked_state_dict)[:12]
    assert loaded.weights == f"imagenet:alexnet-owt-7be5be79.pth#{digest}"
    assert torch.equal(loaded.network.features[0].bias, torch.arange(64, dtype=torch.float32))


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
    assert load_pretrained("alexnet").weights == "imagenet:alexnet-owt-7be5be79.pth"
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


def _features_npz(folder, name="alexnet", prefix="features."):
    """A random network's convolutions saved as ``<name>_features.npz``, and the network."""
    network = torchvision.models.get_model(name, weights=None)
    state = {k: v.numpy() for k, v in network.state_dict().items() if k.startswith(prefix)}
    path = folder / f"{name}_features.npz"
    np.savez(path, **state)
    return path, network


def test_npz_of_convolutions_loads_them_and_reports_the_rest_uncovered(tmp_path):
    path, reference = _features_npz(tmp_path)
    loaded = load_pretrained("alexnet", weights=path)
    assert loaded.weights == f"imagenet:alexnet_features.npz#{file_sha256(path)[:12]}"
    assert [loaded.covers(f"features.{i}") for i in (0, 3, 6, 8, 10)] == [True] * 5
    assert [loaded.covers(f"classifier.{i}") for i in (1, 4, 6)] == [False] * 3
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.network.features(images), reference.features(images))


def test_a_folder_is_searched_for_the_network_and_the_environment_names_one(tmp_path, monkeypatch):
    path, _ = _features_npz(tmp_path)
    assert load_pretrained("alexnet", weights=tmp_path).weights.startswith("imagenet:alexnet_")
    with pytest.raises(FileNotFoundError, match=r"no vgg16 weights.*vgg16_features\.npz"):
        load_pretrained("vgg16", weights=tmp_path)
    monkeypatch.setenv("NEURALSIGHT_WEIGHTS", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_pretrained("alexnet").weights.endswith(file_sha256(path)[:12])
    monkeypatch.setenv("NEURALSIGHT_WEIGHTS", str(path))
    with pytest.raises(NotADirectoryError, match=r"NEURALSIGHT_WEIGHTS=.*expected a folder"):
        load_pretrained("alexnet")


def test_a_digest_that_differs_from_sha256sums_is_refused(tmp_path):
    path, _ = _features_npz(tmp_path)
    (tmp_path / "SHA256SUMS").write_text(f"{file_sha256(path)}  {path.name}\n")
    load_pretrained("alexnet", weights=path)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {path.name}\n")
    with pytest.raises(RuntimeError, match=r"alexnet_features\.npz: sha256 .* does not match"):
        load_pretrained("alexnet", weights=path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("features.3.bias"), r"layers \['features\.3'\] .* only partly"),
        (lambda s: s.update({"features.0.weight": np.zeros((2, 3), np.float32)}), r"shape"),
        (lambda s: s.update({"head.weight": np.zeros(2, np.float32)}), r"head\.weight"),
        (lambda s: s.update({"features.0.bias": np.zeros(64, np.int64)}), r"floating point"),
    ],
)
def test_bad_npz_files_are_refused_naming_the_file(tmp_path, change, message):
    path, _ = _features_npz(tmp_path)
    state = dict(np.load(path))
    change(state)
    np.savez(path, **state)
    with pytest.raises(RuntimeError, match=r"alexnet_features\.npz") as error:
        load_pretrained("alexnet", weights=path)
    assert error.match(message)


def test_vgg16_stands_in_for_vgg19_only_where_its_weights_exist(tmp_path):
    assert first_available(("vgg19", "vgg16"), weights="random").name == "vgg19"
    _features_npz(tmp_path, "vgg16")
    loaded = first_available(("vgg19", "vgg16"), weights=tmp_path)
    assert loaded.name == "vgg16" and loaded.weights.startswith("imagenet:vgg16_features.npz#")
    with pytest.raises(RuntimeError, match=r"none of \['vgg19'\]"):
        first_available(("vgg19",), weights=tmp_path)
