"""A fast inference path: BatchNorm folded into the layer before it, channels-last layout.

In eval mode a BatchNorm is a fixed per-channel affine map, so it can be folded into the
weights and bias of the convolution or linear layer that feeds it (PyTorch's
`torch.nn.utils.fusion` does the arithmetic). Folding is done only where it is exact: on a
``Conv1d/2d/3d -> BatchNorm`` or ``Linear -> BatchNorm1d`` pair that sits next to each other
in an ``nn.Sequential`` (so nothing else reads the layer's output) and whose BatchNorm tracks
running statistics. The folded BatchNorm becomes an ``nn.Identity`` in place, so module names
and indices stay as they were (the state dict loses the folded BatchNorms' entries). Models with 2D convolutions are moved
to channels-last memory layout, which oneDNN runs faster on CPU.

``Linear -> BatchNorm1d`` is folded when the linear layer's ``out_features`` equals the
BatchNorm's ``num_features``, i.e. for ``[batch, features]`` activations, the only layout in
which such a pair normalises the linear layer's output features.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every exact ``conv/linear -> BatchNorm`` pair of an eval-mode model, in place.

    Parameters
    ----------
    model
        A model in eval mode (every submodule); it is modified in place.

    Returns
    -------
    int
        The number of BatchNorm layers folded (each replaced by ``nn.Identity``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    >>> x = torch.rand(2, 1, 8, 8)
    >>> before = net(x)
    >>> fold_batchnorm(net), type(net[1]).__name__
    (1, 'Identity')
    >>> bool(torch.allclose(net(x), before, atol=1e-6))
    True
    """
    if any(m.training for m in model.modules()):
        raise ValueError("fold_batchnorm needs a model in eval mode; call .eval() on it first")
    folded = 0
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequential) - 1):
            layer, bn = sequential[i], sequential[i + 1]
            if not isinstance(bn, _BatchNorm) or bn.running_mean is None:
                continue
            if isinstance(layer, _CONVS) and bn.num_features == layer.out_channels:
                sequential[i] = fuse_conv_bn_eval(layer, bn)
            elif (
                isinstance(layer, nn.Linear)
                and isinstance(bn, nn.BatchNorm1d)
                and bn.num_features == layer.out_features
            ):
                sequential[i] = fuse_linear_bn_eval(layer, bn)
            else:
                continue
            sequential[i + 1] = nn.Identity()
            folded += 1
    return folded


def optimize_for_inference(model: ModuleT) -> ModuleT:
    """An eval-mode copy of ``model`` with BatchNorm folded and, for 2D convs, channels-last.

    The model itself is left untouched (mode, weights and modules). Outputs of the copy equal
    the eval-mode model's to float rounding.

    Parameters
    ----------
    model
        Any ``nn.Module``, e.g. a `neuralsight.models.decoders.Decoder`.

    Returns
    -------
    nn.Module
        The optimised copy, in eval mode, on the model's device.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.ReLU())
    >>> fast = optimize_for_inference(net)
    >>> net.training, fast.training, type(fast[1]).__name__
    (True, False, 'Identity')
    >>> x = torch.randn(4, 5)
    >>> bool(torch.allclose(fast(x), net.eval()(x), atol=1e-6))
    True
    """
    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast)
    if any(isinstance(m, nn.Conv2d) for m in fast.modules()):
        fast.to(memory_format=torch.channels_last)
    return fast
