"""An invertible map between two vector spaces of any sizes, built from FrEIA blocks.

`build_flow` stacks FrEIA's ``GLOWCouplingBlock`` (two affine couplings, soft-clamped scales)
with ``PermuteRandom`` (index permutations; a dense permutation matrix, as in
``AllInOneBlock``, would cost ``D**2`` memory and time, too much for thousands of fMRI
voxels) in a ``SequenceINN``. The map is an exact bijection of ``R^D`` up to float rounding.

`MatchedFlow` pairs an ``x`` space of ``x_dims`` (e.g. image features) with a ``y`` space of
``y_dims`` (e.g. neural responses) through one flow on ``D = max(x_dims, y_dims) +
extra_dims`` dimensions. **Dimension matching**: each side is padded with ``D - dims``
latent dimensions, so ``[x, u]`` and ``[y, v]`` are the two ends of the bijection; with
``extra_dims=0`` only the smaller side is padded. Extra dimensions on both sides give each
direction room for what the other side does not determine (response noise when decoding,
image detail the responses ignore when encoding): without them a bijection cannot regress
well both ways at once. A padded input gets latent values drawn from N(0, 1) when
sampling (training, or ``sample=True``) and zeros, the prior's mode, otherwise: eval-mode
mapping is deterministic, and it is the most probable point of the latent prior. The latent
outputs on the other side are trained towards N(0, 1) (`mmd` on the joint ``[y, v]``, as in
Ardizzone et al., "Analyzing inverse problems with invertible neural networks", ICLR 2019),
so that they carry what the smaller side cannot determine, independently of it.

**Linear start** (`MatchedFlow.set_linear`): with ``D = x_dims + y_dims`` a fixed affine map
before the couplings (FrEIA's ``FixedLinearTransform``) can make the whole flow an exact
bijection whose forward direction is one given linear map (x -> y) and whose inverse is
another (y -> x), e.g. two ridge regressions; the couplings, which start as the identity,
then learn the nonlinear rest. A flow started at the identity learns even the linear part
of a neural code slowly: on simulated retina data it stayed below the ridge decoder after
10 epochs.

`mmd` is the maximum mean discrepancy between two batches under a sum of Gaussian kernels,
the global (distribution-matching) loss that trains such a flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from FrEIA.framework import SequenceINN
from FrEIA.modules import FixedLinearTransform, GLOWCouplingBlock, PermuteRandom
from torch import nn

MMD_SCALES = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Bandwidths of `mmd`'s Gaussian kernels, as fractions of the mean squared distance."""


class _SubnetMLP(nn.Module):
    """The coupling subnet: Linear -> ReLU -> Linear, the output layer zero-initialised.

    A zero output gives scale 1 and shift 0, so every coupling starts as the identity and a
    new flow is a fixed permutation of its input.
    """

    def __init__(self, n_in: int, n_out: int, hidden: int) -> None:
        super().__init__()
        first, last = nn.Linear(n_in, hidden), nn.Linear(hidden, n_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(first, nn.ReLU(), last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _set_permutation(module: PermuteRandom, permutation: np.ndarray) -> None:
    with torch.no_grad():
        module.perm.copy_(torch.as_tensor(permutation))
        module.perm_inv.copy_(torch.as_tensor(np.argsort(permutation)))


def build_flow(
    n_dims: int, n_blocks: int = 6, hidden: int = 256, clamp: float = 2.0, seed: int = 0
) -> SequenceINN:
    """A FrEIA ``SequenceINN`` on ``R^n_dims``: ``n_blocks`` x (GLOW coupling, permutation).

    Parameters
    ----------
    n_dims
        Dimension of the space, at least 2 (a coupling splits it in two halves).
    n_blocks
        Number of coupling blocks.
    hidden
        Width of each coupling subnet's hidden layer.
    clamp
        Soft clamp of the log-scales, ``clamp * tanh(s)`` as in Real NVP: each coupling
        scales a dimension by at most ``exp(±clamp)``. (FrEIA's default arctan clamp is a
        lambda, which cannot be pickled, and ``ddp_spawn`` pickles the model.)
    seed
        Seed of the permutations (drawn from a generator of their own; NumPy's global
        generator, which FrEIA also draws from, is left as it was).

    Returns
    -------
    FrEIA.framework.SequenceINN
        Called as ``flow(x) -> (y, log_det_jacobian)`` and ``flow(y, rev=True) -> (x, ...)``.

    Examples
    --------
    >>> import torch
    >>> flow = build_flow(6, n_blocks=2, hidden=8)
    >>> x = torch.randn(4, 6)
    >>> y, _ = flow(x)
    >>> bool(torch.allclose(flow(y, rev=True)[0], x, atol=1e-6))
    True
    """
    if n_dims < 2:
        raise ValueError(f"build_flow: n_dims must be at least 2, found {n_dims}")
    if n_blocks < 1:
        raise ValueError(f"build_flow: n_blocks must be at least 1, found {n_blocks}")
    rng = np.random.default_rng(seed)
    state = np.random.get_state()  # noqa: NPY002 - FrEIA's PermuteRandom draws from it
    try:
        flow = SequenceINN(n_dims)
        for _ in range(n_blocks):
            flow.append(
                GLOWCouplingBlock,
                subnet_constructor=lambda n_in, n_out: _SubnetMLP(n_in, n_out, hidden),
                clamp=clamp,
                clamp_activation="TANH",
            )
            flow.append(PermuteRandom)
            _set_permutation(flow[-1], rng.permutation(n_dims))
    finally:
        np.random.set_state(state)  # noqa: NPY002 - leave the global generator as it was
    return flow


class MatchedFlow(nn.Module):
    """A bijection between ``x`` (``x_dims``) and ``y`` (``y_dims``), latent-padded to match.

    See the module docstring for the padding scheme and the linear start. ``forward`` maps
    x to y, ``inverse`` y to x; ``*_full`` work on the padded ``D``-dimensional vectors and
    are exact inverses of each other.

    Parameters
    ----------
    x_dims, y_dims
        Sizes of the two spaces.
    extra_dims
        Latent dimensions added on both sides beyond the larger space (default 0: only the
        smaller side is padded); ``D = max(x_dims, y_dims) + extra_dims`` must be at least 2.
    linear
        Put a fixed affine map (FrEIA's ``FixedLinearTransform``, the identity until
        `set_linear`) before the couplings.
    n_blocks, hidden, clamp, seed
        See `build_flow`.

    Examples
    --------
    >>> import torch
    >>> flow = MatchedFlow(x_dims=3, y_dims=5, n_blocks=2, hidden=8)
    >>> flow.n_dims, flow.x_latent, flow.y_latent
    (5, 2, 0)
    >>> MatchedFlow(x_dims=3, y_dims=5, extra_dims=4, n_blocks=1, hidden=8).x_latent
    6
    >>> flow(torch.randn(4, 3)).shape, flow.inverse(torch.randn(4, 5)).shape
    (torch.Size([4, 5]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        x_dims: int,
        y_dims: int,
        extra_dims: int = 0,
        linear: bool = False,
        n_blocks: int = 6,
        hidden: int = 256,
        clamp: float = 2.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("x_dims", x_dims), ("y_dims", y_dims)):
            if value < 1:
                raise ValueError(f"MatchedFlow: {name} must be positive, found {value}")
        if extra_dims < 0:
            raise ValueError(f"MatchedFlow: extra_dims must be >= 0, found {extra_dims}")
        self.x_dims, self.y_dims = int(x_dims), int(y_dims)
        self.n_dims = max(self.x_dims, self.y_dims) + int(extra_dims)
        self.flow = build_flow(self.n_dims, n_blocks, hidden, clamp, seed)
        self.linear = None
        if linear:
            eye = torch.eye(self.n_dims)
            self.linear = FixedLinearTransform([(self.n_dims,)], M=eye, b=eye[0] * 0)

    @property
    def x_latent(self) -> int:
        """Number of latent dimensions padding the x side."""
        return self.n_dims - self.x_dims

    @property
    def y_latent(self) -> int:
        """Number of latent dimensions padding the y side."""
        return self.n_dims - self.y_dims

    def _pad(self, values: torch.Tensor, dims: int, name: str, sample: bool) -> torch.Tensor:
        if values.ndim != 2 or values.shape[1] != dims:
            raise ValueError(
                f"MatchedFlow: '{name}' must have shape [batch, {dims}], "
                f"found {tuple(values.shape)}"
            )
        shape = (values.shape[0], self.n_dims - dims)
        latent = values.new_zeros(shape) if not sample else torch.randn(shape, device=values.device)
        return torch.cat([values, latent.to(values.dtype)], dim=1)

    def pad_x(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """``[x, u]``: ``u`` drawn from N(0, 1) if ``sample`` else zeros."""
        return self._pad(x, self.x_dims, "x", sample)

    def pad_y(self, y: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """``[y, v]``: ``v`` drawn from N(0, 1) if ``sample`` else zeros."""
        return self._pad(y, self.y_dims, "y", sample)

    def forward_full(self, x_full: torch.Tensor) -> torch.Tensor:
        """Padded x ``[B, D]`` to padded y ``[B, D]``."""
        if self.linear is not None:
            x_full = self.linear([x_full], jac=False)[0][0]
        return self.flow(x_full, jac=False)[0]

    def inverse_full(self, y_full: torch.Tensor) -> torch.Tensor:
        """Padded y ``[B, D]`` to padded x ``[B, D]`` (the exact inverse of `forward_full`)."""
        x_full = self.flow(y_full, rev=True, jac=False)[0]
        if self.linear is not None:
            x_full = self.linear([x_full], rev=True, jac=False)[0][0]
        return x_full

    def forward(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Map ``x [B, x_dims]`` to ``y [B, y_dims]`` (latent outputs dropped)."""
        return self.forward_full(self.pad_x(x, sample))[:, : self.y_dims]

    def inverse(self, y: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Map ``y [B, y_dims]`` to ``x [B, x_dims]`` (latent outputs dropped)."""
        return self.inverse_full(self.pad_y(y, sample))[:, : self.x_dims]

    def _coupling_permutation(self, device: torch.device) -> torch.Tensor:
        """The ``[D, D]`` permutation the couplings amount to while they are the identity.

        A ValueError (for `set_linear`) when they are no longer the identity.
        """
        permutation = self.flow(torch.eye(self.n_dims, device=device), jac=False)[0]
        is_permutation = ((permutation == 0) | (permutation == 1)).all() and bool(
            (permutation.sum(1) == 1).all()
        )
        if not is_permutation:
            raise ValueError("set_linear: the couplings are no longer the identity (train after)")
        return permutation

    @torch.no_grad()
    def set_linear(
        self,
        encode_weight: torch.Tensor,
        encode_bias: torch.Tensor,
        decode_weight: torch.Tensor,
        decode_bias: torch.Tensor,
    ) -> None:
        """Make the flow the affine bijection whose two directions are two given linear maps.

        With zero latent inputs the flow then maps ``x`` to ``x @ encode_weight +
        encode_bias`` and ``y`` back to ``y @ decode_weight + decode_bias`` (e.g. two ridge
        regressions), exactly. The map is two shears and a swap, on ``[x, u]`` with
        ``u`` of ``y_dims`` and ``[y, v]`` with ``v`` of ``x_dims``::

            y = u + x We + be,   v = x - y Wd - bd      (forward)
            x = v + y Wd + bd,   u = y - x We - be      (inverse)

        so it needs ``linear=True`` and ``D = x_dims + y_dims``, and couplings that are
        still the identity (a new flow): the fixed map absorbs their permutations.

        Parameters
        ----------
        encode_weight, encode_bias
            ``[x_dims, y_dims]`` and ``[y_dims]``.
        decode_weight, decode_bias
            ``[y_dims, x_dims]`` and ``[x_dims]``.

        Examples
        --------
        >>> import torch
        >>> flow = MatchedFlow(2, 3, extra_dims=2, linear=True, n_blocks=2, hidden=4)
        >>> we, wd = torch.randn(2, 3), torch.randn(3, 2)
        >>> flow.set_linear(we, torch.ones(3), wd, torch.zeros(2))
        >>> x, y = torch.randn(5, 2), torch.randn(5, 3)
        >>> bool(torch.allclose(flow(x), x @ we + 1, atol=1e-5))
        True
        >>> bool(torch.allclose(flow.inverse(y), y @ wd, atol=1e-5))
        True
        """
        dx, dy, d = self.x_dims, self.y_dims, self.n_dims
        if self.linear is None or d != dx + dy:
            raise ValueError(
                f"MatchedFlow.set_linear needs linear=True and n_dims = x_dims + y_dims = "
                f"{dx + dy}, found linear={self.linear is not None}, n_dims={d}"
            )
        shapes = {
            "encode_weight": (encode_weight, (dx, dy)),
            "encode_bias": (encode_bias, (dy,)),
            "decode_weight": (decode_weight, (dy, dx)),
            "decode_bias": (decode_bias, (dx,)),
        }
        for name, (value, shape) in shapes.items():
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"set_linear: '{name}' must be {shape}, found {tuple(value.shape)}"
                )
        permutation = self._coupling_permutation(encode_weight.device)
        we, wd = encode_weight.float(), decode_weight.float()
        forward = torch.cat(
            [
                torch.cat([we, torch.eye(dx, device=we.device) - we @ wd], 1),
                torch.cat([torch.eye(dy, device=we.device), -wd], 1),
            ]
        )
        inverse = torch.cat(
            [
                torch.cat([wd, torch.eye(dy, device=we.device) - wd @ we], 1),
                torch.cat([torch.eye(dx, device=we.device), -we], 1),
            ]
        )
        offset = torch.cat([encode_bias.float(), -encode_bias.float() @ wd - decode_bias.float()])
        self.linear.M.copy_(forward @ permutation.T)
        self.linear.M_inv.copy_(permutation @ inverse)
        self.linear.b.copy_((offset @ permutation.T)[None])
        self.linear.logDetM.zero_()


def mmd(a: torch.Tensor, b: torch.Tensor, scales: Sequence[float] = MMD_SCALES) -> torch.Tensor:
    """Squared maximum mean discrepancy between two batches ``[n, d]`` and ``[m, d]``.

    The biased (V-statistic) estimate under a sum of Gaussian kernels
    ``exp(-|a - b|^2 / (s * m2))``, ``m2`` being the mean squared distance over both batches
    (detached), so the kernels adapt to the dimension and spread of the data. Zero for equal
    batches, positive otherwise.

    Examples
    --------
    >>> import torch
    >>> a = torch.randn(64, 3)
    >>> float(mmd(a, a)), bool(mmd(a, a + 3) > mmd(a, a + 0.1))
    (0.0, True)
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"mmd: both batches must be [n, d] with the same d, found {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    both = torch.cat([a, b])
    norms = both.square().sum(dim=1)
    squared = (norms[:, None] + norms[None, :] - 2 * both @ both.T).clamp_min(0)
    bandwidth = squared.mean().detach().clamp_min(1e-12)
    kernel = sum(torch.exp(-squared / (s * bandwidth)) for s in scales)
    assert isinstance(kernel, torch.Tensor), "mmd: give at least one kernel scale"
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()
