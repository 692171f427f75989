"""Inverse retinotopic mapping: electrode responses painted back into image space.

MonkeySee (Le et al., NeurIPS 2024) turns a vector of multi-unit responses into image-like
input channels for a convolutional generator. Each electrode's response is painted onto its
receptive field (RF), an isotropic Gaussian in image space with peak 1, and the paintings of
a group of electrodes (one Utah array, or one area) are summed into one channel. Where the
RFs of a group overlap, the sum is divided by their summed weight, so overlapping
electrodes are averaged as in the reference code (which paints each electrode as one pixel
and averages overlaps); far from every RF a channel fades to 0.

- `TimeWindows`: time-resolved responses ``[B, units, bins]`` to per-area window means
  ``[B, units, windows]`` (the spatiotemporal model's V1 0-27 ms, V4 33-60 ms, IT 66-93 ms
  after onset, shifted in +26 ms steps).
- `InverseRetinotopicMap`: the fixed mapping from known RFs ("spatial" and
  "spatiotemporal" models), painting each electrode either onto the pixel nearest its RF
  centre (``paint="pixel"``, the reference code's) or as its RF Gaussian (``"rf"``).
  Pixels keep every electrode's value apart; Gaussians as wide as V4 and IT fields blend
  the 64 electrodes of an array into a smooth map from which a convolutional generator
  recovers little (see `PAINTS`).
- `ElectrodeCodes`: an optional learned vector per electrode that its response is multiplied
  by before painting, so that a generator can tell the electrodes of a neighbourhood apart.
- `LearnedInverseRF`: a learnable Gaussian (``mu_x``, ``mu_y``, ``log_sigma``) per
  electrode ("end-to-end" model), initialised from known RFs where present; `fields` reads
  the learned RFs out and `compare_fields` measures how far they moved from true ones.
- `MEIReadIn`: each unit's response paints its most exciting input (MEI) from an encoder,
  the learned counterpart of a Gaussian RF: where and what excites the unit (after MEIcoder,
  Sobotka et al., NeurIPS 2025).

Coordinates are normalised image coordinates in [-1, 1]: x from -1 (left edge) to +1
(right edge), y from -1 (top edge) to +1 (bottom edge), pixel k of n centred at
``-1 + (2k + 1) / n`` (as `neuralsight.simulate.cortex`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from neuralsight.models.encoders.mei import gaussian_blur

PAPER_WINDOW_STARTS_MS = {"V1": 0.0, "V4": 33.0, "IT": 66.0}
"""Start of each area's first window after stimulus onset (MonkeySee's spatiotemporal model)."""

RANDOM_SIGMA = 0.2
"""RF SD given to electrodes without a known RF in `LearnedInverseRF` (normalised units)."""

RANDOM_CENTRE_RANGE = 0.8
"""Electrodes without a known RF get centres uniform in [-0.8, 0.8] in x and y."""


def pixel_centres(n: int) -> torch.Tensor:
    """Normalised coordinates of the centres of ``n`` pixels along one axis.

    Examples
    --------
    >>> pixel_centres(4).tolist()
    [-0.75, -0.25, 0.25, 0.75]
    """
    return -1.0 + (2.0 * torch.arange(n, dtype=torch.float32) + 1.0) / n


PAINTS = ("pixel", "rf")
"""How `InverseRetinotopicMap` paints an electrode: on the pixel nearest its RF centre, or as
its RF Gaussian. With 3,000 simulated training images (32 x 32, TVSD layout, 20 epochs of L1)
the spatial model scored SSIM / PixCorr 0.515 / 0.747 with pixels and 0.474 / 0.702 with RF
Gaussians on held-out training crops."""


def nearest_pixel(rf_x: torch.Tensor, rf_y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flat index (``row * width + column``) of the pixel nearest each ``(rf_x, rf_y)``.

    Centres outside the image are clamped to its border pixels.

    Examples
    --------
    >>> import torch
    >>> nearest_pixel(torch.tensor([0.3, 5.0]), torch.tensor([-0.8, 0.0]), 4, 4).tolist()
    [2, 11]
    """
    rows = ((rf_y + 1) * height / 2).floor().long().clamp(0, height - 1)
    columns = ((rf_x + 1) * width / 2).floor().long().clamp(0, width - 1)
    return rows * width + columns


def pixel_maps(rf_x: torch.Tensor, rf_y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One-hot maps of the pixel nearest each ``(rf_x, rf_y)``, ``[units, height, width]``.

    The pixel is `nearest_pixel`'s.

    Examples
    --------
    >>> import torch
    >>> maps = pixel_maps(torch.tensor([0.3]), torch.tensor([-0.8]), 4, 4)
    >>> divmod(int(maps[0].argmax()), 4), float(maps.sum())
    ((0, 2), 1.0)
    """
    maps = torch.zeros(len(rf_x), height * width, device=rf_x.device)
    maps[torch.arange(len(rf_x)), nearest_pixel(rf_x, rf_y, height, width)] = 1.0
    return maps.reshape(-1, height, width)


def gaussian_maps(
    rf_x: torch.Tensor, rf_y: torch.Tensor, rf_sigma: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Isotropic Gaussians with peak 1 at ``(rf_x, rf_y)``, ``[units, height, width]``.

    Differentiable in the centres and SDs (all ``[units]`` tensors, normalised coordinates).

    Examples
    --------
    >>> import torch
    >>> maps = gaussian_maps(torch.tensor([0.25]), torch.tensor([-0.75]), torch.tensor([0.1]), 4, 4)
    >>> divmod(int(maps[0].argmax()), 4), float(maps.max())
    ((0, 2), 1.0)
    """
    ys = pixel_centres(height).to(rf_x.device)
    xs = pixel_centres(width).to(rf_x.device)
    dx = (xs[None, :] - rf_x[:, None]) ** 2
    dy = (ys[None, :] - rf_y[:, None]) ** 2
    inv = 1.0 / (2.0 * rf_sigma**2)
    return torch.exp(-(dy[:, :, None] + dx[:, None, :]) * inv[:, None, None])


def group_assignment(labels: Sequence) -> tuple[torch.Tensor, list[str]]:
    """One-hot ``[groups, units]`` matrix of each unit's group, and the group names.

    Groups are ordered by first appearance.

    Examples
    --------
    >>> matrix, names = group_assignment(["V4", "V1", "V4"])
    >>> names, matrix.tolist()
    (['V4', 'V1'], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    """
    names = [str(label) for label in labels]
    order = list(dict.fromkeys(names))
    index = torch.tensor([order.index(name) for name in names])
    return nn.functional.one_hot(index, len(order)).T.float(), order


def paint(values: torch.Tensor, maps: torch.Tensor, assignment: torch.Tensor) -> torch.Tensor:
    """Paint responses onto RF maps and sum them per group, averaging where RFs overlap.

    Parameters
    ----------
    values
        ``[B, units, windows]`` responses (one value per unit and time window).
    maps
        ``[units, H, W]`` RF maps (peak 1).
    assignment
        ``[groups, units]`` one-hot group membership.

    Returns
    -------
    torch.Tensor
        ``[B, groups * windows, H, W]``, channels group-major (group 0's windows first).
        Each channel is ``sum_u value_u * map_u / max(sum_u map_u, 1)`` over its group.

    Examples
    --------
    >>> import torch
    >>> maps = torch.zeros(2, 2, 2); maps[0, 0, 0] = maps[1, 1, 1] = 1.0
    >>> out = paint(torch.tensor([[[3.0], [5.0]]]), maps, torch.ones(1, 2))
    >>> out[0, 0].tolist()
    [[3.0, 0.0], [0.0, 5.0]]
    """
    batch, n_units, n_windows = values.shape
    height, width = maps.shape[1:]
    flat = maps.reshape(n_units, -1)
    channels = []
    for members in assignment.bool():
        group_maps = flat[members]
        group_values = values[:, members].transpose(1, 2).reshape(batch * n_windows, -1)
        # one 2-D product per group: a batched one over all groups costs groups times more,
        # and one broadcasting ``flat`` over the batch was materialised under bf16 autocast
        # on a CPU (30 GB for a batch of 256 at 64 x 64)
        summed = group_values @ group_maps
        overlap = group_maps.sum(0).clamp_min(1.0)
        channels.append((summed / overlap).reshape(batch, n_windows, -1))
    return torch.stack(channels, 1).reshape(batch, -1, height, width)


def window_bounds(
    areas: Sequence[str],
    starts_ms: Mapping[str, float] | None = None,
    width_ms: float = 27.0,
    step_ms: float = 26.0,
    n_windows: int = 5,
) -> dict[str, list[tuple[float, float]]]:
    """Per area, ``n_windows`` windows ``(start, stop)`` in ms after stimulus onset.

    Window *k* of an area spans ``start + k * step_ms`` to that plus ``width_ms``.

    Examples
    --------
    >>> window_bounds(["V1", "IT"], n_windows=2)
    {'V1': [(0.0, 27.0), (26.0, 53.0)], 'IT': [(66.0, 93.0), (92.0, 119.0)]}
    """
    starts = dict(PAPER_WINDOW_STARTS_MS if starts_ms is None else starts_ms)
    if n_windows < 1 or not width_ms > 0:
        raise ValueError(
            f"n_windows must be >= 1 and width_ms > 0, found {n_windows} and {width_ms}"
        )
    missing = [area for area in dict.fromkeys(areas) if area not in starts]
    if missing:
        raise ValueError(
            f"no window start for area(s) {missing}; window starts are given for {sorted(starts)}"
        )
    return {
        area: [
            (float(starts[area] + k * step_ms), float(starts[area] + k * step_ms + width_ms))
            for k in range(n_windows)
        ]
        for area in dict.fromkeys(areas)
    }


class TimeWindows(nn.Module):
    """Means of time-resolved responses over per-area windows: ``[B, U, T] -> [B, U, W]``.

    A bin belongs to a window when its centre lies in ``[start, stop)``. Responses with a
    single bin (already one window per unit) pass through when one window is asked for.

    Parameters
    ----------
    areas
        Area of each unit, ``[units]``.
    bin_edges_ms
        ``[bins + 1]`` bin edges, ms relative to stimulus onset.
    starts_ms, width_ms, step_ms, n_windows
        The windows, see `window_bounds`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> windows = TimeWindows(["V1", "IT"], np.arange(-0.5, 200.5), n_windows=2)
    >>> windows(torch.ones(3, 2, 200)).shape
    torch.Size([3, 2, 2])
    """

    weights: torch.Tensor

    def __init__(
        self,
        areas: Sequence[str],
        bin_edges_ms: Sequence[float] | np.ndarray,
        starts_ms: Mapping[str, float] | None = None,
        width_ms: float = 27.0,
        step_ms: float = 26.0,
        n_windows: int = 5,
    ) -> None:
        super().__init__()
        edges = np.asarray(bin_edges_ms, dtype=np.float64)
        self.n_bins = len(edges) - 1
        self.n_windows = int(n_windows)
        self.passthrough = self.n_bins == 1 and self.n_windows == 1
        if self.n_bins == 1 and not self.passthrough:
            raise ValueError(
                f"{n_windows} time windows need time-resolved responses, found one bin "
                f"({edges[0]:g} to {edges[1]:g} ms); simulate with mode='timecourse'"
            )
        self.bounds = (
            {}
            if self.passthrough
            else window_bounds(areas, starts_ms, width_ms, step_ms, n_windows)
        )
        weights = torch.zeros(len(areas), self.n_windows, self.n_bins)
        if not self.passthrough:
            centres = (edges[:-1] + edges[1:]) / 2
            per_area = {a: self._area_weights(a, w, centres) for a, w in self.bounds.items()}
            weights = torch.stack([per_area[a] for a in areas])
        self.register_buffer("weights", weights, persistent=False)

    @staticmethod
    def _area_weights(area: str, bounds: list, centres: np.ndarray) -> torch.Tensor:
        rows = []
        for start, stop in bounds:
            inside = (centres >= start) & (centres < stop)
            if not inside.any():
                raise ValueError(
                    f"window {start:g}-{stop:g} ms of area {area} holds no time bin; bin "
                    f"centres span {centres[0]:g} to {centres[-1]:g} ms"
                )
            rows.append(inside / inside.sum())
        return torch.from_numpy(np.stack(rows).astype(np.float32))

    def forward(self, responses: torch.Tensor) -> torch.Tensor:
        """Responses ``[B, units, bins]`` -> window means ``[B, units, windows]``."""
        if responses.shape[1:] != (self.weights.shape[0], self.n_bins):
            raise ValueError(
                f"responses must have shape [B, {self.weights.shape[0]}, {self.n_bins}] "
                f"(batch, units, bins), found {tuple(responses.shape)}"
            )
        if self.passthrough:
            return responses
        return torch.einsum("but,uwt->buw", responses, self.weights.to(responses.dtype))


class ElectrodeCodes(nn.Module):
    """Learned per-unit codes: ``[B, U, W] -> [B, U, W * codes]``, each response times a vector.

    A painted map keeps where an electrode is, not which one it is: a convolutional
    generator weights every electrode of a neighbourhood alike, although their tuning
    (ON or OFF, orientation, colour) differs. Multiplying each response by a learned
    per-unit vector before painting lets the generator tell electrodes apart (an extension
    to MonkeySee, not in the paper). Code 0 starts at 1 (the plain response, as painted
    without codes), the others at ``N(0, init_sd)`` drawn from ``seed``. Output features are
    window-major: feature ``w * codes + j`` is window ``w`` times code ``j``.

    Examples
    --------
    >>> import torch
    >>> codes = ElectrodeCodes(n_units=3, codes=2)
    >>> out = codes(torch.ones(4, 3, 5))
    >>> out.shape, out[0, :, 0].tolist()
    (torch.Size([4, 3, 10]), [1.0, 1.0, 1.0])
    """

    def __init__(self, n_units: int, codes: int, init_sd: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if n_units < 1 or codes < 1:
            raise ValueError(f"n_units and codes must be >= 1, found {n_units} and {codes}")
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(n_units, codes, generator=generator) * init_sd
        weight[:, 0] = 1.0
        self.weight = nn.Parameter(weight)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Values ``[B, U, W]`` -> coded values ``[B, U, W * codes]``."""
        coded = values[..., None] * self.weight[None, :, None, :].to(values.dtype)
        return coded.flatten(2)


def _check_rf_lengths(rf_x, rf_y, rf_sigma, groups) -> int:
    lengths = {"rf_x": len(rf_x), "rf_y": len(rf_y), "rf_sigma": len(rf_sigma)}
    lengths["groups"] = len(groups)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"RF fields must have one entry per unit, found lengths {lengths}")
    return lengths["rf_x"]


class InverseRetinotopicMap(nn.Module):
    """Fixed inverse retinotopic mapping from known RFs: ``[B, U, W] -> [B, G * W, H, W]``.

    Units whose RF is unknown (NaN) are left out (they cannot be painted).

    Parameters
    ----------
    rf_x, rf_y, rf_sigma
        RF centre and SD of each unit, normalised image coordinates.
    groups
        Group label of each unit (array or area); one channel per group and window.
    image_size
        ``(height, width)`` of the painted channels.
    paint
        ``"pixel"``: each electrode on the pixel nearest its RF centre (the reference code);
        ``"rf"``: each electrode as its RF Gaussian (peak 1). See `PAINTS`.

    Examples
    --------
    >>> import torch
    >>> mapping = InverseRetinotopicMap([-0.5, 0.5], [0.0, 0.0], [0.1, 0.1], ["a", "b"], (16, 16))
    >>> mapping(torch.ones(4, 2, 1)).shape
    torch.Size([4, 2, 16, 16])
    """

    maps: torch.Tensor
    assignment: torch.Tensor

    def __init__(
        self,
        rf_x: Sequence[float],
        rf_y: Sequence[float],
        rf_sigma: Sequence[float],
        groups: Sequence,
        image_size: tuple[int, int],
        paint: str = "pixel",
    ) -> None:
        super().__init__()
        _check_rf_lengths(rf_x, rf_y, rf_sigma, groups)
        if paint not in PAINTS:
            raise ValueError(f"paint must be one of {list(PAINTS)}, found {paint!r}")
        x, y, sigma = (torch.tensor(np.asarray(v, np.float32)) for v in (rf_x, rf_y, rf_sigma))
        known = torch.isfinite(x) & torch.isfinite(y) & torch.isfinite(sigma) & (sigma > 0)
        if not known.any():
            raise ValueError("InverseRetinotopicMap needs at least one unit with a known RF")
        x, y, sigma = (
            torch.where(known, x, 0),
            torch.where(known, y, 0),
            torch.where(known, sigma, 1),
        )
        if paint == "pixel":
            maps = pixel_maps(x, y, *image_size)
        else:
            maps = gaussian_maps(x, y, sigma, *image_size)
        assignment, self.group_names = group_assignment(groups)
        self.register_buffer("maps", maps * known[:, None, None], persistent=False)
        self.register_buffer("assignment", assignment, persistent=False)
        self.n_unknown = int((~known).sum())

    @property
    def n_groups(self) -> int:
        """Number of groups (areas or arrays), one painted channel block each."""
        return len(self.group_names)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Values ``[B, units, windows]`` painted into ``[B, groups * windows, H, W]``."""
        return paint(values, self.maps.to(values.dtype), self.assignment.to(values.dtype))


class LearnedInverseRF(nn.Module):
    """Learnable inverse retinotopic mapping: one Gaussian (``mu_x, mu_y, log_sigma``) per unit.

    Units with a known RF start from it; the others start at a random centre (uniform in
    ±`RANDOM_CENTRE_RANGE`) with SD `RANDOM_SIGMA`, drawn from ``seed``.

    Parameters
    ----------
    rf_x, rf_y, rf_sigma
        Initial RFs (NaN where unknown), normalised image coordinates.
    groups
        Group label of each unit; one channel per group and window.
    image_size
        ``(height, width)`` of the painted channels.
    seed
        Seed of the random initial RFs.

    Examples
    --------
    >>> import torch
    >>> layer = LearnedInverseRF([0.0, float("nan")], [0.0, 0.5], [0.1, 0.1], ["a", "a"], (8, 8))
    >>> layer(torch.ones(2, 2, 1)).shape, layer.fields()["initialised"].tolist()
    (torch.Size([2, 1, 8, 8]), ['known', 'random'])
    """

    assignment: torch.Tensor

    def __init__(
        self,
        rf_x: Sequence[float],
        rf_y: Sequence[float],
        rf_sigma: Sequence[float],
        groups: Sequence,
        image_size: tuple[int, int],
        seed: int = 0,
    ) -> None:
        super().__init__()
        n = _check_rf_lengths(rf_x, rf_y, rf_sigma, groups)
        x, y, sigma = (np.asarray(v, np.float64) for v in (rf_x, rf_y, rf_sigma))
        known = np.isfinite(x) & np.isfinite(y) & np.isfinite(sigma) & (sigma > 0)
        rng = np.random.default_rng(seed)
        random_xy = rng.uniform(-RANDOM_CENTRE_RANGE, RANDOM_CENTRE_RANGE, (2, n))
        self.mu_x = nn.Parameter(
            torch.tensor(np.where(known, x, random_xy[0]), dtype=torch.float32)
        )
        self.mu_y = nn.Parameter(
            torch.tensor(np.where(known, y, random_xy[1]), dtype=torch.float32)
        )
        log_sigma = np.log(np.where(known, sigma, RANDOM_SIGMA))
        self.log_sigma = nn.Parameter(torch.tensor(log_sigma, dtype=torch.float32))
        assignment, self.group_names = group_assignment(groups)
        self.register_buffer("assignment", assignment, persistent=False)
        self.image_size = tuple(int(s) for s in image_size)
        self.known = known

    @property
    def n_groups(self) -> int:
        """Number of groups (areas or arrays), one painted channel block each."""
        return len(self.group_names)

    def maps(self) -> torch.Tensor:
        """The current RF maps, ``[units, H, W]`` (peak 1)."""
        return gaussian_maps(self.mu_x, self.mu_y, self.log_sigma.exp(), *self.image_size)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Values ``[B, units, windows]`` painted through the current (learned) RF maps."""
        return paint(values, self.maps().to(values.dtype), self.assignment.to(values.dtype))

    def fields(self) -> pd.DataFrame:
        """The learned RFs: ``rf_x``, ``rf_y``, ``rf_sigma``, ``group`` and ``initialised``.

        ``initialised`` is ``"known"`` for units that started from a known RF, else
        ``"random"``. Coordinates are normalised image coordinates.
        """
        groups = self.assignment.argmax(0).cpu().numpy()
        return pd.DataFrame(
            {
                "rf_x": self.mu_x.detach().cpu().numpy().astype(np.float64),
                "rf_y": self.mu_y.detach().cpu().numpy().astype(np.float64),
                "rf_sigma": self.log_sigma.detach().exp().cpu().numpy().astype(np.float64),
                "group": [self.group_names[g] for g in groups],
                "initialised": np.where(self.known, "known", "random"),
            }
        )


def compare_fields(learned: pd.DataFrame, true: pd.DataFrame) -> pd.DataFrame:
    """Distance of learned RF centres from true ones, in normalised units and in true SDs.

    Both tables hold ``rf_x``, ``rf_y``, ``rf_sigma``, one row per unit in the same order.
    Returns ``distance``, ``distance_sigmas`` (distance over the true ``rf_sigma``) and
    ``sigma_ratio`` (learned over true SD).

    Examples
    --------
    >>> import pandas as pd
    >>> true = pd.DataFrame({"rf_x": [0.0], "rf_y": [0.0], "rf_sigma": [0.1]})
    >>> learned = pd.DataFrame({"rf_x": [0.3], "rf_y": [0.4], "rf_sigma": [0.2]})
    >>> compare_fields(learned, true).round(6).to_dict("records")
    [{'distance': 0.5, 'distance_sigmas': 5.0, 'sigma_ratio': 2.0}]
    """
    for name, table in (("learned", learned), ("true", true)):
        missing = [c for c in ("rf_x", "rf_y", "rf_sigma") if c not in table.columns]
        if missing:
            raise ValueError(f"{name} table lacks column(s) {missing}; found {list(table.columns)}")
    if len(learned) != len(true):
        raise ValueError(
            f"learned and true tables must have one row per unit each, found {len(learned)} "
            f"and {len(true)} rows"
        )
    dx = learned["rf_x"].to_numpy() - true["rf_x"].to_numpy()
    dy = learned["rf_y"].to_numpy() - true["rf_y"].to_numpy()
    distance = np.hypot(dx, dy)
    sigma = true["rf_sigma"].to_numpy()
    return pd.DataFrame(
        {
            "distance": distance,
            "distance_sigmas": distance / sigma,
            "sigma_ratio": learned["rf_sigma"].to_numpy() / sigma,
        }
    )


class MEIReadIn(nn.Module):
    """Each unit's response painted through its MEI: ``[B, U, W] -> [B, channels, H, W]``.

    A Gaussian receptive field says where a unit looks; its most exciting input (MEI,
    `neuralsight.models.encoders.most_exciting_inputs`) says also what it looks for. Each
    unit has two maps: its MEI's deviation from grey (scaled to unit RMS, ``C`` channels:
    what it looks for) and that deviation's energy, blurred and scaled to peak 1 (one
    channel: where). As `ElectrodeCodes` do for painted RFs, each response is multiplied
    by a learned ``codes``-vector of its own (code 0 starts at 1, the others near 0) and
    painted into both maps; the units' paintings are summed (divided by ``sqrt(U)``, so
    z-scored responses of many units keep the scale of one). Output channels:
    ``windows * codes * (C + 1)``. After the read-in of MEIcoder (Sobotka et al., NeurIPS
    2025, arXiv 2510.20762), which paints each neuron's response into its MEI; the codes
    and the energy map are ours.

    The maps are buffers (saved in checkpoints), refused until `set_meis` is called.

    Examples
    --------
    >>> import torch
    >>> readin = MEIReadIn(n_units=4, image_shape=(3, 8, 8), windows=1, codes=2)
    >>> readin.set_meis(torch.rand(4, 3, 8, 8))
    >>> readin(torch.rand(2, 4, 1)).shape, readin.channels
    (torch.Size([2, 8, 8, 8]), 8)
    """

    maps: torch.Tensor
    ready: torch.Tensor

    def __init__(
        self,
        n_units: int,
        image_shape: tuple[int, int, int],
        windows: int = 1,
        codes: int = 8,
        init_sd: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if min(n_units, windows, codes) < 1:
            raise ValueError(
                f"n_units, windows and codes must be >= 1, found {n_units}, {windows}, {codes}"
            )
        colours, height, width = image_shape
        self.register_buffer("maps", torch.zeros(n_units, colours + 1, height, width))
        self.register_buffer("ready", torch.tensor(False))
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(n_units, windows, codes, generator=generator) * init_sd
        weight[..., 0] = 1.0
        self.codes = nn.Parameter(weight)
        self.channels = windows * codes * (colours + 1)

    def set_meis(self, meis: torch.Tensor, blur: float = 1.0) -> None:
        """Store the maps of MEIs ``[U, C, H, W]`` in [0, 1] (``blur``: the energy map's
        Gaussian SD in pixels)."""
        expected = (self.maps.shape[0], self.maps.shape[1] - 1, *self.maps.shape[2:])
        if tuple(meis.shape) != expected:
            raise ValueError(
                f"MEIs must have shape {expected} [units, C, H, W], found {tuple(meis.shape)}"
            )
        deviation = meis.to(self.maps) - 0.5
        rms = deviation.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-6)
        energy = gaussian_blur(deviation.pow(2).sum(1, keepdim=True), blur)
        peak = energy.flatten(1).amax(1).clamp_min(1e-12)
        self.maps.copy_(
            torch.cat([deviation / rms[:, None, None, None], energy / peak[:, None, None, None]], 1)
        )
        self.ready.fill_(True)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Values ``[B, U, W]`` -> ``[B, channels, H, W]``, summed over units."""
        if not self.ready:
            raise RuntimeError("MEIReadIn has no MEIs yet: call set_meis first")
        coded = values[..., None] * self.codes.to(values.dtype)
        painted = torch.einsum("butk,uchw->btkchw", coded, self.maps.to(values.dtype))
        return painted.flatten(1, 3) / math.sqrt(values.shape[1])
