"""ImageNet-trained AlexNet, VGG16 and VGG19 from files, the hub cache or torchvision, with provenance.

Feature metrics (AlexNet layer correlation, two-way identification) and the VGG feature loss
need ImageNet-trained networks. A machine may be offline, and a weights file may hold only
part of a network (AlexNet's or VGG16's convolutions without the fully connected layers), so
`load_pretrained` follows one documented policy.

``weights="auto"`` (default)
    1. the weights folder named by ``$NEURALSIGHT_WEIGHTS``, when set;
    2. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<torchvision file name>``;
    3. torchvision's download, only where ``NEURALSIGHT_ALLOW_DOWNLOAD=1`` is set
       (with a socket timeout, so it never hangs);
    4. otherwise random weights, with a loud warning naming the files to provide.
``weights="imagenet"``
    The same places, but an error instead of random weights.
``weights="random"`` or ``None``
    Random weights, drawn from a fixed seed so that metrics on random features repeat.
a folder
    The network's file in that folder (`weights_file_names`: ``alexnet_features.npz``,
    ``alexnet.npz`` or torchvision's ``alexnet-owt-7be5be79.pth``); an error if none is there.
a file
    A NumPy ``.npz`` of torchvision ``state_dict`` keys (no pickle), or a state dict saved
    with ``torch.save`` (read with ``weights_only=True``).

A file may hold part of a network, strictly: every key must be one of torchvision's for
that network, with its shape, and a layer is either wholly in the file or not at all. The
layers it does not hold keep no weights worth using: `Pretrained.covers` tells which layers
were loaded, and the feature metrics report the others as unavailable instead of computing
them on random weights. Where the folder has a ``SHA256SUMS`` file that lists the weights
file, its digest is checked.

Provenance (``Pretrained.weights``, recorded as ``"weights"`` in every result):
``"imagenet:<file name>#<first 12 hex digits of its sha256>"`` for the ImageNet files named
above (``"imagenet:<file name>"`` after a download that left no file), ``"file:<absolute
path>#<sha256 prefix>"`` for any other file, and ``"random"``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torchvision import models

NetworkName = Literal["alexnet", "vgg16", "vgg19"]

WEIGHTS_ENV = "NEURALSIGHT_WEIGHTS"
"""Environment variable naming a folder of weights files that ``weights="auto"`` reads first."""

ALLOW_DOWNLOAD_ENV = "NEURALSIGHT_ALLOW_DOWNLOAD"
"""Set this environment variable to ``1`` to let ``weights="auto"`` download weights."""

DOWNLOAD_TIMEOUT_S = 30.0
"""Socket timeout for a weights download, so an unreachable network never hangs."""

RANDOM_SEED = 0
"""Seed for random weights, so that metrics computed on random features repeat."""

DIGEST_CHARS = 12
"""Hex digits of a file's sha256 kept in its provenance."""

_NETWORKS: dict[str, tuple[Callable[..., nn.Module], models.WeightsEnum]] = {
    "alexnet": (models.alexnet, models.AlexNet_Weights.IMAGENET1K_V1),
    "vgg16": (models.vgg16, models.VGG16_Weights.IMAGENET1K_V1),
    "vgg19": (models.vgg19, models.VGG19_Weights.IMAGENET1K_V1),
}

logger = logging.getLogger(__name__)


class PretrainedWeightsWarning(UserWarning):
    """ImageNet weights were not available, so a network runs with random weights."""


@dataclass(frozen=True)
class Pretrained:
    """A frozen network in eval mode, where its weights came from, and which of them were loaded.

    Attributes
    ----------
    name
        ``"alexnet"``, ``"vgg16"`` or ``"vgg19"``.
    network
        The torchvision network on the CPU, without gradients.
    weights
        Provenance (see the module docstring).
    loaded
        The state-dict keys whose values came from the weights (all of them for random
        weights, which are random by choice).
    """

    name: str
    network: nn.Module
    weights: str
    loaded: frozenset[str]

    def covers(self, module: str) -> bool:
        """True when every parameter of ``module`` (e.g. ``"features.0"``) was loaded.

        Examples
        --------
        >>> net = load_pretrained("alexnet", weights="random")
        >>> net.covers("classifier.6")
        True
        """
        keys = [key for key in self.network.state_dict() if key.startswith(module + ".")]
        if not keys:
            raise ValueError(f"{self.name} has no module {module!r} with parameters")
        return all(key in self.loaded for key in keys)


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


def weights_file_names(name: NetworkName) -> tuple[str, ...]:
    """The file names, in the order tried, under which a weights folder holds ``name``.

    Examples
    --------
    >>> weights_file_names("vgg16")
    ('vgg16_features.npz', 'vgg16.npz', 'vgg16-397923af.pth')
    """
    return (f"{name}_features.npz", f"{name}.npz", weights_file_name(name))


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


def weights_folder() -> Path | None:
    """The folder named by ``$NEURALSIGHT_WEIGHTS``, or None where it is unset or empty.

    Raises a ``NotADirectoryError`` when the variable names something that is not a folder.

    Examples
    --------
    >>> import os
    >>> weights_folder() is None or weights_folder().is_dir()
    True
    """
    value = os.environ.get(WEIGHTS_ENV, "").strip()
    if not value:
        return None
    folder = Path(value).expanduser().resolve()
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{WEIGHTS_ENV}={value!r}: expected a folder of weights files, found "
            f"{'a file' if folder.exists() else 'nothing'} at {folder}"
        )
    return folder


@functools.lru_cache(maxsize=32)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, in hex (remembered while the file's size and time are unchanged).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "empty"
    >>> _ = path.write_bytes(b"")
    >>> file_sha256(path)[:12]
    'e3b0c44298fc'
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _sha256(resolved, stat.st_size, stat.st_mtime_ns)


def _check_listed_digest(path: Path, digest: str) -> None:
    """Compare ``digest`` with the line for ``path`` in its folder's ``SHA256SUMS``, if any."""
    sums = path.parent / "SHA256SUMS"
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        listed, _, file_name = line.strip().partition("  ")
        if file_name.lstrip("*") == path.name and listed.lower() != digest:
            raise RuntimeError(
                f"{path}: sha256 {digest} does not match {listed} listed in {sums}; "
                "the file is damaged or not the one listed"
            )


def _provenance(name: NetworkName, path: Path) -> str:
    digest = file_sha256(path)
    _check_listed_digest(path, digest)
    kind = "imagenet:" + path.name if path.name in weights_file_names(name) else f"file:{path}"
    return f"{kind}#{digest[:DIGEST_CHARS]}"


def _random_network(name: NetworkName) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return _NETWORKS[name][0](weights=None)


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as err:
        raise RuntimeError(
            f"{path}: cannot read a NumPy .npz of weights ({type(err).__name__}: {err})"
        ) from err
    for key, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise RuntimeError(f"{path}: array {key!r} must be floating point, found {array.dtype}")
    return {
        key: torch.from_numpy(np.asarray(array, dtype=np.float32)) for key, array in arrays.items()
    }


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".npz":
        return _read_npz(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(
            f"{path}: cannot read a state dict ({type(err).__name__}: {err}); "
            "delete or replace the file"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RuntimeError(
            f"{path}: expected a state dict (a dict of tensors), found {type(state).__name__}"
        )
    return state


def _partial_layers(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    """Modules of which ``state`` holds some parameters but not all."""
    modules = {key.rsplit(".", 1)[0] for key in state}
    return sorted(
        module
        for module in modules
        if any(k.startswith(module + ".") and k not in state for k in expected)
    )


def _check_state(name: NetworkName, path: Path, state: dict, expected: dict) -> None:
    """Raise unless ``state`` is a whole-layer subset of ``expected`` with matching shapes."""
    unexpected = sorted(set(state) - set(expected))
    if unexpected or not state:
        raise RuntimeError(
            f"{path}: not a torchvision {name} state dict; keys not in {name}: "
            f"{unexpected[:5] or 'none'}, keys found: {len(state)}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise RuntimeError(
                f"{path}: {key!r} of {name} must have shape {tuple(expected[key].shape)}, "
                f"found {tuple(value.shape)}"
            )
    partial = _partial_layers(state, expected)
    if partial:
        raise RuntimeError(f"{path}: layers {partial} of {name} are only partly in the file")


def _load_file(name: NetworkName, path: Path) -> Pretrained:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file for {name}")
    state = _read_state_dict(path)
    network = _random_network(name)
    expected = network.state_dict()
    _check_state(name, path, state, expected)
    network.load_state_dict(state, strict=False)
    return Pretrained(name, _freeze(network), _provenance(name, path), frozenset(state))


def _freeze(network: nn.Module) -> nn.Module:
    network.eval()
    network.requires_grad_(False)
    return network


def _in_folder(name: NetworkName, folder: Path) -> Path | None:
    return next((folder / f for f in weights_file_names(name) if (folder / f).is_file()), None)


def _download(name: NetworkName) -> Pretrained:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        state = _NETWORKS[name][1].get_state_dict(progress=True, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)
    network = _random_network(name)
    network.load_state_dict(state)
    cached = cache_path(name)
    provenance = _provenance(name, cached) if cached.is_file() else f"imagenet:{cached.name}"
    return Pretrained(name, _freeze(network), provenance, frozenset(network.state_dict()))


def _how_to_provide(name: NetworkName) -> str:
    return (
        f"to use ImageNet weights, set {WEIGHTS_ENV} to a folder holding one of "
        f"{list(weights_file_names(name))}, put {weights_file_name(name)} (from "
        f"{weights_url(name)}) at {cache_path(name)}, pass weights=<folder or file>, or set "
        f"{ALLOW_DOWNLOAD_ENV}=1 on a machine with internet"
    )


def local_imagenet_file(name: NetworkName) -> Path | None:
    """The file ``weights="auto"`` would load without a download, or None where there is none.

    The weights folder's file (``$NEURALSIGHT_WEIGHTS``) first, then the hub cache's.

    Examples
    --------
    >>> path = local_imagenet_file("alexnet")
    >>> path is None or path.is_file()
    True
    """
    folder = weights_folder()
    found = _in_folder(name, folder) if folder is not None else None
    cached = cache_path(name)
    return found or (cached if cached.is_file() else None)


def _imagenet_or_reason(name: NetworkName, allow_download: bool) -> Pretrained | str:
    local = local_imagenet_file(name)
    if local is not None:
        return _load_file(name, local)
    where = f"{WEIGHTS_ENV} folder and {cache_path(name)}"
    if not allow_download:
        return f"nothing in the {where}, and downloads are off"
    try:
        return _download(name)
    except Exception as err:
        return f"nothing in the {where}, and the download failed: {type(err).__name__}: {err}"


def random_pretrained(name: NetworkName) -> Pretrained:
    """``name`` with seeded random weights (provenance ``"random"``), silently.

    Examples
    --------
    >>> random_pretrained("vgg16").weights
    'random'
    """
    _check_name(name)
    network = _freeze(_random_network(name))
    return Pretrained(name, network, "random", frozenset(network.state_dict()))


def _from_path(name: NetworkName, weights: str | os.PathLike) -> Pretrained:
    path = Path(weights).expanduser().resolve()
    if not path.is_dir():
        return _load_file(name, path)
    found = _in_folder(name, path)
    if found is None:
        raise FileNotFoundError(
            f"{path}: no {name} weights in this folder; expected one of "
            f"{list(weights_file_names(name))}"
        )
    return _load_file(name, found)


def load_pretrained(name: NetworkName, weights: str | os.PathLike | None = "auto") -> Pretrained:
    """A torchvision AlexNet, VGG16 or VGG19 in eval mode without gradients, and its provenance.

    Parameters
    ----------
    name
        ``"alexnet"``, ``"vgg16"`` or ``"vgg19"``.
    weights
        ``"auto"``, ``"imagenet"``, ``"random"`` / ``None``, a folder or a file: see the module
        docstring.

    Returns
    -------
    Pretrained
        The network, its provenance and the keys loaded from the weights.

    Examples
    --------
    >>> net = load_pretrained("alexnet", weights="random")
    >>> net.weights, net.network.training
    ('random', False)
    """
    _check_name(name)
    if weights is None or weights == "random":
        return random_pretrained(name)
    if weights not in ("auto", "imagenet"):
        return _from_path(name, weights)
    found = _imagenet_or_reason(name, weights == "imagenet" or download_allowed())
    if isinstance(found, Pretrained):
        return found
    message = f"{name}: ImageNet weights unavailable ({found}); "
    if weights == "imagenet":
        raise RuntimeError(message + _how_to_provide(name))
    warnings.warn(
        message + "using RANDOM weights; " + _how_to_provide(name),
        PretrainedWeightsWarning,
        stacklevel=2,
    )
    logger.warning(message + "using RANDOM weights")
    return random_pretrained(name)


def first_available(
    names: Iterable[NetworkName], weights: str | os.PathLike | None = "auto"
) -> Pretrained:
    """The first of ``names`` whose weights ``weights`` provides; the first, random, if none.

    For a feature loss written for VGG19 that may run on VGG16 where only VGG16 weights exist.
    ``"random"`` gives the first network with random weights; ``"auto"`` tries each network's
    local files before any download, and warns before falling back to random weights;
    ``"imagenet"``, a folder or a file raise when none of the networks can be loaded.

    Examples
    --------
    >>> first_available(("vgg19", "vgg16"), weights="random").name
    'vgg19'
    """
    order = list(names)
    if weights is None or weights == "random":
        return random_pretrained(order[0])
    if weights in ("auto", "imagenet"):
        for name in order:
            local = local_imagenet_file(name)
            if local is not None:
                return _load_file(name, local)
        return load_pretrained(order[0], weights)
    errors = []
    for name in order:
        try:
            return _from_path(name, weights)
        except (FileNotFoundError, RuntimeError) as err:
            errors.append(str(err))
    raise RuntimeError(f"{weights}: none of {order} could be loaded: " + "; ".join(errors))
