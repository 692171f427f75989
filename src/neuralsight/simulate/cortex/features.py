"""What the electrodes see: V1, V4 and IT feature maps, and each electrode's tuning.

Fixed filter banks drawn from the simulator seed, no pretrained network (`FilterBank`).
V1: quadrature Gabor energy (complex cells) and rectified even Gabors (simple cells) at 8
orientations and 2 wavelengths, centre-surround luminance on/off, surface luminance on/off
and red-green / blue-yellow opponent channels. V4: curvature/corner channels and rectified
random combinations of V1 channels. IT: rectified random combinations of V4 channels. Each
stage is one ``conv2d`` / FFT over the whole batch. `area_tuning` draws each electrode's
weights over its area's channels; `reference_images` are the 1/f-noise images every
channel and electrode is normalised to.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from neuralsight.simulate.cortex.parameters import (
    EPS,
    GLOBAL_CHANNELS,
    GLOBAL_SCALE,
    IT_CHANNELS,
    N_ORIENTATIONS,
    N_REFERENCE_IMAGES,
    RANDOM_FILTER_MEAN,
    V1_CHANNELS,
    V1_POINT_CHANNELS,
    V4_RANDOM_CHANNELS,
)


class FilterBank:
    """The fixed filters of the three stages, drawn from the simulator seed.

    V1: a Gabor pyramid (quadrature pairs at 8 orientations, fine scale at full and coarse
    at half resolution), a centre-surround DoG and a blur for surface luminance and colour.
    V4 and IT: random convolutions over the previous stage (`_random_conv`). ``norm`` holds
    each stage's channel normalisers, set by ``feature_maps(..., calibrate=True)``.

    Examples
    --------
    >>> bank = FilterBank(32, np.random.default_rng(0))
    >>> maps = bank.feature_maps(torch.zeros(1, 1, 32, 32), ["V1", "IT"])
    >>> {area: tuple(m.shape) for area, m in maps.items()}
    {'V1': (1, 40, 16, 16), 'V4': (1, 40, 8, 8), 'IT': (1, 48, 4, 4)}
    """

    def __init__(self, image_size: int, rng: np.random.Generator) -> None:
        s = image_size
        wavelength = max(3.0, s / 16)
        self.wavelengths = np.array([wavelength, 2 * wavelength])
        self.orientations = np.arange(N_ORIENTATIONS) * np.pi / N_ORIENTATIONS
        self.pads = (max(4, s // 6), max(4, s // 12))
        fine, coarse = s + 2 * self.pads[0], s // 2 + 2 * self.pads[1]
        dog = _gaussian_kernel(fine, wavelength / 4) - _gaussian_kernel(fine, 3 * wavelength / 4)
        fine_kernels = [*(_complex_gabor(fine, wavelength, t) for t in self.orientations), dog]
        coarse_kernels = [_complex_gabor(coarse, wavelength, t) for t in self.orientations]
        self.fine_spectra = _spectra(fine_kernels)
        self.coarse_spectra = _spectra(coarse_kernels)
        self.blur_spectrum = _spectra([_gaussian_kernel(coarse, wavelength / 4)])
        v4_inputs = 2 * N_ORIENTATIONS + V1_POINT_CHANNELS
        self.v4_weights = _random_conv(rng, V4_RANDOM_CHANNELS, v4_inputs, 5)
        v4_channels = 2 * N_ORIENTATIONS + V4_RANDOM_CHANNELS
        self.it_weights = _random_conv(rng, IT_CHANNELS, v4_channels, 3)
        self.norm = {
            "V1": torch.ones(V1_CHANNELS),
            "V4": torch.ones(v4_channels),
            "IT": torch.ones(IT_CHANNELS),
        }

    def v1_maps(self, images: torch.Tensor) -> torch.Tensor:
        """V1 channels at half resolution: energy, simple, contrast and surface on/off, colour."""
        lum, rg, by = opponent_channels(images)
        fine = _filter(lum[:, None], self.fine_spectra, self.pads[0])
        fine = F.avg_pool2d(torch.view_as_real(fine).movedim(-1, 1).flatten(1, 2), 2)
        half = F.avg_pool2d(torch.stack([lum, rg, by], 1), 2)
        coarse = torch.view_as_real(_filter(half[:, :1], self.coarse_spectra, self.pads[1]))
        surface = _filter(half, self.blur_spectrum, self.pads[1]).real
        surface[:, 0] -= 0.5
        n = N_ORIENTATIONS
        fine_even, fine_odd = fine[:, :n], fine[:, n + 1 : 2 * n + 1]
        dog = fine[:, n]
        energy = [torch.sqrt(fine_even**2 + fine_odd**2), coarse.square().sum(-1).sqrt()]
        simple = [fine_even, coarse[..., 0]]
        point = [dog, -dog, *(sign * surface[:, k] for k in range(3) for sign in (1, -1))]
        maps = [*energy, torch.cat(simple, 1).clamp_min(0), torch.stack(point, 1).clamp_min(0)]
        return torch.cat(maps, 1) / self.norm["V1"][None, :, None, None]

    def v4_maps(self, v1: torch.Tensor) -> torch.Tensor:
        """V4 channels at quarter resolution: curvature and random V1 combinations."""
        low = F.avg_pool2d(v1, 2)
        n = N_ORIENTATIONS
        energy = low[:, : 2 * n].reshape(len(low), 2, n, *low.shape[2:])
        curvature = torch.sqrt(energy * torch.roll(energy, -2, dims=2) + EPS).flatten(1, 2)
        inputs = torch.cat([low[:, : 2 * n], low[:, 4 * n :]], 1)
        combinations = F.conv2d(inputs, self.v4_weights, padding=2).clamp_min(0)
        maps = torch.cat([curvature, combinations], 1)
        return maps / self.norm["V4"][None, :, None, None]

    def it_maps(self, v4: torch.Tensor) -> torch.Tensor:
        """IT channels at eighth resolution: random combinations of V4 channels."""
        maps = F.avg_pool2d(F.conv2d(v4, self.it_weights, padding=1).clamp_min(0), 2)
        return maps / self.norm["IT"][None, :, None, None]

    def feature_maps(
        self, images: torch.Tensor, areas: list[str], calibrate: bool = False
    ) -> dict[str, torch.Tensor]:
        """Normalised channel maps of every stage the electrodes of ``areas`` need.

        With ``calibrate=True`` each stage's channel normalisers are first set to the
        channel means over ``images``.
        """
        stages: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [("V1", self.v1_maps)]
        if "V4" in areas or "IT" in areas:
            stages.append(("V4", self.v4_maps))
        if "IT" in areas:
            stages.append(("IT", self.it_maps))
        maps, previous = {}, images
        for area, stage in stages:
            if calibrate:
                self.norm[area] = torch.ones_like(self.norm[area])
                unnormalised = stage(previous)
                self.norm[area] = unnormalised.mean((0, 2, 3)).clamp_min(EPS)
                maps[area] = unnormalised / self.norm[area][None, :, None, None]
            else:
                maps[area] = stage(previous)
            previous = maps[area]
        return maps


def area_tuning(
    layouts: dict[str, dict[str, np.ndarray]], bank: FilterBank, rng: np.random.Generator
) -> dict[str, dict[str, torch.Tensor]]:
    """Feature weights of every electrode: ``excitation`` (and ``inhibition`` in V4, IT).

    V1 electrodes get a preferred orientation and wavelength (added to their layout as
    ``pref_orientation_deg`` and ``pref_wavelength_px``), a simple/complex mix, a
    contrast/surface luminance mix and a colour weight; V4 and IT sparse random weights
    over their channels, IT's partly over the global luminance and colour channels.
    """
    tuning: dict[str, dict[str, torch.Tensor]] = {}
    if "V1" in layouts:
        tuning["V1"] = _v1_tuning(layouts["V1"], bank, rng)
    v4_channels = 2 * N_ORIENTATIONS + V4_RANDOM_CHANNELS
    if "V4" in layouts:
        n = len(layouts["V4"]["rf_x"])
        tuning["V4"] = {
            "excitation": _sparse_weights(rng, n, v4_channels),
            "inhibition": _sparse_weights(rng, n, v4_channels),
        }
    if "IT" in layouts:
        n = len(layouts["IT"]["rf_x"])
        global_fraction = torch.from_numpy(rng.uniform(0.1, 0.3, (n, 1)).astype(np.float32))
        tuning["IT"] = {
            name: torch.cat(
                [
                    _sparse_weights(rng, n, IT_CHANNELS) * (1 - global_fraction),
                    _sparse_weights(rng, n, GLOBAL_CHANNELS, 0.5) * global_fraction,
                ],
                dim=1,
            )
            for name in ("excitation", "inhibition")
        }
    return tuning


def _v1_tuning(
    layout: dict[str, np.ndarray], bank: FilterBank, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    n = len(layout["rf_x"])
    preferred = rng.uniform(0, np.pi, n)
    scale = rng.integers(0, 2, n)
    concentration = rng.uniform(1.5, 3.0, n)
    complex_fraction = rng.uniform(0.5, 1.0, n)
    is_colour = rng.random(n) < 0.3
    colour = np.where(is_colour, rng.uniform(0.3, 0.6, n), 0.05)
    luminance = rng.uniform(0.05, 0.2, n)
    surface = rng.uniform(0.2, 0.8, n)
    gabor = 1 - colour - luminance
    delta = bank.orientations[None, :] - preferred[:, None]
    orientation = np.exp(concentration[:, None] * (np.cos(2 * delta) - 1))
    orientation /= orientation.sum(1, keepdims=True)
    weights = np.zeros((n, V1_CHANNELS))
    rows = np.arange(n)[:, None]
    columns = scale[:, None] * N_ORIENTATIONS + np.arange(N_ORIENTATIONS)[None, :]
    weights[rows, columns] = orientation * (gabor * complex_fraction)[:, None]
    weights[rows, columns + 2 * N_ORIENTATIONS] = (
        orientation * (gabor * (1 - complex_fraction))[:, None]
    )
    on_fraction = rng.random(n)
    first_extra = 4 * N_ORIENTATIONS
    on_off = np.stack([on_fraction, 1 - on_fraction], 1) * luminance[:, None]
    weights[:, first_extra : first_extra + 2] = on_off * (1 - surface)[:, None]
    weights[:, first_extra + 2 : first_extra + 4] = on_off * surface[:, None]
    colour_mix = rng.dirichlet(np.full(4, 0.3), n)
    weights[:, first_extra + 4 :] = colour[:, None] * colour_mix
    layout["pref_orientation_deg"] = np.degrees(preferred)
    layout["pref_wavelength_px"] = bank.wavelengths[scale]
    return {"excitation": torch.from_numpy(weights.astype(np.float32))}


def reference_images(image_size: int, n: int = N_REFERENCE_IMAGES, seed: int = 0) -> np.ndarray:
    """Seeded colour 1/f-noise images, ``[n, 3, size, size]`` float32 in [0, 1].

    Their amplitude spectrum falls as 1/f like natural images, with strongly correlated
    colour channels; the simulator normalises its channels and drives to them.

    Examples
    --------
    >>> reference_images(32, 2).shape
    (2, 3, 32, 32)
    """
    rng = np.random.default_rng([2, seed])
    f = np.fft.fftfreq(image_size)
    radius = np.hypot(f[:, None], f[None, :])
    amplitude = 1.0 / np.maximum(radius, 1.0 / image_size)
    amplitude[0, 0] = 0
    phases = rng.uniform(0, 2 * np.pi, (n, 3, image_size, image_size))
    noise = np.fft.ifft2(amplitude * np.exp(1j * phases)).real
    noise /= noise.std(axis=(2, 3), keepdims=True)
    luminance, red_green, blue_yellow = noise[:, 0], noise[:, 1], noise[:, 2]
    rgb = np.stack(
        [
            luminance + 0.3 * red_green - 0.15 * blue_yellow,
            luminance - 0.3 * red_green - 0.15 * blue_yellow,
            luminance + 0.3 * blue_yellow,
        ],
        1,
    )
    contrast = rng.uniform(0.1, 0.25, (n, 1, 1, 1))
    mean = rng.uniform(0.35, 0.65, (n, 1, 1, 1))
    return np.clip(mean + contrast * rgb, 0, 1).astype(np.float32)


def opponent_channels(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Luminance, red-green and blue-yellow channels of ``[n, C, H, W]`` images."""
    if images.shape[1] == 1:
        lum = images[:, 0]
        return lum, torch.zeros_like(lum), torch.zeros_like(lum)
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    return 0.299 * r + 0.587 * g + 0.114 * b, r - g, b - (r + g) / 2


def global_features(images: torch.Tensor) -> torch.Tensor:
    """Whole-image luminance and colour, rectified into ``GLOBAL_CHANNELS`` channels."""
    lum, rg, by = (c.mean((1, 2)) for c in opponent_channels(images))
    lum = lum - 0.5
    channels = torch.stack([lum, -lum, rg, -rg, by, -by], 1)
    return channels.clamp_min(0) / GLOBAL_SCALE


def pool(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """RF-pool ``[n, K, H, W]`` maps with ``[E, H * W]`` weights into ``[n, K, E]``."""
    n, k = maps.shape[:2]
    flat = maps.reshape(n * k, -1)
    if weights.is_sparse:
        pooled = torch.sparse.mm(weights, flat.T.contiguous()).T
    else:
        pooled = flat @ weights.T
    return pooled.reshape(n, k, -1)


def _spectra(kernels: list[np.ndarray]) -> torch.Tensor:
    """Fourier transforms of origin-centred kernels, ``[K, size, size]`` complex64."""
    return torch.from_numpy(np.fft.fft2(np.stack(kernels)).astype(np.complex64))


def _filter(images: torch.Tensor, spectra: torch.Tensor, pad: int) -> torch.Tensor:
    """Filter ``[n, C, H, W]`` by ``[K, ...]`` spectra with reflect padding.

    One channel gives ``[n, K, H, W]`` (every filter); C channels with one filter give
    ``[n, C, H, W]``. The result is complex.
    """
    h, w = images.shape[2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    filtered = torch.fft.ifft2(torch.fft.fft2(padded) * spectra[None])
    return filtered[..., pad : pad + h, pad : pad + w]


def naka_rushton(ratio: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """The Naka-Rushton compression ``2 r^n / (r^n + 1)`` of non-negative ratios (1 at 1)."""
    powered = ratio.clamp_min(0) ** exponent
    return 2 * powered / (powered + 1)


def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = np.fft.fftfreq(size, 1.0 / size)
    return np.meshgrid(axis, axis)


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    x, y = _centred_grid(size)
    kernel = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _complex_gabor(size: int, wavelength: float, theta: float) -> np.ndarray:
    """Zero-mean complex Gabor (even real part, odd imaginary), centred at the origin.

    ``theta`` is the orientation of the bars it prefers; the carrier runs across them.
    """
    x, y = _centred_grid(size)
    envelope = np.exp(-(x**2 + y**2) / (2 * (0.5 * wavelength) ** 2))
    across = -x * np.sin(theta) + y * np.cos(theta)
    carrier = np.exp(2j * np.pi * across / wavelength)
    gabor = envelope * carrier
    gabor.real -= envelope * gabor.real.sum() / envelope.sum()
    return gabor / envelope.sum()


def _random_conv(rng: np.random.Generator, out: int, inputs: int, size: int) -> torch.Tensor:
    """Random filters: a zero-sum selective part plus a small positive mean.

    On non-negative inputs they respond to particular feature combinations, a little to
    feature energy in general, and not at all to a blank input.
    """
    fan_in = inputs * size * size
    weights = rng.normal(0, 1 / math.sqrt(fan_in), (out, fan_in))
    weights += (RANDOM_FILTER_MEAN - weights.sum(1, keepdims=True)) / fan_in
    return torch.from_numpy(weights.reshape(out, inputs, size, size).astype(np.float32))


def _sparse_weights(
    rng: np.random.Generator, n: int, channels: int, concentration: float = 0.3
) -> torch.Tensor:
    """Non-negative weights, rows summing to 1, dominated by a few channels."""
    return torch.from_numpy(rng.dirichlet(np.full(channels, concentration), n).astype(np.float32))
