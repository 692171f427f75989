"""Offline-aware torchvision AlexNet and VGG19, with a record of where their weights came from.

Feature metrics (AlexNet layer correlation, two-way identification) and the VGG19 feature
loss need ImageNet-trained networks. Their weights come from torchvision, but a machine
may be offline, so `load_pretrained` follows one documented policy:

``weights="auto"`` (default)
    1. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<torchvision file name>``
       (``$TORCH_HOME/hub/checkpoints`` or ``~/.cache/torch/hub/checkpoints``);
    2. torchvision's download, only where ``NEURALSIGHT_ALLOW_DOWNLOAD=1`` is set
       (with a socket timeout, so it never hangs);
    3. otherwise random weights, with a loud warning (``warnings.warn`` and a log line)
       naming the file to provide and where to put it.
``weights="imagenet"``
    The cache, then torchvision's download; raises ``RuntimeError`` if neither works.
``weights="random"`` or ``None``
    Random weights, drawn from a fixed seed so that metrics on random features repeat.
any other string or path
    A state dict saved with ``torch.save(model.state_dict(), path)``.

The provenance string returned with the network is ``"imagenet"``, ``"random"`` or
``"file:<absolute path>"``; every result computed with the network records it as
``"weights": provenance``.

File names: AlexNet ``alexnet-owt-7be5be79.pth``, VGG19 ``vgg19-dcbb9e9d.pth``
(see `weights_file_name`).
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision import models

NetworkName = Literal["alexnet", "vgg19"]

ALLOW_DOWNLOAD_ENV = "NEURALSIGHT_ALLOW_DOWNLOAD"
"""Set this environment variable to ``1`` to let ``weights="auto"`` download weights."""

DOWNLOAD_TIMEOUT_S = 30.0
"""Socket timeout for a weights download, so an unreachable network never hangs."""

RANDOM_SEED = 0
"""Seed for random weights, so that metrics computed on random features repeat."""

_NETWORKS: dict[str, tuple[Callable[..., nn.Module], models.WeightsEnum]] = {
    "alexnet": (models.alexnet, models.AlexNet_Weights.IMAGENET1K_V1),
    "vgg19": (models.vgg19, models.VGG19_Weights.IMAGENET1K_V1),
}

logger = logging.getLogger(__name__)


class PretrainedWeightsWarning(UserWarning):
    """ImageNet weights were not available, so a network runs with random weights."""


def _check_name(name: str) -> None:
    if name not in _NETWORKS:
        raise ValueError(f"unknown network name {name!r}; expected one of {sorted(_NETWORKS)}")


def weights_file_name(name: NetworkName) -> str:
    """File name of torchvision's ImageNet weights for ``name``.

    Examples
    --------
    >>> weights_file_name("alexnet")
    'alexnet-owt-7be5be79.pth'
    """
    _check_name(name)
    return _NETWORKS[name][1].url.rsplit("/", 1)[-1]


def weights_url(name: NetworkName) -> str:
    """Download address of torchvision's ImageNet weights for ``name``.

    Examples
    --------
    >>> weights_url("vgg19")
    'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'
    """
    _check_name(name)
    return _NETWORKS[name][1].url


def cache_path(name: NetworkName) -> Path:
    """Where the torch hub cache keeps (or would keep) ImageNet weights for ``name``.

    Follows ``TORCH_HOME`` at call time: ``torch.hub.get_dir()/checkpoints/<file name>``.

    Examples
    --------
    >>> cache_path("alexnet").name
    'alexnet-owt-7be5be79.pth'
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_file_name(name)


def download_allowed() -> bool:
    """True when ``NEURALSIGHT_ALLOW_DOWNLOAD=1`` lets ``weights="auto"`` download.

    Examples
    --------
    >>> isinstance(download_allowed(), bool)
    True
    """
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip() == "1"


def _random_network(name: NetworkName) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return _NETWORKS[name][0](weights=None)


def _freeze(network: nn.Module) -> nn.Module:
    network.eval()
    network.requires_grad_(False)
    return network


def _load_state_dict_file(name: NetworkName, path: Path) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file for {name}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(
            f"{path}: cannot read a {name} state dict ({type(err).__name__}: {err}); "
            "delete or replace the file"
        ) from err
    if not isinstance(state, dict):
        raise RuntimeError(
            f"{path}: expected a {name} state dict (a dict of tensors), "
            f"found {type(state).__name__}"
        )
    network = _random_network(name)
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"{path}: not a torchvision {name} state dict; missing keys {list(missing)[:5]}, "
            f"unexpected keys {list(unexpected)[:5]}"
        )
    return network


def _download(name: NetworkName) -> nn.Module:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        state = _NETWORKS[name][1].get_state_dict(progress=True, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)
    network = _random_network(name)
    network.load_state_dict(state)
    return network


def _how_to_provide(name: NetworkName) -> str:
    return (
        f"to use ImageNet weights, put {weights_file_name(name)} (from {weights_url(name)}) at "
        f"{cache_path(name)}, pass weights=<path to a state dict>, or set "
        f"{ALLOW_DOWNLOAD_ENV}=1 on a machine with internet"
    )


def _warn_random(name: NetworkName, reason: str) -> None:
    message = f"{name}: ImageNet weights unavailable ({reason}); using RANDOM weights; " + (
        _how_to_provide(name)
    )
    warnings.warn(message, PretrainedWeightsWarning, stacklevel=3)
    logger.warning(message)


def _imagenet_or_none(name: NetworkName, allow_download: bool) -> tuple[nn.Module | None, str]:
    cached = cache_path(name)
    if cached.is_file():
        return _load_state_dict_file(name, cached), ""
    if not allow_download:
        return None, f"{cached} not found and downloads are off"
    try:
        return _download(name), ""
    except Exception as err:
        return None, f"{cached} not found and the download failed: {type(err).__name__}: {err}"


def load_pretrained(
    name: NetworkName, weights: str | os.PathLike | None = "auto"
) -> tuple[nn.Module, str]:
    """A torchvision AlexNet or VGG19 in eval mode without gradients, and its weights' provenance.

    Parameters
    ----------
    name
        ``"alexnet"`` or ``"vgg19"``.
    weights
        ``"auto"``: hub cache, then a download if ``NEURALSIGHT_ALLOW_DOWNLOAD=1``, else
        random weights with a `PretrainedWeightsWarning`. ``"imagenet"``: cache or download,
        error otherwise. ``"random"`` / ``None``: seeded random weights, silently. Anything
        else: path to a state dict.

    Returns
    -------
    network, provenance
        The network on the CPU, and ``"imagenet"``, ``"random"`` or ``"file:<path>"``.

    Examples
    --------
    >>> net, provenance = load_pretrained("alexnet", weights="random")
    >>> provenance, net.training
    ('random', False)
    """
    _check_name(name)
    if weights is None or weights == "random":
        return _freeze(_random_network(name)), "random"
    if weights in ("auto", "imagenet"):
        network, reason = _imagenet_or_none(name, weights == "imagenet" or download_allowed())
        if network is not None:
            return _freeze(network), "imagenet"
        if weights == "imagenet":
            raise RuntimeError(
                f"{name}: ImageNet weights unavailable ({reason}); " + (_how_to_provide(name))
            )
        _warn_random(name, reason)
        return _freeze(_random_network(name)), "random"
    path = Path(weights).expanduser().resolve()
    return _freeze(_load_state_dict_file(name, path)), f"file:{path}"
